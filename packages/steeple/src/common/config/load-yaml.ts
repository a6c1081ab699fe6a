/**
 * Reads a YAML configuration file and validates it against a zod schema: YAML syntax
 * errors, duplicate keys, unset `${ENV}` references and schema violations all become one
 * {@link ConfigError} that lists every problem with its key path and line.
 * @module
 */
import { readFileSync } from 'node:fs';
import { type Document, isAlias, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import type * as z from 'zod/mini';
import { ConfigError, type ConfigIssue } from '../errors.js';
import { applyFlagOverrides, type FlagOverride } from './apply-flag-overrides.js';
import { expandEnv } from './expand-env.js';
import { type ConfigPath, formatConfigPath, type SourcePosition, validateConfig } from './validate-config.js';

/** Options of {@link loadYamlConfig} and {@link parseYamlConfig}. */
export interface LoadYamlConfigOptions {
  /** Replace `${NAME}` in string values with environment variables (SPIRE's `-expandEnv`). Default false. */
  readonly expandEnv?: boolean;
  /** The environment for `expandEnv`; default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Command-line flags that override keys of the file; see {@link applyFlagOverrides}. */
  readonly overrides?: readonly FlagOverride[];
}

/** Guards against "billion laughs" documents built from nested aliases. */
const MAX_ALIAS_COUNT = 100;

/**
 * Reads `file`, parses it as YAML and validates it with `schema` (build it from
 * `z.strictObject` so unknown keys are errors). Returns the parsed value, deeply frozen.
 * @throws ConfigError `ERR_CONFIG_UNREADABLE` when the file cannot be read,
 *   `ERR_CONFIG_INVALID` listing every problem otherwise.
 * @example
 * const config = loadYamlConfig('server.yaml', ServerConfigSchema, {
 *   overrides: [{ key: 'trust_domain', flag: 'trustDomain', value: opts.trustDomain }],
 * });
 */
export function loadYamlConfig<S extends z.core.$ZodType>(
  file: string,
  schema: S,
  options: LoadYamlConfigOptions = {},
): z.output<S> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    const reason = readFailure(cause);
    throw new ConfigError([{ path: '', message: reason }], { file, code: 'ERR_CONFIG_UNREADABLE', cause });
  }
  return parseYamlConfig(text, schema, { ...options, file });
}

/** Like {@link loadYamlConfig}, for YAML text already in hand; `file` only names the source in errors. */
export function parseYamlConfig<S extends z.core.$ZodType>(
  text: string,
  schema: S,
  options: LoadYamlConfigOptions & { readonly file?: string } = {},
): z.output<S> {
  const fileOption = options.file === undefined ? {} : { file: options.file };
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: false, prettyErrors: false });
  const positionOf = (offset: number | undefined): SourcePosition | undefined => {
    if (offset === undefined) return undefined;
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };

  const syntaxIssues: ConfigIssue[] = doc.errors.map((error) => ({
    path: '',
    message:
      error.code === 'MULTIPLE_DOCS'
        ? 'a configuration file holds one YAML document, this one has several (a second "---")'
        : `YAML syntax: ${error.message}`,
    ...positionOf(error.pos[0]),
  }));
  if (syntaxIssues.length > 0) throw new ConfigError(syntaxIssues, fileOption);

  const duplicates = duplicateKeys(doc, positionOf);
  if (duplicates.length > 0) throw new ConfigError(duplicates, fileOption);

  const locate = (path: ConfigPath, what: 'key' | 'value') =>
    positionOf(findNode(doc.contents, path, what)?.range?.[0]);
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) ?? {};
  } catch (cause) {
    // The yaml library refuses documents whose aliases would expand without bound.
    throw new ConfigError([{ path: '', message: `YAML: ${(cause as Error).message}` }], { ...fileOption, cause });
  }

  if (options.expandEnv === true) {
    const expanded = expandEnv(raw, options.env ?? process.env);
    if (expanded.problems.length > 0) {
      const issues = expanded.problems.map((p) => ({
        path: formatConfigPath(p.path),
        message: p.message,
        ...locate(p.path, 'value'),
      }));
      throw new ConfigError(issues, fileOption);
    }
    raw = expanded.value;
  }

  const overridden = applyFlagOverrides(raw, options.overrides ?? []);
  return validateConfig(overridden.raw, schema, { ...fileOption, locate, flags: overridden.flags });
}

function readFailure(cause: unknown): string {
  const code = (cause as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'file does not exist';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory, not a file';
  return (cause as Error).message;
}

/** Finds the YAML node of a key (`'key'`) or of its value (`'value'`) by key path. */
function findNode(root: unknown, path: ConfigPath, what: 'key' | 'value'): Node | undefined {
  let node = root;
  for (let i = 0; i < path.length; i++) {
    const segment = path[i];
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
      if (pair === undefined) return undefined;
      if (last && what === 'key') return pair.key as Node;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      node = node.items[segment];
    } else {
      return undefined;
    }
  }
  return (node ?? undefined) as Node | undefined;
}

/** YAML allows a repeated key and keeps the last; a config file that repeats one is a mistake. */
function duplicateKeys(
  doc: Document.Parsed,
  positionOf: (offset: number | undefined) => SourcePosition | undefined,
): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const visit = (node: unknown, path: ConfigPath): void => {
    if (isAlias(node)) return;
    if (isSeq(node)) {
      for (const [i, item] of node.items.entries()) visit(item, [...path, i]);
      return;
    }
    if (!isMap(node)) return;
    const seen = new Map<string, SourcePosition | undefined>();
    for (const pair of node.items) {
      if (!isScalar(pair.key)) continue;
      const key = String(pair.key.value);
      const here = positionOf(pair.key.range?.[0]);
      const first = seen.get(key);
      if (seen.has(key)) {
        const where = first === undefined ? '' : ` (first set on line ${first.line})`;
        issues.push({ path: formatConfigPath([...path, key]), message: `duplicate key${where}`, ...here });
      } else {
        seen.set(key, here);
      }
      visit(pair.value, [...path, key]);
    }
  };
  visit(doc.contents, []);
  return issues;
}
