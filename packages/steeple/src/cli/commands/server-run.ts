/**
 * `steeple server run -config server.yaml` starts a server (flags override the file, as in
 * SPIRE) and runs until SIGTERM or SIGINT; `steeple server validate -config server.yaml`
 * checks a file without starting anything and prints "configuration OK" or every problem
 * with its key.
 * @module
 */
import { Command } from 'commander';
import type { ServerConfig } from '../../server/config.js';

// The server's modules load when a command runs, not when the CLI starts: `steeple agent
// run` and `steeple proxy run` should not carry the server's code (tens of MiB).

interface RunOptions {
  readonly config: string;
  readonly expandEnv?: boolean;
  readonly trustDomain?: string;
  readonly bindAddress?: string;
  readonly serverPort?: string;
  readonly socketPath?: string;
  readonly dataDir?: string;
  readonly logLevel?: string;
}

async function load(opts: RunOptions): Promise<ServerConfig> {
  const { loadServerConfig, serverFlagOverrides } = await import('../../server/config.js');
  return loadServerConfig(opts.config, {
    expandEnv: opts.expandEnv === true,
    overrides: serverFlagOverrides(opts),
  });
}

function runCommand(): Command {
  return new Command('run')
    .description('Runs the server until SIGTERM or SIGINT')
    .requiredOption('--config <file>', 'path to the server configuration file (YAML)')
    .option('--expandEnv', `expand \${NAME} environment variables in the configuration`)
    .option('--trustDomain <name>', 'the trust domain (overrides trust_domain)')
    .option('--bindAddress <ip>', 'address the agent API binds to (overrides bind_address)')
    .option('--serverPort <port>', 'port of the agent API, 0 for any free one (overrides bind_port)')
    .option('--socketPath <path>', 'path of the admin API socket (overrides socket_path)')
    .option('--dataDir <dir>', 'directory for the datastore, keys and CA state (overrides data_dir)')
    .option('--logLevel <level>', 'trace, debug, info, warn or error (overrides log_level)')
    .action(async (opts: RunOptions) => {
      const config = await load(opts);
      const { describeRunningServer, startServer } = await import('../../server/server.js');
      const server = await startServer(config, { handleSignals: true });
      // Also for people and scripts when log_level hides the log line; stdout carries the JSON log.
      process.stderr.write(`steeple ${describeRunningServer(server)}\n`);
      await server.closed;
    });
}

function validateCommand(): Command {
  return new Command('validate')
    .description('Checks a server configuration file without starting the server')
    .requiredOption('--config <file>', 'path to the server configuration file (YAML)')
    .option('--expandEnv', `expand \${NAME} environment variables in the configuration`)
    .action(async (opts: Pick<RunOptions, 'config' | 'expandEnv'>) => {
      const config = await load(opts);
      const { createNodeAttestors } = await import('../../server/attestation/node-attestor-catalog.js');
      const { serverConfigWarnings } = await import('../../server/config.js');
      // Plugin files (x509pop CA bundles) are read now, so a bad path is reported here too.
      createNodeAttestors(config.node_attestors, { joinTokens: { consume: async () => undefined } });
      for (const warning of serverConfigWarnings(config)) process.stderr.write(`warning: ${warning}\n`);
      process.stdout.write('configuration OK\n');
    });
}

/** Adds `run` and `validate` to the `server` command. */
export function registerServerRunCommands(server: Command): void {
  server.addCommand(runCommand());
  server.addCommand(validateCommand());
}
