/**
 * `${NAME}` references in configuration string values, replaced by environment
 * variables (SPIRE's `-expandEnv`). Unlike SPIRE, which expands the raw text, this runs
 * on parsed values, so a variable can never inject YAML structure; and an unset variable
 * is an error rather than an empty string.
 * @module
 */
import type { ConfigPath } from './validate-config.js';

/** A reference that could not be expanded. */
export interface EnvExpansionProblem {
  readonly path: ConfigPath;
  readonly message: string;
}

const REFERENCE = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
const WHOLE_REFERENCE = /^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/;

/**
 * Returns a copy of `raw` with `${NAME}` replaced in every string value (keys are left
 * alone) and `$$` turned into a literal `$`. A value that is exactly one reference
 * becomes a number or boolean when the variable holds one, as if it had been written
 * in the file (`bind_port: ${PORT}` → 8081).
 */
export function expandEnv(
  raw: unknown,
  env: Readonly<Record<string, string | undefined>>,
): { value: unknown; problems: EnvExpansionProblem[] } {
  const problems: EnvExpansionProblem[] = [];
  const visit = (node: unknown, path: ConfigPath): unknown => {
    if (typeof node === 'string') return expandString(node, path);
    if (Array.isArray(node)) return node.map((item, i) => visit(item, [...path, i]));
    if (node !== null && typeof node === 'object') {
      return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, visit(v, [...path, k])]));
    }
    return node;
  };
  const expandString = (text: string, path: ConfigPath): unknown => {
    const expanded = text.replace(REFERENCE, (match, name: string | undefined) => {
      if (name === undefined) return '$';
      const found = env[name];
      if (found === undefined) {
        problems.push({ path, message: `environment variable ${name} is not set` });
        return match;
      }
      return found;
    });
    return WHOLE_REFERENCE.test(text) ? asScalar(expanded) : expanded;
  };
  return { value: visit(raw, []), problems };
}

function asScalar(text: string): string | number | boolean {
  if (text === 'true') return true;
  if (text === 'false') return false;
  if (/^-?(?:0|[1-9]\d*)(?:\.\d+)?$/.test(text)) return Number(text);
  return text;
}
