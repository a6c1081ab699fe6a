/**
 * `steeple proxy run -config proxy.yaml` runs the mTLS proxy until SIGTERM or SIGINT
 * (SIGHUP re-reads the policy file); `steeple proxy check -config proxy.yaml` validates the
 * configuration, its policy file and its identity files and prints every problem.
 * @module
 */
import { Command } from 'commander';

// The proxy's modules load when a proxy command runs, not when the CLI starts.

interface ProxyFlags {
  readonly config: string;
  readonly expandEnv?: boolean;
}

/** How long open connections get to finish after SIGTERM. */
const SHUTDOWN_GRACE_MS = 5000;

function runCommand(): Command {
  return new Command('run')
    .description('Runs the proxy until SIGTERM or SIGINT; SIGHUP re-reads the policy file')
    .requiredOption('--config <file>', 'path to the proxy configuration file (YAML)')
    .option('--expandEnv', `expand \${NAME} environment variables in the configuration`)
    .action(async (opts: ProxyFlags) => {
      const { loadProxyConfig } = await import('../../proxy/config.js');
      const { startProxy } = await import('../../proxy/proxy.js');
      const config = loadProxyConfig(opts.config, { expandEnv: opts.expandEnv === true });
      const proxy = await startProxy({ config });
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: NodeJS.Signals) => {
          if (stopping) return;
          stopping = true;
          process.stderr.write(`steeple proxy: ${signal}, closing\n`);
          proxy.close(signal === 'SIGINT' ? 0 : SHUTDOWN_GRACE_MS).then(resolve, resolve);
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
        process.on('SIGHUP', () => proxy.reloadPolicy());
      });
    });
}

function checkCommand(): Command {
  return new Command('check')
    .description('Validates a proxy configuration, its policy file and identity files without starting anything')
    .requiredOption('--config <file>', 'path to the proxy configuration file (YAML)')
    .option('--expandEnv', `expand \${NAME} environment variables in the configuration`)
    .action(async (opts: ProxyFlags) => {
      const { checkProxyConfig } = await import('../../proxy/check-config.js');
      const result = checkProxyConfig(opts.config, { expandEnv: opts.expandEnv === true });
      for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
      if (!result.ok) throw new Error(result.problems.join('\n'));
      process.stdout.write(`${result.summary}\n`);
    });
}

/** Adds `proxy run` and `proxy check` to the program. */
export function registerProxyCommands(program: Command): void {
  const proxy = new Command('proxy').description(
    'The mTLS sidecar proxy: inbound and outbound listeners with policy and audit',
  );
  proxy.addCommand(runCommand());
  proxy.addCommand(checkCommand());
  program.addCommand(proxy);
}
