/**
 * The product's logger: pino, one JSON object per line, with every key-like field
 * (private keys, tokens, CSRs, passwords, SVIDs, authorization headers) censored at
 * any depth, in logged objects and in child-logger bindings alike, so secrets never
 * reach a log even when a whole request or config object is logged.
 *
 * Why not pino's `redact` option: it matches one path per depth (`token`, `*.token`,
 * `*.*.token`, …), and with the 18 names below at three depths it cost 50 µs per line
 * against 2 µs without (measured, pino 10). One walk over the logged object that
 * compares normalised key names does the same job for any depth at a few µs.
 * @module
 */
import pino from 'pino';

/** The logger type every component receives (inject it; never create one in library code). */
export type Logger = pino.Logger;

/** Log levels, most verbose first; `silent` turns logging off. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Field names whose values are always censored, wherever they appear. Matching ignores
 * case, `_` and `-`, so `privateKey`, `private_key` and `Private-Key` are all caught.
 */
export const REDACTED_FIELDS: readonly string[] = Object.freeze([
  'privateKey',
  'key',
  'keyPem',
  'token',
  'joinToken',
  'accessToken',
  'refreshToken',
  'csr',
  'csrs',
  'password',
  'passphrase',
  'secret',
  'clientSecret',
  'authorization',
  'cookie',
  'svid',
  'svids',
  'connectionString',
]);

/** What a censored value is replaced with. */
export const REDACTED = '[redacted]';

/** Deeper than this pino prints `[Object]` anyway (its `depthLimit` is 5), so the walk stops. */
const MAX_DEPTH = 8;

/** Options of {@link createLogger}. */
export interface CreateLoggerOptions {
  /** Minimum level written; default `info`. */
  readonly level?: LogLevel;
  /** The component, written as `name` on every line (`steeple-server`, `steeple-agent`). */
  readonly name: string;
  /** Where lines go; default standard output. Tests pass a stream that collects lines. */
  readonly destination?: pino.DestinationStream;
  /** Field names to censor in addition to {@link REDACTED_FIELDS}. */
  readonly redactFields?: readonly string[];
}

/**
 * Creates a JSON-lines logger with an ISO time, a textual level (`"level":"info"`)
 * and key-like fields censored (also in `child()` bindings).
 * @example
 * const log = createLogger({ name: 'steeple-server', level: config.log_level });
 * log.info({ spiffeId: id.toString() }, 'signed X509-SVID');
 */
export function createLogger(options: CreateLoggerOptions): Logger {
  const censor = secretCensor([...REDACTED_FIELDS, ...(options.redactFields ?? [])]);
  const config: pino.LoggerOptions = {
    name: options.name,
    level: options.level ?? 'info',
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: {
      level: (label) => ({ level: label }),
      log: (object) => censor(object),
    },
  };
  const logger = options.destination === undefined ? pino(config) : pino(config, options.destination);
  // pino does not run formatters over child bindings, so censor them on the way in. Children
  // are created with Object.create(parent), so this override is inherited by every descendant.
  const child = logger.child;
  logger.child = function censoredChild(this: Logger, bindings, childOptions) {
    return child.call(this, censor(bindings), childOptions);
  } as Logger['child'];
  return logger;
}

/** A logger that writes nothing, for tests and for callers that were given none. */
export function createSilentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * Returns a function that copies an object with the value of every field named in
 * `fields` (compared ignoring case, `_` and `-`) replaced by {@link REDACTED}, at any depth.
 * Objects without such fields are returned as they are, without copying.
 */
export function secretCensor(fields: readonly string[]): <T>(value: T) => T {
  const secret = new Set(fields.map(normaliseFieldName));
  const isSecret = (key: string) => secret.has(normaliseFieldName(key));
  const walk = (value: unknown, depth: number): unknown => {
    if (value === null || typeof value !== 'object' || depth > MAX_DEPTH) return value;
    if (value instanceof Error || ArrayBuffer.isView(value) || value instanceof Map || value instanceof Set)
      return value;
    const json = (value as { toJSON?: unknown }).toJSON;
    if (typeof json === 'function') return walk(json.call(value), depth);
    if (Array.isArray(value)) {
      let copy: unknown[] | undefined;
      for (let i = 0; i < value.length; i++) {
        const item = walk(value[i], depth + 1);
        if (item !== value[i]) {
          copy ??= [...value];
          copy[i] = item;
        }
      }
      return copy ?? value;
    }
    let copy: Record<string, unknown> | undefined;
    for (const key of Object.keys(value)) {
      const original = (value as Record<string, unknown>)[key];
      const replaced = isSecret(key) && original !== undefined ? REDACTED : walk(original, depth + 1);
      if (replaced !== original) {
        copy ??= { ...value };
        copy[key] = replaced;
      }
    }
    return copy ?? value;
  };
  return <T>(value: T) => walk(value, 0) as T;
}

function normaliseFieldName(name: string): string {
  return name.toLowerCase().replace(/[-_]/g, '');
}
