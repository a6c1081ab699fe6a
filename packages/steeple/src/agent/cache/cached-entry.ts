/**
 * A registration entry as the agent keeps it: parsed once from the Agent API message,
 * with its selectors in a form that makes "does this workload match" a set lookup.
 * @module
 */
import type { Entry } from '../../gen/steeple/types/v1/entry_pb.js';
import type { Selector } from '../attestation/workload-attestor.js';

/** One authorized entry, immutable. */
export interface CachedEntry {
  readonly id: string;
  readonly spiffeId: string;
  readonly parentId: string;
  readonly selectors: readonly Selector[];
  /** `type:value` of each selector, for matching. */
  readonly selectorKeys: readonly string[];
  /** Seconds; 0 = the server's default. */
  readonly x509SvidTtl: number;
  readonly jwtSvidTtl: number;
  readonly dnsNames: readonly string[];
  /** Trust domain names, without `spiffe://`. */
  readonly federatesWith: readonly string[];
  readonly hint: string;
  /** Epoch seconds. */
  readonly createdAt: number;
  readonly revision: bigint;
}

/** The agent's form of an Agent API entry. */
export function entryFromProto(e: Entry): CachedEntry {
  const selectors = e.selectors.map((s) => Object.freeze({ type: s.type, value: s.value }));
  return Object.freeze({
    id: e.id,
    spiffeId: e.spiffeId,
    parentId: e.parentId,
    selectors: Object.freeze(selectors),
    selectorKeys: Object.freeze(selectors.map((s) => `${s.type}:${s.value}`)),
    x509SvidTtl: e.x509SvidTtl,
    jwtSvidTtl: e.jwtSvidTtl,
    dnsNames: Object.freeze([...e.dnsNames]),
    federatesWith: Object.freeze([...e.federatesWith]),
    hint: e.hint,
    createdAt: Number(e.createdAt),
    revision: e.revisionNumber,
  });
}

/** Whether an entry applies to a workload: ALL of the entry's selectors are among the workload's. */
export function entryMatches(entry: CachedEntry, workloadSelectors: ReadonlySet<string>): boolean {
  if (entry.selectorKeys.length === 0) return false;
  for (const key of entry.selectorKeys) if (!workloadSelectors.has(key)) return false;
  return true;
}

/** Whether a change to the entry needs a new X.509-SVID (its ID, names or lifetime differ). */
export function x509FieldsDiffer(a: CachedEntry, b: CachedEntry): boolean {
  return (
    a.spiffeId !== b.spiffeId ||
    a.x509SvidTtl !== b.x509SvidTtl ||
    a.dnsNames.length !== b.dnsNames.length ||
    a.dnsNames.some((n, i) => n !== b.dnsNames[i])
  );
}

/** Oldest entry first, so adding an entry never changes a workload's default identity. */
export function compareEntries(a: CachedEntry, b: CachedEntry): number {
  return a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}
