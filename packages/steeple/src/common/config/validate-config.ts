/**
 * Validates a raw configuration object against a zod schema and turns zod's issues
 * into {@link ConfigIssue}s a person can act on: the full key path, a did-you-mean for
 * unknown keys, the allowed values of an enum, and the line in the file when known.
 * @module
 */
import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';
import { ConfigError, type ConfigIssue } from '../errors.js';
import { closestMatch } from './did-you-mean.js';

/** A key path inside a configuration: keys and list indices. */
export type ConfigPath = readonly (string | number)[];

/** Where a key or value sits in the source text (1-based). */
export interface SourcePosition {
  readonly line: number;
  readonly column: number;
}

/** Options of {@link validateConfig}. */
export interface ValidateConfigOptions {
  /** The file the configuration came from, named in the error. */
  readonly file?: string;
  /** Finds a key (`'key'`) or its value (`'value'`) in the source, for line numbers. */
  readonly locate?: (path: ConfigPath, what: 'key' | 'value') => SourcePosition | undefined;
  /** Dotted key paths set by command-line flags, mapped to the flag's name (`trust_domain` → `trustDomain`). */
  readonly flags?: ReadonlyMap<string, string>;
}

// zod/mini loads no message locale (its issues would all say "Invalid input"); zod classic
// installs English when its first schema is built. Do the same, unless a locale is already set,
// so that the messages this module passes through (issue.message) stay zod's English ones.
if (z.config().localeError === undefined) z.config(en());

/** Lists with more allowed keys than this are not printed after "unknown key". */
const MAX_LISTED_KEYS = 12;

/**
 * Parses `raw` with `schema` and returns the result deeply frozen.
 * @throws ConfigError (`ERR_CONFIG_INVALID`) listing every problem, each with its key path.
 */
export function validateConfig<S extends z.core.$ZodType>(
  raw: unknown,
  schema: S,
  options: ValidateConfigOptions = {},
): z.output<S> {
  const result = z.safeParse(schema, raw);
  if (result.success) return deepFreeze(result.data);
  const issues = result.error.issues.flatMap((issue) => toConfigIssues(issue, [], raw, schema));
  throw new ConfigError(placeIssues(issues, options), options.file === undefined ? {} : { file: options.file });
}

/** Formats a key path as `server.ca_ttl`, `node_attestors[0].type` or `labels["app.kubernetes.io/name"]`. */
export function formatConfigPath(path: ConfigPath): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

interface PathedIssue {
  readonly path: ConfigPath;
  readonly message: string;
  /** Unknown keys are located at the key; everything else at its value. */
  readonly at: 'key' | 'value';
}

function placeIssues(issues: readonly PathedIssue[], options: ValidateConfigOptions): ConfigIssue[] {
  const placed = issues.map((issue): ConfigIssue => {
    const path = formatConfigPath(issue.path);
    const flag = flagFor(path, options.flags);
    if (flag !== undefined) return { path, message: issue.message, flag };
    const position = locateNearest(issue, options.locate);
    return position === undefined
      ? { path, message: issue.message }
      : { path, message: issue.message, line: position.line, column: position.column };
  });
  // Stable sort: issues in file order, those without a line (flags, missing keys at the top) last.
  return placed
    .map((issue, index) => ({ issue, index }))
    .sort((a, b) => (a.issue.line ?? Infinity) - (b.issue.line ?? Infinity) || a.index - b.index)
    .map(({ issue }) => issue);
}

function flagFor(path: string, flags: ReadonlyMap<string, string> | undefined): string | undefined {
  if (flags === undefined) return undefined;
  for (const [key, flag] of flags) {
    if (path === key || path.startsWith(`${key}.`) || path.startsWith(`${key}[`)) return flag;
  }
  return undefined;
}

/**
 * A missing key has no place of its own; point at the key of the mapping that lacks it
 * instead. The document itself gets no line: "line 1" would mislead more than help.
 */
function locateNearest(issue: PathedIssue, locate: ValidateConfigOptions['locate']): SourcePosition | undefined {
  if (locate === undefined) return undefined;
  let path = issue.path;
  let at = issue.at;
  while (path.length > 0) {
    const position = locate(path, at);
    if (position !== undefined) return position;
    path = path.slice(0, -1);
    at = 'key';
  }
  return undefined;
}

