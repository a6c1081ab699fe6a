/**
 * SPIRE's command line uses Go's flag package, where long flags take one dash
 * (`-spiffeID`, `-parentID`, `-config`). commander 14 reads `-spiffeID` as the short
 * flags `-s -p -i …` and rejects it, so the arguments are normalised first:
 * `-name` and `-name=value` become `--name` and `--name=value` when `name` is a
 * long flag of the command being run. Everything else is left exactly as it was.
 * @module
 */
import type { Command, Option } from 'commander';

/**
 * Rewrites single-dash long flags to double-dash ones.
 * @param args - the user's arguments (without the node and script paths).
 * @param knownLongFlags - long flag names of the command being run, with or without the leading `--`.
 * @returns a new array; tokens after a `--` terminator, short flags (`-h`, `-v`), `--x`,
 *   a lone `-`, negative numbers and unknown names are untouched.
 * @example normalizeArgv(['-spiffeID', 'spiffe://example.org/web', '-output=json'], ['spiffeID', 'output'])
 *   // → ['--spiffeID', 'spiffe://example.org/web', '--output=json']
 */
export function normalizeArgv(args: readonly string[], knownLongFlags: Iterable<string>): string[] {
  const known = new Set<string>();
  for (const flag of knownLongFlags) known.add(flag.replace(/^--/, ''));
  const out: string[] = [];
  let terminated = false;
  for (const token of args) {
    if (terminated || !isSingleDashWord(token)) {
      if (token === '--') terminated = true;
      out.push(token);
      continue;
    }
    const name = token.slice(1).split('=', 1)[0] as string;
    out.push(name.length > 1 && known.has(name) ? `-${token}` : token);
  }
  return out;
}

function isSingleDashWord(token: string): boolean {
  return token.length > 2 && token[0] === '-' && token[1] !== '-';
}

/**
 * Normalises `args` for `program`: finds the subcommand that the arguments run (following
 * subcommand names and aliases, skipping flags and their values), and rewrites the long
 * flags of that command and of its ancestors, plus `-help`.
 * @example await program.parseAsync(normalizeArgvFor(program, process.argv.slice(2)), { from: 'user' });
 */
export function normalizeArgvFor(program: Command, args: readonly string[]): string[] {
  const chain = commandChain(program, args);
  const names = ['help'];
  for (const command of chain) for (const option of command.options) if (option.long) names.push(option.long);
  return normalizeArgv(args, names);
}

/** The program and the subcommands selected by `args`, outermost first. */
function commandChain(program: Command, args: readonly string[]): Command[] {
  const chain = [program];
  let current = program;
  for (let i = 0; i < args.length; i++) {
    const token = args[i] as string;
    if (token === '--') break;
    if (token.startsWith('-')) {
      if (takesValue(current, token)) i++; // skip the flag's value, which could look like a command name
      continue;
    }
    const next = current.commands.find((c) => c.name() === token || c.aliases().includes(token));
    if (next === undefined) break; // a positional argument: the command is found
    chain.push(next);
    current = next;
  }
  return chain;
}

/** Whether `token` (`-x`, `--name`, `-name`) is an option of `command` whose value is the next argument. */
function takesValue(command: Command, token: string): boolean {
  if (token.includes('=')) return false;
  const name = token.replace(/^--?/, '');
  const option = command.options.find((o: Option) => o.long === `--${name}` || o.short === `-${name}`);
  return option?.required === true;
}
