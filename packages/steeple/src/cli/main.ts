/**
 * The `steeple` command line. SPIRE's single-dash long flags (`-spiffeID`) are accepted.
 * Exit code 0 on success; 1 with one line on stderr naming the problem otherwise.
 * @module
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { normalizeArgvFor } from '../common/cli/argv.js';
import { describeFailure } from './admin-command.js';
import { registerServerAdminCommands } from './commands/server-admin.js';
import { registerServerRunCommands } from './commands/server-run.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

export function buildProgram(): Command {
  const program = new Command('steeple')
    .description('SPIFFE workload identity: server, agent and mTLS proxy')
    .version(pkg.version, '-v, --version', 'print the version')
    .showHelpAfterError();
  const server = new Command('server').description('Run the Steeple server and manage it through its admin socket');
  registerServerRunCommands(server);
  registerServerAdminCommands(server);
  program.addCommand(server);
  return program;
}

/** Runs the CLI on `args` (without the node and script paths); resolves to the exit code. */
export async function runCli(args: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(normalizeArgvFor(program, args), { from: 'user' });
    return 0;
  } catch (err) {
    process.stderr.write(`steeple: ${describeFailure(err)}\n`);
    return 1;
  }
}

const isMain = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop() ?? '');
if (isMain) {
  // Not process.exit(): a long-running command (server run) keeps the process alive on purpose.
  process.exitCode = await runCli(process.argv.slice(2));
}