function toConfigIssues(
  issue: z.core.$ZodIssue,
  base: ConfigPath,
  raw: unknown,
  schema: z.core.$ZodType,
): PathedIssue[] {
  const path = [...base, ...issue.path.filter((s): s is string | number => typeof s !== 'symbol')];
  const value = valueAt(raw, path);
  switch (issue.code) {
    case 'unrecognized_keys': {
      const known = knownKeysAt(schema, path);
      return issue.keys.map((key) => ({ path: [...path, key], message: unknownKeyMessage(key, known), at: 'key' }));
    }
    case 'invalid_type':
      if (path.length === 0) {
        return [{ path, message: `the file must be a mapping of keys, not ${describeValue(value)}`, at: 'value' }];
      }
      if (value === undefined) return [{ path, message: 'is required', at: 'value' }];
      return [
        { path, message: `expected ${describeExpected(issue.expected)}, got ${describeValue(value)}`, at: 'value' },
      ];
    case 'invalid_value':
      return [{ path, message: notOneOfMessage(issue.values, value), at: 'value' }];
    case 'invalid_union': {
      if (issue.discriminator !== undefined && 'options' in issue && issue.options !== undefined) {
        return [{ path, message: notOneOfMessage(issue.options, value), at: 'value' }];
      }
      return unionIssues(issue.errors, path, value, raw, schema);
    }
    case 'too_small':
      return [{ path, message: tooSmallMessage(issue), at: 'value' }];
    case 'too_big':
      return [{ path, message: tooBigMessage(issue), at: 'value' }];
    default:
      return [{ path, message: issue.message, at: 'value' }];
  }
}

/**
 * A union failed. When every branch merely wanted another type, say which types would do;
 * otherwise report the branch that came closest (the one whose type matched, with the fewest problems).
 */
function unionIssues(
  branches: readonly (readonly z.core.$ZodIssue[])[],
  path: ConfigPath,
  value: unknown,
  raw: unknown,
  schema: z.core.$ZodType,
): PathedIssue[] {
  const wrongType = (b: readonly z.core.$ZodIssue[]) =>
    b.length === 1 && b[0]?.code === 'invalid_type' && b[0].path.length === 0;
  if (branches.length > 0 && branches.every(wrongType)) {
    const expected = branches.map((b) => describeExpected((b[0] as z.core.$ZodIssueInvalidType).expected));
    if (value === undefined) return [{ path, message: 'is required', at: 'value' }];
    return [{ path, message: `expected ${expected.join(' or ')}, got ${describeValue(value)}`, at: 'value' }];
  }
  const candidates = branches.filter((b) => !wrongType(b));
  const closest = [...candidates].sort((a, b) => a.length - b.length)[0];
  if (closest === undefined) return [{ path, message: 'does not match any allowed form', at: 'value' }];
  return closest.flatMap((issue) => toConfigIssues(issue, path, raw, schema));
}

function unknownKeyMessage(key: string, known: readonly string[]): string {
  const suggestion = closestMatch(key, known);
  if (suggestion !== undefined) return `unknown key (did you mean ${JSON.stringify(suggestion)}?)`;
  if (known.length > 0 && known.length <= MAX_LISTED_KEYS) return `unknown key (known keys: ${known.join(', ')})`;
  return 'unknown key';
}

function notOneOfMessage(allowed: readonly unknown[], value: unknown): string {
  const list = allowed.map((v) => JSON.stringify(v)).join(', ');
  if (value === undefined) return `is required (one of ${list})`;
  return `${JSON.stringify(value)} is not one of ${list}`;
}

function tooSmallMessage(issue: z.core.$ZodIssueTooSmall): string {
  const min = String(issue.minimum);
  switch (issue.origin) {
    case 'string':
      return issue.minimum === 1 ? 'must not be empty' : `must be at least ${min} characters long`;
    case 'array':
    case 'set':
      return issue.minimum === 1 ? 'must not be empty' : `must have at least ${min} items`;
    case 'number':
    case 'int':
    case 'bigint':
      return issue.inclusive === false ? `must be greater than ${min}` : `must be at least ${min}`;
    default:
      return issue.message;
  }
}

