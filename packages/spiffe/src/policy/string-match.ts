/**
 * Istio's string match for policy values: `"abc"` exact, `"abc*"` prefix, `"*abc"`
 * suffix, and `"*"` any non-empty value. A list of patterns matches when any does.
 * @module
 */

/** Why a pattern is not one, or undefined when it is fine. */
export function brokenPatternRule(pattern: string): string | undefined {
  if (pattern === '') return 'must not be empty';
  const inner = pattern.slice(1, -1);
  if (inner.includes('*')) return 'a "*" may stand only at the start or at the end';
  if (pattern.length > 1 && pattern.startsWith('*') && pattern.endsWith('*')) {
    return 'a "*" may stand at the start or at the end, not both';
  }
  return undefined;
}

/** A matcher for a list of patterns; `caseInsensitive` lower-cases patterns and values (hosts). */
export function matchAnyPattern(patterns: readonly string[], caseInsensitive = false): (value: string) => boolean {
  const fold = (s: string) => (caseInsensitive ? s.toLowerCase() : s);
  const exact = new Set<string>();
  const prefixes: string[] = [];
  const suffixes: string[] = [];
  let any = false;
  for (const raw of patterns) {
    const p = fold(raw);
    if (p === '*') any = true;
    else if (p.endsWith('*')) prefixes.push(p.slice(0, -1));
    else if (p.startsWith('*')) suffixes.push(p.slice(1));
    else exact.add(p);
  }
  return (input) => {
    if (input === '') return false;
    if (any) return true;
    const v = fold(input);
    if (exact.has(v)) return true;
    for (const p of prefixes) if (v.startsWith(p)) return true;
    for (const s of suffixes) if (v.endsWith(s)) return true;
    return false;
  };
}
