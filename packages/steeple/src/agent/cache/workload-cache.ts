/**
 * Everything the Workload API serves from: the authorized entries, the X.509-SVIDs the
 * agent holds for them, and the bundles. Streams subscribe with {@link WorkloadCache.onChange}
 * and recompute their caller's view on each change; a view is "the entries whose selectors
 * are all among the caller's, oldest first, with their SVIDs and federated trust domains".
 *
 * Which entries are served at all: those parented by this agent or by one of its node
 * aliases (an entry parented by the server, or the join-token alias parented by the agent),
 * and whose selector types some configured workload attestor produces. The server also
 * sends entries further down (parented by a workload identity, for nested deployments) and
 * the alias entries themselves; those never identify a local process.
 * @module
 */

import type { BundleCache } from './bundle-cache.js';
import { type CachedEntry, compareEntries, entryMatches } from './cached-entry.js';
import type { EntryCache } from './entry-cache.js';
import type { IssuedX509Svid } from './issued-x509-svid.js';

/** One identity of a workload: an entry and, once signed, its SVID. */
export interface WorkloadIdentity {
  readonly entry: CachedEntry;
  readonly svid: IssuedX509Svid | undefined;
}

/** What one caller is entitled to right now. */
export interface WorkloadView {
  /** Matching entries, oldest first (the first is the default identity). */
  readonly identities: readonly WorkloadIdentity[];
  /** Foreign trust domains named in the matching entries' `federates_with`, sorted. */
  readonly federatesWith: readonly string[];
}

/** What changed, so a stream can skip recomputing when nothing it shows moved. */
export interface CacheChange {
  readonly entries: boolean;
  readonly svids: boolean;
  /** Trust domains whose bundle changed. */
  readonly bundles: ReadonlySet<string>;
}

export interface WorkloadCacheOptions {
  readonly entries: EntryCache;
  readonly bundles: BundleCache;
  /** The agent's SPIFFE ID. */
  readonly agentId: string;
  /** Selector types the configured workload attestors produce (`unix`). */
  readonly selectorTypes: readonly string[];
}

export class WorkloadCache {
  readonly entries: EntryCache;
  readonly bundles: BundleCache;
  readonly svids = new Map<string, IssuedX509Svid>();
  #agentId: string;
  readonly #selectorTypes: ReadonlySet<string>;
  readonly #listeners = new Set<(change: CacheChange) => void>();
  #served: CachedEntry[] | undefined;
  #version = 0;

  constructor(options: WorkloadCacheOptions) {
    this.entries = options.entries;
    this.bundles = options.bundles;
    this.#agentId = options.agentId;
    this.#selectorTypes = new Set(options.selectorTypes);
  }

  get agentId(): string {
    return this.#agentId;
  }

  set agentId(id: string) {
    if (id === this.#agentId) return;
    this.#agentId = id;
    this.#served = undefined;
  }

  /** Grows by one with every {@link WorkloadCache.notify}. */
  get version(): number {
    return this.#version;
  }

  /** Calls `listener` after every change; returns the unsubscribe function. */
  onChange(listener: (change: CacheChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Tells every subscriber that the entries, SVIDs or bundles changed. */
  notify(change: CacheChange): void {
    if (change.entries) this.#served = undefined;
    this.#version++;
    for (const listener of [...this.#listeners]) listener(change);
  }

  /** How many streams are subscribed. */
  get subscribers(): number {
    return this.#listeners.size;
  }

  /** The entries that can identify a local process (see the module comment), oldest first. */
  servedEntries(): readonly CachedEntry[] {
    if (this.#served !== undefined) return this.#served;
    const agentId = this.#agentId;
    const serverId = `spiffe://${this.bundles.trustDomain}/spire/server`;
    const nodeIds = new Set([agentId]);
    for (const e of this.entries.values()) {
      const alias =
        e.parentId === serverId ||
        (e.parentId === agentId && e.selectors.length > 0 && e.selectors.every((s) => s.type === 'spiffe_id'));
      if (alias) nodeIds.add(e.spiffeId);
    }
    const served: CachedEntry[] = [];
    for (const e of this.entries.values()) {
      if (!nodeIds.has(e.parentId) || nodeIds.has(e.spiffeId)) continue;
      if (e.selectors.length === 0 || !e.selectors.every((s) => this.#selectorTypes.has(s.type))) continue;
      served.push(e);
    }
    served.sort(compareEntries);
    this.#served = served;
    return served;
  }

  /** The caller's view for its attested selectors (`type:value` strings). */
  view(selectors: ReadonlySet<string>): WorkloadView {
    const identities: WorkloadIdentity[] = [];
    const federated = new Set<string>();
    const own = this.bundles.trustDomain;
    for (const entry of this.servedEntries()) {
      if (!entryMatches(entry, selectors)) continue;
      identities.push({ entry, svid: this.svids.get(entry.id) });
      for (const td of entry.federatesWith) if (td !== own) federated.add(td);
    }
    return { identities, federatesWith: [...federated].sort() };
  }
}
