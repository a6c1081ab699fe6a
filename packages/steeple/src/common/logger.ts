/**
 * The product's logger: one JSON object per line, with every key-like field (private keys,
 * tokens, CSRs, passwords, SVIDs, authorization headers) censored at any depth, in logged
 * objects and in child-logger bindings alike, so secrets never reach a log even when a whole
 * request or config object is logged.
 *
 * Our own, not pino: the proxy keeps every loaded module for its whole life, and pino with its
 * dependencies (thread-stream, sonic-boom, safe-stable-stringify, …) cost ≈2 MiB of RSS for a
 * few lifecycle lines and warnings. The output is byte-for-byte what the pino 10 setup wrote
 * (`{"level":"info","time":"<ISO>","pid":…,"hostname":…,"name":…,<bindings>,<fields>,"msg":…}`),
 * and so are the call forms: `log.info(msg)`, `log.info(obj, msg?)`, `log.error(err, msg?)`.
 * Its rules, kept from pino so that log consumers see no change:
 * - an `Error` passed first is logged under `err`; `err` is serialized as pino-std-serializers
 *   did (`type`, `message` and `stack` with their causes appended, `aggregateErrors`, then the
 *   error's other enumerable properties); `msg` defaults to the error's message;
 * - a field whose value is `undefined`, a function or a symbol is left out; non-finite numbers
 *   are `null`; values are written with `JSON.stringify`, and when that throws (circular
 *   references, BigInt) with the fallback pino used (safe-stable-stringify: sorted keys,
 *   `"[Circular]"`, BigInt as a number, 5 levels, 100 entries);
 * - a child inherits its parent's level until it is given its own.
 * @module
 */
import { writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { isoTime } from './iso-time.js';

/** Log levels, most verbose first; `silent` turns logging off. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** A logging method: `(msg)`, `(obj, msg?)` or `(err, msg?)`. */
export interface LogFn {
  (msg: string): void;
  (obj: unknown, msg?: string): void;
}

/** The logger every component receives (inject it; never create one in library code). */
export interface Logger {
  readonly trace: LogFn;
  readonly debug: LogFn;
  readonly info: LogFn;
  readonly warn: LogFn;
  readonly error: LogFn;
  readonly fatal: LogFn;
  /** Writes nothing, whatever the level. */
  readonly silent: LogFn;
  /** The minimum level written; a child follows its parent's until it is set on the child. */
  level: LogLevel;
  /** Whether a record at `level` would be written. */
  isLevelEnabled(level: string): boolean;
  /** A logger whose lines carry `bindings` (censored) after the parent's. */
  child(bindings: Record<string, unknown>): Logger;
  /** Flushes the destination if it buffers (standard output is written synchronously). */
  flush(callback?: (err?: Error) => void): void;
}

/** Where lines go: anything with a `write(line)`, such as a Writable. */
export interface LogDestination {
  write(line: string): unknown;
  flush?(callback: (err?: Error) => void): unknown;
}

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

/** Deeper than this the walk stops (a censored copy of such depths is never needed in a log). */
const MAX_DEPTH = 8;

/** Options of {@link createLogger}. */
export interface CreateLoggerOptions {
  /** Minimum level written; default `info`. */
  readonly level?: LogLevel;
  /** The component, written as `name` on every line (`steeple-server`, `steeple-agent`). */
  readonly name: string;
  /** Where lines go; default standard output. Tests pass a stream that collects lines. */
  readonly destination?: LogDestination;
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
  return JsonLogger.root(options.level ?? 'info', options.name, censor, options.destination);
}

/** A logger that writes nothing, for tests and for callers that were given none. */
export function createSilentLogger(): Logger {
  return JsonLogger.root('silent', undefined, <T>(value: T) => value, undefined);
}

const LEVEL_VALUES = new Map<string, number>([
  ['trace', 10],
  ['debug', 20],
  ['info', 30],
  ['warn', 40],
  ['error', 50],
  ['fatal', 60],
  ['silent', Number.POSITIVE_INFINITY],
]);

/** `{"level":"info"` and so on, the start of every line. */
const LINE_STARTS = new Map<number, string>(
  [...LEVEL_VALUES].map(([label, value]) => [value, `{"level":${JSON.stringify(label)}`]),
);

/** Binding keys pino dropped (its option names); kept out so lines stay as they were. */
const IGNORED_BINDINGS = new Set(['level', 'serializers', 'formatters', 'customLevels']);

interface Sink {
  readonly censor: <T>(value: T) => T;
  readonly write: (line: string) => void;
  readonly flush: (callback?: (err?: Error) => void) => void;
}

class JsonLogger implements Logger {
  readonly #sink: Sink;
  readonly #parent: JsonLogger | undefined;
  /** `,"key":value` for each binding, the parent's first. */
  readonly #bindings: string;
  /** This logger's own level; `undefined` follows the parent's. */
  #level: number | undefined;

  private constructor(sink: Sink, parent: JsonLogger | undefined, bindings: string, level: number | undefined) {
    this.#sink = sink;
    this.#parent = parent;
    this.#bindings = bindings;
    this.#level = level;
  }

  static root(level: LogLevel, name: string | undefined, censor: Sink['censor'], destination?: LogDestination) {
    const sink: Sink = {
      censor,
      write: destination === undefined ? stdoutWriter() : (line) => destination.write(line),
      flush: (callback) => {
        if (typeof destination?.flush === 'function') destination.flush(callback ?? (() => {}));
        else callback?.();
      },
    };
    const base = appendBindings('', { pid: process.pid, hostname: hostname(), name });
    return new JsonLogger(sink, undefined, base, levelValue(level));
  }

  get level(): LogLevel {
    const value = this.#threshold();
    for (const [label, v] of LEVEL_VALUES) if (v === value) return label as LogLevel;
    return 'info';
  }

  set level(level: LogLevel) {
    this.#level = levelValue(level);
  }

  isLevelEnabled(level: string): boolean {
    const value = LEVEL_VALUES.get(level);
    return value !== undefined && value >= this.#threshold();
  }

  child(bindings: Record<string, unknown>): Logger {
    if (!bindings) throw new Error('missing bindings for child logger');
    return new JsonLogger(this.#sink, this, appendBindings(this.#bindings, this.#sink.censor(bindings)), undefined);
  }

  flush(callback?: (err?: Error) => void): void {
    this.#sink.flush(callback);
  }

  trace(...args: unknown[]): void {
    this.#log(10, args);
  }
  debug(...args: unknown[]): void {
    this.#log(20, args);
  }
  info(...args: unknown[]): void {
    this.#log(30, args);
  }
  warn(...args: unknown[]): void {
    this.#log(40, args);
  }
  error(...args: unknown[]): void {
    this.#log(50, args);
  }
  fatal(...args: unknown[]): void {
    this.#log(60, args);
  }
  silent(..._args: unknown[]): void {}

  #threshold(): number {
    // Every root has a level, so the walk ends there at the latest.
    let logger: JsonLogger = this;
    while (logger.#level === undefined) logger = logger.#parent as JsonLogger;
    return logger.#level;
  }

  #log(value: number, args: unknown[]): void {
    if (value < this.#threshold()) return;
    // pino's argument rules: an object (or null) first is the record, then the message;
    // anything else first is the message (`undefined` first defers to the second argument).
    let first = args[0];
    let msg: unknown;
    if (typeof first === 'object') msg = first === null && args.length < 2 ? null : args[1];
    else {
      msg = first === undefined ? args[1] : first;
      first = null;
    }
    let fields: object;
    if (first === null || first === undefined) fields = {};
    else if (first instanceof Error) {
      fields = { err: first };
      if (msg === undefined) msg = first.message;
    } else {
      fields = first as object;
      const { msg: own, err } = fields as { msg?: unknown; err?: { message?: unknown } };
      if (msg === undefined && own === undefined && err) msg = err.message;
    }
    const time = `,"time":"${isoTime(Date.now())}"`;
    const line = `${LINE_STARTS.get(value)}${time}${this.#bindings}${fieldsJson(this.#sink.censor(fields))}${messageJson(msg)}}\n`;
    this.#sink.write(line);
  }
}

function levelValue(level: string): number {
  const value = LEVEL_VALUES.get(level);
  if (value === undefined) throw new Error(`unknown level ${level}`);
  return value;
}

function appendBindings(start: string, bindings: Record<string, unknown>): string {
  let out = start;
  for (const key in bindings) {
    const value = bindings[key];
    if (IGNORED_BINDINGS.has(key) || !Object.hasOwn(bindings, key) || value === undefined) continue;
    const json = stringify(value);
    if (json !== undefined) out += `,${asString(key)}:${json}`;
  }
  return out;
}

/** `,"key":value` for each own enumerable field of the record, `err` serialized as an error. */
function fieldsJson(fields: object): string {
  let out = '';
  for (const key in fields) {
    let value = (fields as Record<string, unknown>)[key];
    if (!Object.hasOwn(fields, key) || value === undefined) continue;
    if (key === 'err') value = serializeError(value);
    const json = valueJson(value);
    if (json !== undefined) out += `,${asString(key)}:${json}`;
  }
  return out;
}

function messageJson(msg: unknown): string {
  if (msg === undefined) return '';
  const json = valueJson(msg);
  return json === undefined ? '' : `,"msg":${json}`;
}

function valueJson(value: unknown): string | undefined {
  switch (typeof value) {
    case 'undefined':
    case 'function':
      return undefined;
    case 'number':
      return Number.isFinite(value) ? String(value) : 'null';
    case 'boolean':
      return String(value);
    case 'string':
      return asString(value);
    default:
      return stringify(value);
  }
}

/**
 * A string as JSON, as pino wrote it on Node < 25: short strings without control characters
 * get only `"` and `\` escaped (lone surrogates pass as they are), the rest `JSON.stringify`.
 */
function asString(str: string): string {
  if (str.length > 100) return JSON.stringify(str);
  let result = '';
  let last = 0;
  let found = false;
  let point = 255;
  for (let i = 0; i < str.length && point >= 32; i++) {
    point = str.charCodeAt(i);
    if (point === 34 || point === 92) {
      result += `${str.slice(last, i)}\\`;
      last = i;
      found = true;
    }
  }
  result = found ? result + str.slice(last) : str;
  return point < 32 ? JSON.stringify(str) : `"${result}"`;
}

/** `JSON.stringify`, or when that throws (circular references, BigInt) {@link safeStringify}. */
function stringify(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    try {
      return safeStringify('', value, []);
    } catch {
      return '"[unable to serialize, circular reference is too complex to analyze]"';
    }
  }
}

const MAX_FALLBACK_DEPTH = 5;
const MAX_FALLBACK_BREADTH = 100;
const typedArrayTag = Object.getOwnPropertyDescriptor(
  Object.getPrototypeOf(Uint8Array.prototype) as object,
  Symbol.toStringTag,
)?.get as (this: unknown) => string | undefined;

/**
 * The fallback pino used (safe-stable-stringify with `maximumDepth: 5, maximumBreadth: 100`):
 * keys sorted, a reference to an enclosing object is `"[Circular]"`, a BigInt is written as a
 * number, deeper objects are `"[Object]"`/`"[Array]"` and entries past 100 are summarised.
 */
function safeStringify(key: string, input: unknown, stack: unknown[]): string | undefined {
  let value = input;
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? String(value) : 'null';
    case 'boolean':
      return String(value);
    case 'bigint':
      return String(value);
    case 'object':
      break;
    default:
      return undefined;
  }
  if (value === null) return 'null';
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') {
    value = toJSON.call(value, key);
    if (typeof value !== 'object') return safeStringify(key, value, stack);
    if (value === null) return 'null';
  }
  const object = value as Record<string, unknown> & { length?: unknown };
  if (stack.includes(object)) return '"[Circular]"';
  const hasLength = object.length !== undefined;
  if (hasLength && Array.isArray(object)) {
    if (object.length === 0) return '[]';
    if (MAX_FALLBACK_DEPTH < stack.length + 1) return '"[Array]"';
    stack.push(object);
    const items: string[] = [];
    const count = Math.min(object.length, MAX_FALLBACK_BREADTH);
    for (let i = 0; i < count; i++) items.push(safeStringify(String(i), object[i], stack) ?? 'null');
    let res = items.join(',');
    if (object.length - 1 > MAX_FALLBACK_BREADTH)
      res += `,"... ${itemCount(object.length - MAX_FALLBACK_BREADTH - 1)} not stringified"`;
    stack.pop();
    return `[${res}]`;
  }
  let keys = Object.keys(object);
  const keyCount = keys.length;
  if (keyCount === 0) return '{}';
  if (MAX_FALLBACK_DEPTH < stack.length + 1) return '"[Object]"';
  let res = '';
  let separator = '';
  let count = Math.min(keyCount, MAX_FALLBACK_BREADTH);
  if (hasLength && ArrayBuffer.isView(object) && typedArrayTag.call(object) !== undefined && object.length !== 0) {
    const array = object as unknown as ArrayLike<number | bigint>;
    const n = Math.min(array.length, MAX_FALLBACK_BREADTH);
    for (let i = 0; i < n; i++) res += `${i === 0 ? '' : ','}"${i}":${array[i]}`;
    keys = keys.slice(array.length);
    count -= array.length;
    separator = ',';
  }
  keys.sort();
  stack.push(object);
  for (let i = 0; i < count; i++) {
    const k = keys[i] as string;
    const json = safeStringify(k, object[k], stack);
    if (json !== undefined) {
      res += `${separator}${JSON.stringify(k)}:${json}`;
      separator = ',';
    }
  }
  if (keyCount > MAX_FALLBACK_BREADTH)
    res += `${separator}"...":"${itemCount(keyCount - MAX_FALLBACK_BREADTH)} not stringified"`;
  stack.pop();
  return `{${res}}`;
}

