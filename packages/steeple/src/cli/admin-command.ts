/**
 * What every `steeple server <noun> <verb>` admin command shares: the `-socketPath` option, the
 * value parsers of SPIRE's flags, the admin client's lifetime, and the error that ends a command
 * with exit code 1 and one line on stderr.
 * @module
 */
import { readFileSync } from 'node:fs';
import { Code, ConnectError } from '@connectrpc/connect';
import { type Command, InvalidArgumentError } from 'commander';
import { type AdminClient, createAdminClient } from '../common/admin-client.js';
import { notADurationMessage, tryParseDuration } from '../common/config/duration.js';
import { DEFAULT_SERVER_SOCKET_PATH } from '../common/defaults.js';

/** A command failed; the message (one line, naming the problem) goes to stderr and the exit code is 1. */
export class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliError';
  }
}

/** Adds SPIRE's `-socketPath` option with Steeple's default. */
export function withSocketPath(command: Command): Command {
  return command.option('--socketPath <path>', 'path to the server admin API socket', DEFAULT_SERVER_SOCKET_PATH);
}

/** Opens a client on `socketPath`, runs `fn`, and closes the client whatever happens. */
export async function withAdminClient<T>(socketPath: string, fn: (client: AdminClient) => Promise<T>): Promise<T> {
  const client = createAdminClient(socketPath);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

/** A repeatable option's accumulator: `-selector a -selector b` → `['a', 'b']`. */
export function collect(value: string, previous: readonly string[] = []): string[] {
  return [...previous, value];
}

/** A lifetime flag: integer seconds as in SPIRE (`3600`), or a duration (`1h`, `90s`). */
export function parseTtl(value: string): number {
  const seconds = tryParseDuration(value);
  if (seconds === undefined) throw new InvalidArgumentError(notADurationMessage(value));
  return seconds;
}

/** A non-negative integer flag such as `-entryExpiry` (epoch seconds). */
export function parseNonNegativeInteger(value: string): number {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new InvalidArgumentError(`${JSON.stringify(value)} is not a whole number of 0 or more`);
  }
  return Number(value);
}

/** `true` or `false` (SPIRE's string-valued boolean filters such as `-banned`). */
export function parseBooleanString(value: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new InvalidArgumentError(`${JSON.stringify(value)} must be "true" or "false"`);
}

/** A choice among fixed words. */
export function oneOf<const T extends string>(choices: readonly T[]): (value: string) => T {
  return (value) => {
    if ((choices as readonly string[]).includes(value)) return value as T;
    throw new InvalidArgumentError(`${JSON.stringify(value)} must be one of ${choices.join(', ')}`);
  };
}

/** A `type:value` selector (the value may itself contain ':'). */
export function parseSelector(text: string): { type: string; value: string } {
  const at = text.indexOf(':');
  if (at <= 0 || at === text.length - 1) {
    throw new CliError(`selector ${JSON.stringify(text)} must be type:value, e.g. unix:uid:1000`);
  }
  return { type: text.slice(0, at), value: text.slice(at + 1) };
}

/** Reads a file named by a flag (`-` for standard input), naming the flag when that fails. */
export function readInputFile(flag: string, path: string): string {
  try {
    return readFileSync(path === '-' ? 0 : path, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read -${flag} ${path}: ${(err as Error).message}`);
  }
}

/** The one line printed for a failed command. */
export function describeFailure(err: unknown): string {
  if (err instanceof ConnectError) {
    // Connection problems already say what to check; server refusals get their status name.
    if (err.code === Code.Unavailable && err.rawMessage.startsWith('cannot reach')) return err.rawMessage;
    return `${err.rawMessage} (${Code[err.code]})`;
  }
  if (err instanceof Error) return err.message;
  return String(err);
}