function tooBigMessage(issue: z.core.$ZodIssueTooBig): string {
  const max = String(issue.maximum);
  switch (issue.origin) {
    case 'string':
      return `must be at most ${max} characters long`;
    case 'array':
    case 'set':
      return `must have at most ${max} items`;
    case 'number':
    case 'int':
    case 'bigint':
      return issue.inclusive === false ? `must be less than ${max}` : `must be at most ${max}`;
    default:
      return issue.message;
  }
}

const EXPECTED_WORDS: Record<string, string> = {
  object: 'a mapping of keys',
  record: 'a mapping of keys',
  array: 'a list',
  tuple: 'a list',
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  null: 'null',
};

function describeExpected(expected: string): string {
  return EXPECTED_WORDS[expected] ?? expected;
}

/** Names a value's kind without showing it: a wrongly typed value may be a secret (`join_token: 12345`). */
function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  switch (typeof value) {
    case 'string':
      return 'a string';
    case 'number':
      return 'a number';
    case 'boolean':
      return 'a boolean';
    case 'object':
      return 'a mapping of keys';
    default:
      return typeof value;
  }
}

function valueAt(raw: unknown, path: ConfigPath): unknown {
  let node = raw;
  for (const segment of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string | number, unknown>)[segment];
  }
  return node;
}

/** The slice of zod's internal schema definition this module walks. */
interface SchemaDef {
  readonly type: string;
  readonly shape?: Record<string, z.core.$ZodType>;
  readonly innerType?: z.core.$ZodType;
  readonly in?: z.core.$ZodType;
  readonly element?: z.core.$ZodType;
  readonly valueType?: z.core.$ZodType;
  readonly options?: readonly z.core.$ZodType[];
  readonly left?: z.core.$ZodType;
  readonly right?: z.core.$ZodType;
  readonly items?: readonly z.core.$ZodType[];
  readonly getter?: () => z.core.$ZodType;
}

function defOf(schema: z.core.$ZodType): SchemaDef {
  return (schema as unknown as { _zod: { def: SchemaDef } })._zod.def;
}

/** The keys an object schema at `path` allows, for did-you-mean; empty when the schema is not understood. */
function knownKeysAt(schema: z.core.$ZodType, path: ConfigPath): string[] {
  const keys = new Set<string>();
  const visit = (node: z.core.$ZodType, rest: ConfigPath, depth: number): void => {
    if (depth > 64) return; // recursive (lazy) schemas
    const def = defOf(node);
    const next = (child: z.core.$ZodType | undefined, remaining: ConfigPath) => {
      if (child !== undefined) visit(child, remaining, depth + 1);
    };
    switch (def.type) {
      case 'object':
        if (rest.length === 0) for (const key of Object.keys(def.shape ?? {})) keys.add(key);
        else next(def.shape?.[String(rest[0])], rest.slice(1));
        return;
      case 'optional':
      case 'nullable':
      case 'default':
      case 'prefault':
      case 'catch':
      case 'readonly':
      case 'nonoptional':
        next(def.innerType, rest);
        return;
      case 'pipe':
        next(def.in, rest);
        return;
      case 'lazy':
        next(def.getter?.(), rest);
        return;
      case 'union':
        for (const option of def.options ?? []) next(option, rest);
        return;
      case 'intersection':
        next(def.left, rest);
        next(def.right, rest);
        return;
      case 'array':
        if (rest.length > 0) next(def.element, rest.slice(1));
        return;
      case 'tuple':
        if (rest.length > 0) next(def.items?.[Number(rest[0])], rest.slice(1));
        return;
      case 'record':
        if (rest.length > 0) next(def.valueType, rest.slice(1));
        return;
      default:
        return;
    }
  };
  try {
    visit(schema, path, 0);
  } catch {
    return []; // a suggestion is a courtesy; never let it hide the real error
  }
  return [...keys];
}

/** Freezes plain objects and arrays all the way down; class instances (SpiffeId, Buffer, …) are left as they are. */
export function deepFreeze<T>(value: T, seen = new WeakSet<object>()): T {
  if (value === null || typeof value !== 'object' || seen.has(value)) return value;
  const proto = Object.getPrototypeOf(value);
  if (!Array.isArray(value) && proto !== Object.prototype && proto !== null) return value;
  seen.add(value);
  for (const child of Object.values(value)) deepFreeze(child, seen);
  return Object.freeze(value);
}
