/**
 * Validates a policy document given as a plain object (from `JSON.parse`, a YAML parser
 * of your choice, or written in code) and turns every problem into a {@link PolicyIssue}
 * that names its key path: `policies[0].action: "PERMIT" is not one of "ALLOW", "DENY", "AUDIT"`.
 * The wording is the one `steeple proxy check` prints for a policy file.
 * @module
 */
import type * as z from 'zod/mini';
import { PolicyError, type PolicyIssue } from '../errors.js';
import { type PolicyFile, PolicyFileSchema } from './policy-schema.js';

type Path = readonly (string | number)[];

/**
 * Validates `raw` against the policy schema (the same one the proxy reads its policy file with).
 * @throws PolicyError (`ERR_POLICY_INVALID`) listing every problem with its key path.
 * @example
 * const file = parsePolicyFile({
 *   policies: [{ name: 'frontend', action: 'ALLOW', rules: [{ from: [{ source: { principals: ['spiffe://example.org/web'] } }] }] }],
 * });
 */
export function parsePolicyFile(raw: unknown): PolicyFile {
  const result = PolicyFileSchema.safeParse(raw);
  if (result.success) return result.data;
  throw new PolicyError(result.error.issues.flatMap((issue) => toIssues(issue, [], raw)));
}

/** Formats a key path as `policies[0].rules[1].from[0].source.principals` or `x["a.b"]`. */
export function formatPolicyPath(path: Path): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

function toIssues(issue: z.core.$ZodIssue, base: Path, raw: unknown): PolicyIssue[] {
  const path = [...base, ...issue.path.filter((s): s is string | number => typeof s !== 'symbol')];
  const value = valueAt(raw, path);
  const at = (message: string, p: Path = path): PolicyIssue => ({ path: formatPolicyPath(p), message });
  switch (issue.code) {
    case 'unrecognized_keys': {
      const known = knownKeysAt(PolicyFileSchema, path);
      return issue.keys.map((key) => at(unknownKeyMessage(key, known), [...path, key]));
    }
    case 'invalid_type':
      if (path.length === 0) return [at(`the document must be a mapping of keys, not ${describeValue(value)}`)];
      if (value === undefined) return [at('is required')];
      return [at(`expected ${describeExpected(issue.expected)}, got ${describeValue(value)}`)];
    case 'invalid_value': {
      const list = issue.values.map((v) => JSON.stringify(v)).join(', ');
      return [
        at(value === undefined ? `is required (one of ${list})` : `${JSON.stringify(value)} is not one of ${list}`),
      ];
    }
    case 'invalid_union': {
      const wrongType = (b: readonly z.core.$ZodIssue[]) =>
        b.length === 1 && b[0]?.code === 'invalid_type' && b[0].path.length === 0;
      if (issue.errors.length > 0 && issue.errors.every(wrongType)) {
        if (value === undefined) return [at('is required')];
        const expected = issue.errors.map((b) => describeExpected((b[0] as z.core.$ZodIssueInvalidType).expected));
        return [at(`expected ${expected.join(' or ')}, got ${describeValue(value)}`)];
      }
      const closest = issue.errors.filter((b) => !wrongType(b)).sort((a, b) => a.length - b.length)[0];
      if (closest === undefined) return [at('does not match any allowed form')];
      return closest.flatMap((inner) => toIssues(inner, path, raw));
    }
    case 'too_small':
      if (issue.minimum === 1 && (issue.origin === 'array' || issue.origin === 'string'))
        return [at('must not be empty')];
      return [at(issue.origin === 'array' ? `must have at least ${String(issue.minimum)} items` : issue.message)];
    default:
      return [at(issue.message)];
  }
}

function unknownKeyMessage(key: string, known: readonly string[]): string {
  const suggestion = closestMatch(key, known);
  if (suggestion !== undefined) return `unknown key (did you mean ${JSON.stringify(suggestion)}?)`;
  if (known.length > 0 && known.length <= 12) return `unknown key (known keys: ${known.join(', ')})`;
  return 'unknown key';
}

const EXPECTED_WORDS: Record<string, string> = {
  object: 'a mapping of keys',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  boolean: 'true or false',
};

function describeExpected(expected: string): string {
  return EXPECTED_WORDS[expected] ?? expected;
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping of keys';
  return typeof value === 'string' || typeof value === 'number' ? `a ${typeof value}` : typeof value;
}

function valueAt(raw: unknown, path: Path): unknown {
  let node = raw;
  for (const segment of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string | number, unknown>)[segment];
  }
  return node;
}

interface SchemaDef {
  readonly type: string;
  readonly shape?: Record<string, z.core.$ZodType>;
  readonly innerType?: z.core.$ZodType;
  readonly in?: z.core.$ZodType;
  readonly element?: z.core.$ZodType;
}

/** The keys the object schema at `path` allows (for did-you-mean). */
function knownKeysAt(schema: z.core.$ZodType, path: Path): string[] {
  let node: z.core.$ZodType | undefined = schema;
  let rest = path;
  for (let depth = 0; node !== undefined && depth < 64; depth++) {
    const def: SchemaDef = (node as unknown as { _zod: { def: SchemaDef } })._zod.def;
    if (def.type === 'object') {
      if (rest.length === 0) return Object.keys(def.shape ?? {});
      node = def.shape?.[String(rest[0])];
      rest = rest.slice(1);
    } else if (def.type === 'array' && rest.length > 0) {
      node = def.element;
      rest = rest.slice(1);
    } else if (def.type === 'pipe') {
      node = def.in;
    } else {
      node = def.innerType;
    }
  }
  return [];
}

/** Edit distance with swaps of neighbours counted as one edit (optimal string alignment). */
function editDistance(a: string, b: string): number {
  const cols = b.length + 1;
  const d: number[] = new Array((a.length + 1) * cols).fill(0);
  const at = (i: number, j: number) => d[i * cols + j] as number;
  for (let i = 0; i <= a.length; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j < cols; j++) {
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      d[i * cols + j] = best;
    }
  }
  return at(a.length, b.length);
}

/** The candidate within a third of the input's length in edits (at least one), ignoring case. */
function closestMatch(input: string, candidates: readonly string[]): string | undefined {
  const limit = Math.max(1, Math.floor(input.length / 3));
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const distance = editDistance(input.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= limit ? best : undefined;
}