function itemCount(n: number): string {
  return n === 1 ? '1 item' : `${n} items`;
}

/**
 * The prototype of serialized errors, as pino-std-serializers made them: `type`, `message`,
 * `stack` and `aggregateErrors` come first; an error's own fields named like these, `raw` or
 * an `Object.prototype` member are not copied.
 */
const SERIALIZED_ERROR_PROTO: object = Object.create(
  {},
  {
    type: { enumerable: true, writable: true, value: undefined },
    message: { enumerable: true, writable: true, value: undefined },
    stack: { enumerable: true, writable: true, value: undefined },
    aggregateErrors: { enumerable: true, writable: true, value: undefined },
    raw: { enumerable: false, value: {} },
  },
);

interface ErrorLike {
  readonly message: string;
  readonly stack?: unknown;
  readonly name?: unknown;
  readonly cause?: unknown;
  readonly errors?: unknown;
}

const isErrorLike = (value: unknown): value is ErrorLike =>
  Boolean(value) && typeof (value as { message?: unknown }).message === 'string';

/** Errors being serialized (an error among its own fields is not serialized again). */
const serializing = new Set<unknown>();

/** pino-std-serializers' `err`: type, message and stack with causes, then the other fields. */
function serializeError(err: unknown): unknown {
  if (!isErrorLike(err)) return err;
  serializing.add(err);
  try {
    const out = Object.create(SERIALIZED_ERROR_PROTO) as Record<string, unknown>;
    const ctor = (err as { constructor?: unknown }).constructor;
    out.type =
      Object.prototype.toString.call(ctor) === '[object Function]' ? (ctor as { name: unknown }).name : err.name;
    out.message = messageWithCauses(err, new Set(), false);
    out.stack = stackWithCauses(err, new Set());
    if (Array.isArray(err.errors)) out.aggregateErrors = err.errors.map((e) => serializeError(e));
    for (const key in err) {
      if (out[key] !== undefined) continue;
      const val = (err as unknown as Record<string, unknown>)[key];
      if (!isErrorLike(val)) out[key] = val;
      else if (key !== 'cause' && !serializing.has(val)) out[key] = serializeError(val);
    }
    return out;
  } finally {
    serializing.delete(err);
  }
}

