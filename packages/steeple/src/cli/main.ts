/**
 * The `steeple` command line. SPIRE's single-dash long flags (`-spiffeID`) are accepted.
 * Exit code 0 on success; 1 with a message on stderr naming the problem otherwise.
 * @module
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { normalizeArgvFor } from '../common/cli/argv.js';
import { describeFailure } from './admin-command.js';
import { type CliOutput, processOutput, withCliOutput } from './command-output.js';
import { registerAgentCommands } from './commands/agent.js';
import { registerProxyCommands } from './commands/proxy.js';
import { registerServerAdminCommands } from './commands/server-admin.js';
import { registerServerRunCommands } from './commands/server-run.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

/** Applies `fn` to `command` and every subcommand below it (commander does not inherit settings through addCommand). */
function forEachCommand(command: Command, fn: (c: Command) => void): void {
  fn(command);
  for (const sub of command.commands) forEachCommand(sub, fn);
}

export function buildProgram(): Command {
  const program = new Command('steeple')
    .description('SPIFFE workload identity: server, agent and mTLS proxy')
    .version(pkg.version, '-v, --version', 'print the version');
  const server = new Command('server').description('Run the Steeple server and manage it through its admin socket');
  registerServerRunCommands(server);
  registerServerAdminCommands(server);
  program.addCommand(server);
  registerAgentCommands(program);
  registerProxyCommands(program);
  // Usage errors throw instead of exiting, so runCli decides the exit code (and tests can run it in-process).
  forEachCommand(program, (c) => c.showHelpAfterError().exitOverride());
  return program;
}

/**
 * Runs the CLI on `args` (without the node and script paths) and resolves to the exit code.
 * Output goes to standard output and error, or to `output` (tests run commands in-process).
 */
export async function runCli(args: readonly string[], output: CliOutput = processOutput): Promise<number> {
  const program = buildProgram();
  forEachCommand(program, (c) =>
    c.configureOutput({ writeOut: (text) => output.out(text), writeErr: (text) => output.err(text) }),
  );
  return withCliOutput(output, async () => {
    try {
      await program.parseAsync(normalizeArgvFor(program, args), { from: 'user' });
      return 0;
    } catch (err) {
      // Commander has already printed its usage error (or the help or version, with exit code 0).
      if (err instanceof CommanderError) return err.exitCode;
      output.err(`steeple: ${describeFailure(err)}\n`);
      return 1;
    }
  });
}

const isMain = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop() ?? '');
if (isMain) {
  // Not process.exit(): a long-running command (server run) keeps the process alive on purpose.
  process.exitCode = await runCli(process.argv.slice(2));
}
