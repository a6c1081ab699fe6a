/**
 * The `steeple` command line. SPIRE's single-dash long flags (`-spiffeID`) are accepted.
 * Exit code 0 on success; 1 with a message on stderr naming the problem otherwise.
 *
 * Each command group (`server`, `agent`, `proxy`) is registered from its own module, loaded
 * only when the first argument names that group: `steeple proxy run` never loads the server's
 * admin client or the agent's Workload API commands (in the built CLI each group is its own
 * chunk). `--version` needs no group; help and anything else get the full program, so
 * `steeple --help` lists every group as before.
 * @module
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { normalizeArgvFor } from '../common/cli/argv.js';
import type { CliOutput } from './command-output.js';

/** The version, set by scripts/build.mjs (esbuild `define`); undefined when running from the sources. */
declare const STEEPLE_BUILD_VERSION: string | undefined;

function version(): string {
  if (typeof STEEPLE_BUILD_VERSION === 'string') return STEEPLE_BUILD_VERSION;
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Adds one command group to the program; each loads its registration module when called. */
type GroupRegistration = (program: Command) => Promise<void>;

/** The command groups, in the order `steeple --help` lists them. */
const GROUPS: Readonly<Record<string, GroupRegistration>> = {
  server: async (program) => {
    const [{ registerServerRunCommands }, { registerServerAdminCommands }] = await Promise.all([
      import('./commands/server-run.js'),
      import('./commands/server-admin.js'),
    ]);
    const server = new Command('server').description('Run the Steeple server and manage it through its admin socket');
    registerServerRunCommands(server);
    registerServerAdminCommands(server);
    program.addCommand(server);
  },
  agent: async (program) => (await import('./commands/agent.js')).registerAgentCommands(program),
  proxy: async (program) => (await import('./commands/proxy.js')).registerProxyCommands(program),
};

/** Applies `fn` to `command` and every subcommand below it (commander does not inherit settings through addCommand). */
function forEachCommand(command: Command, fn: (c: Command) => void): void {
  fn(command);
  for (const sub of command.commands) forEachCommand(sub, fn);
}

/**
 * The program for `args`: only the group that `args[0]` names, none for `--version`, or every
 * group otherwise (help, a typo), so that the help and the "unknown command" error list them all.
 */
export async function buildProgram(args: readonly string[] = []): Promise<Command> {
  const program = new Command('steeple')
    .description('SPIFFE workload identity: server, agent and mTLS proxy')
    .version(version(), '-v, --version', 'print the version');
  const first = args[0];
  const group = first !== undefined && Object.hasOwn(GROUPS, first) ? GROUPS[first] : undefined;
  if (group !== undefined) await group(program);
  else if (first !== '-v' && first !== '--version')
    for (const register of Object.values(GROUPS)) await register(program);
  // Usage errors throw instead of exiting, so runCli decides the exit code (and tests can run it in-process).
  forEachCommand(program, (c) => c.showHelpAfterError().exitOverride());
  return program;
}

/** Standard output and error (command-output.ts's default, repeated so a plain run need not load that module). */
const stdio: CliOutput = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
};

/**
 * Runs the CLI on `args` (without the node and script paths) and resolves to the exit code.
 * Output goes to standard output and error, or to `output` (tests run commands in-process).
 */
export async function runCli(args: readonly string[], output?: CliOutput): Promise<number> {
  const program = await buildProgram(args);
  const to = output ?? stdio;
  forEachCommand(program, (c) =>
    c.configureOutput({ writeOut: (text) => to.out(text), writeErr: (text) => to.err(text) }),
  );
  const run = async () => {
    try {
      await program.parseAsync(normalizeArgvFor(program, args), { from: 'user' });
      return 0;
    } catch (err) {
      // Commander has already printed its usage error (or the help or version, with exit code 0).
      if (err instanceof CommanderError) return err.exitCode;
      // Loaded on failure only: it brings the admin client's error types.
      const { describeFailure } = await import('./admin-command.js');
      to.err(`steeple: ${describeFailure(err)}\n`);
      return 1;
    }
  };
  // Commands print through command-output.ts, whose default is standard output and error: only
  // another output needs it loaded here (it brings the protobuf JSON mapping, which the proxy
  // does not use).
  if (output === undefined) return run();
  const { withCliOutput } = await import('./command-output.js');
  return withCliOutput(output, run);
}

// From the sources argv[1] is .../src/cli/main.ts; from the build it is .../dist/main.js, the
// chunk that holds this module, so the same test works in both layouts.
const isMain = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop() ?? '');
if (isMain) {
  // Not process.exit(): a long-running command (server run) keeps the process alive on purpose.
  process.exitCode = await runCli(process.argv.slice(2));
}