function errorCause(err: ErrorLike): ErrorLike | undefined {
  const cause = typeof err.cause === 'function' ? (err.cause as () => unknown)() : err.cause;
  return isErrorLike(cause) ? cause : undefined;
}

function stackWithCauses(err: ErrorLike, seen: Set<ErrorLike>): string {
  const stack = typeof err.stack === 'string' && err.stack !== '' ? err.stack : '';
  if (seen.has(err)) return `${stack}\ncauses have become circular...`;
  const cause = errorCause(err);
  if (cause === undefined) return stack;
  seen.add(err);
  return `${stack}\ncaused by: ${stackWithCauses(cause, seen)}`;
}

function messageWithCauses(err: ErrorLike, seen: Set<ErrorLike>, skip: boolean): string {
  const message = skip ? '' : err.message || '';
  if (seen.has(err)) return `${message}: ...`;
  const cause = errorCause(err);
  if (cause === undefined) return message;
  seen.add(err);
  const verrorStyle = typeof err.cause === 'function';
  return message + (verrorStyle ? '' : ': ') + messageWithCauses(cause, seen, verrorStyle);
}

/** A spare word to sleep on with `Atomics.wait` while standard output is full. */
const sleeper = new Int32Array(new SharedArrayBuffer(4));
let stdoutBroken = false;

/**
 * How lines reach standard output. Not `process.stdout.write`: for pipes it is asynchronous,
 * and lines written just before `process.exit()` (a daemon's last words) would be lost. So each
 * line is written with `fs.writeSync(1)`, as pino's sync mode does: on a full non-blocking pipe
 * (`EAGAIN`) it sleeps a millisecond and retries the rest, so nothing is dropped and order is
 * kept; the cost is that a reader that stops reading stalls the process, as a terminal would.
 * Logging volume is low (lifecycle events, warnings), so the synchronous write costs nothing
 * that matters. A closed reader (`EPIPE`) ends logging quietly, as pino did. When something
 * has replaced `process.stdout.write` (a test capturing output), lines go through it instead.
 */
function stdoutWriter(): (line: string) => void {
  const stdout = process.stdout;
  if (stdout.write !== (stdout.constructor as { prototype: NodeJS.WriteStream }).prototype.write)
    return (line) => stdout.write(line);
  return (line) => {
    if (stdoutBroken) return;
    const bytes = Buffer.from(line);
    let offset = 0;
    while (offset < bytes.length) {
      try {
        offset += writeSync(1, bytes, offset);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') Atomics.wait(sleeper, 0, 0, 1);
        else if (code === 'EPIPE') {
          stdoutBroken = true;
          return;
        } else throw err;
      }
    }
  };
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
