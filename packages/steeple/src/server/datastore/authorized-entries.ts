/**
 * Which entries an agent may receive (and have SVIDs signed for), as SPIRE decides it:
 * start from the agent's own SPIFFE ID and the SPIFFE IDs of the node aliases whose selectors
 * are all among the agent's node selectors; every entry whose parent is one of those IDs is
 * authorized, and so, transitively, is every entry whose parent is the SPIFFE ID of an
 * authorized entry (downstream and nested chains). Node alias entries themselves are never
 * handed to agents.
 *
 * {@link EntryIndex} answers this from memory and is updated entry by entry (EntryCache keeps
 * it current from the event log); {@link computeAuthorizedEntries} is the plain full-scan
 * definition, kept as the reference the index is tested against.
 * @module
 */
import { isSelectorSubset, selectorKey } from './selector-set.js';
import type { RegistrationEntry, Selector } from './types.js';

const SERVER_PATH = '/spire/server';

/** `spiffe://<td>/spire/server`: the parent that makes an entry a node alias. */
export function serverIdFor(trustDomain: string): string {
  return `spiffe://${trustDomain}${SERVER_PATH}`;
}

/** True when the entry's parent is its trust domain's server ID. */
export function isNodeAlias(entry: Pick<RegistrationEntry, 'parentId'>): boolean {
  const id = entry.parentId;
  if (!id.startsWith('spiffe://')) return false;
  const slash = id.indexOf('/', 'spiffe://'.length);
  return slash > 0 && id.slice(slash) === SERVER_PATH;
}

function byId(a: RegistrationEntry, b: RegistrationEntry): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function aliasMatches(alias: RegistrationEntry, agentKeys: ReadonlySet<string>): boolean {
  // An alias without selectors would match every agent; SPIRE never matches it, nor do we.
  return alias.selectors.length > 0 && isSelectorSubset(alias.selectors, agentKeys);
}

/** The reference definition: a fixpoint over all entries. Sorted by id. */
export function computeAuthorizedEntries(
  entries: Iterable<RegistrationEntry>,
  agentId: string,
  agentSelectors: readonly Selector[],
): RegistrationEntry[] {
  const all = [...entries];
  const agentKeys = new Set(agentSelectors.map(selectorKey));
  const parents = new Set([agentId]);
  for (const e of all) if (isNodeAlias(e) && aliasMatches(e, agentKeys)) parents.add(e.spiffeId);
  const found = new Map<string, RegistrationEntry>();
  for (let grew = true; grew; ) {
    grew = false;
    for (const e of all) {
      if (found.has(e.id) || isNodeAlias(e) || !parents.has(e.parentId)) continue;
      found.set(e.id, e);
      parents.add(e.spiffeId);
      grew = true;
    }
  }
  return [...found.values()].sort(byId);
}

/** Entries indexed by parent and node aliases by selector, for authorization lookups in O(result). */
export class EntryIndex {
  readonly #byId = new Map<string, RegistrationEntry>();
  readonly #byParent = new Map<string, Map<string, RegistrationEntry>>();
  readonly #aliasesBySelector = new Map<string, Map<string, RegistrationEntry>>();

  constructor(entries: Iterable<RegistrationEntry> = []) {
    for (const e of entries) this.upsert(e);
  }

  get size(): number {
    return this.#byId.size;
  }

  get(id: string): RegistrationEntry | undefined {
    return this.#byId.get(id);
  }

  entries(): IterableIterator<RegistrationEntry> {
    return this.#byId.values();
  }

  /** Adds the entry or replaces the one with the same id. */
  upsert(entry: RegistrationEntry): void {
    this.remove(entry.id);
    this.#byId.set(entry.id, entry);
    if (isNodeAlias(entry)) {
      for (const s of entry.selectors) bucket(this.#aliasesBySelector, selectorKey(s)).set(entry.id, entry);
    } else {
      bucket(this.#byParent, entry.parentId).set(entry.id, entry);
    }
  }

  /** Removes the entry with this id; true when there was one. */
  remove(id: string): boolean {
    const old = this.#byId.get(id);
    if (old === undefined) return false;
    this.#byId.delete(id);
    if (isNodeAlias(old)) {
      for (const s of old.selectors) unbucket(this.#aliasesBySelector, selectorKey(s), id);
    } else {
      unbucket(this.#byParent, old.parentId, id);
    }
    return true;
  }

  /** The node alias entries whose selectors are all among the agent's. */
  aliasesOf(agentSelectors: readonly Selector[]): RegistrationEntry[] {
    const agentKeys = new Set(agentSelectors.map(selectorKey));
    const seen = new Map<string, RegistrationEntry>();
    for (const key of agentKeys) {
      for (const alias of this.#aliasesBySelector.get(key)?.values() ?? []) {
        if (!seen.has(alias.id) && aliasMatches(alias, agentKeys)) seen.set(alias.id, alias);
      }
    }
    return [...seen.values()].sort(byId);
  }

  /** The entries the agent is authorized for (see the module comment). Sorted by id. */
  authorizedEntries(agentId: string, agentSelectors: readonly Selector[]): RegistrationEntry[] {
    const found: RegistrationEntry[] = [];
    const parentsSeen = new Set<string>();
    const pending = [agentId, ...this.aliasesOf(agentSelectors).map((a) => a.spiffeId)];
    while (pending.length > 0) {
      const parent = pending.pop()!;
      if (parentsSeen.has(parent)) continue;
      parentsSeen.add(parent);
      for (const e of this.#byParent.get(parent)?.values() ?? []) {
        found.push(e);
        pending.push(e.spiffeId);
      }
    }
    return found.sort(byId);
  }
}

function bucket<V>(map: Map<string, Map<string, V>>, key: string): Map<string, V> {
  let m = map.get(key);
  if (m === undefined) {
    m = new Map();
    map.set(key, m);
  }
  return m;
}

function unbucket<V>(map: Map<string, Map<string, V>>, key: string, id: string): void {
  const m = map.get(key);
  if (m === undefined) return;
  m.delete(id);
  if (m.size === 0) map.delete(key);
}
