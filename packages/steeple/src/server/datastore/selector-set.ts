/**
 * Sets of selectors and trust domain names: the canonical form the store keeps, and the
 * four match modes, in memory. The SQL filters in entry-filter.ts must agree with
 * {@link matchesSet}; the contract tests compare the two.
 * @module
 */
import type { Selector, SetMatch } from './types.js';

/** `type:value`, the key under which a selector is compared (types never contain ':'). */
export function selectorKey(s: Selector): string {
  return `${s.type}:${s.value}`;
}

function compareSelectors(a: Selector, b: Selector): number {
  if (a.type !== b.type) return a.type < b.type ? -1 : 1;
  if (a.value !== b.value) return a.value < b.value ? -1 : 1;
  return 0;
}

/** Sorted by type then value (code-unit order, as on every engine), duplicates removed, frozen copies. */
export function normalizeSelectors(selectors: readonly Selector[]): readonly Selector[] {
  const sorted = selectors.map((s) => ({ type: s.type, value: s.value })).sort(compareSelectors);
  const out: Selector[] = [];
  for (const s of sorted) {
    const last = out[out.length - 1];
    if (last === undefined || compareSelectors(last, s) !== 0) out.push(Object.freeze(s));
  }
  return Object.freeze(out);
}

/** Sorted, duplicates removed. */
export function normalizeNames(names: readonly string[]): readonly string[] {
  return Object.freeze([...new Set(names)].sort());
}

/** Duplicates removed, first occurrence kept in place. */
export function dedupeInOrder(names: readonly string[]): readonly string[] {
  return Object.freeze([...new Set(names)]);
}

/** Compares a record's set with a filter's set; both as keys (selectorKey or trust domain names). */
export function matchesSet(recordSet: ReadonlySet<string>, filterSet: ReadonlySet<string>, match: SetMatch): boolean {
  switch (match) {
    case 'exact':
      return recordSet.size === filterSet.size && [...filterSet].every((k) => recordSet.has(k));
    case 'subset':
      return [...recordSet].every((k) => filterSet.has(k));
    case 'superset':
      return [...filterSet].every((k) => recordSet.has(k));
    case 'any':
      return [...filterSet].some((k) => recordSet.has(k));
  }
}

/** True when every selector of `inner` is in `outer`. */
export function isSelectorSubset(inner: readonly Selector[], outer: ReadonlySet<string>): boolean {
  return inner.every((s) => outer.has(selectorKey(s)));
}
