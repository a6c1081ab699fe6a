/**
 * The server's in-memory copy of all entries, kept current from the event log: load a full
 * snapshot once, then apply the changes since the cached revision. Authorization lookups
 * (which entries an agent may sync or get signed) then never touch the database.
 * @module
 */
import { EntryIndex } from './authorized-entries.js';
import { isDatastoreError } from './datastore-error.js';
import { selectorKey } from './selector-set.js';
import type { EntryChanges, RegistrationEntry, Selector } from './types.js';

/** What the cache reads; EntryStore implements it. */
export interface EntryChangeSource {
  snapshot(): Promise<{ revision: number; entries: readonly RegistrationEntry[] }>;
  changesSince(since: number, limit?: number): Promise<EntryChanges>;
}

export interface EntryCacheSyncResult {
  /** True when the cache had to reload everything (its revision was pruned from the log). */
  readonly reloaded: boolean;
  /** Ids of entries created, updated or deleted since the previous sync (empty after a reload). */
  readonly changedIds: readonly string[];
  readonly revision: number;
}

/** How many agents' authorized-entry lists are kept between changes (each is a list of references). */
const AUTHORIZED_MEMO_AGENTS = 128;

export class EntryCache {
  #index: EntryIndex;
  #revision: number;
  #syncing: Promise<unknown> = Promise.resolve();
  /**
   * The last authorized-entry lists, by agent and selectors, valid until the entries change:
   * an agent's sync and the signing requests that follow it ask for the same list.
   */
  readonly #authorized = new Map<string, readonly RegistrationEntry[]>();

  constructor(entries: Iterable<RegistrationEntry> = [], revision = 0) {
    this.#index = new EntryIndex(entries);
    this.#revision = revision;
  }

  /** A cache filled from one consistent snapshot. */
  static async load(source: EntryChangeSource): Promise<EntryCache> {
    const { revision, entries } = await source.snapshot();
    return new EntryCache(entries, revision);
  }

  /** The revision the cache reflects. */
  get revision(): number {
    return this.#revision;
  }

  get size(): number {
    return this.#index.size;
  }

  get(id: string): RegistrationEntry | undefined {
    return this.#index.get(id);
  }

  entries(): IterableIterator<RegistrationEntry> {
    return this.#index.entries();
  }

  /**
   * The entries the agent is authorized for, sorted by id (see EntryIndex.authorizedEntries).
   * The list is shared with later callers until the entries change: do not modify it.
   */
  authorizedEntries(agentId: string, agentSelectors: readonly Selector[]): readonly RegistrationEntry[] {
    const key = `${agentId}\n${agentSelectors.map(selectorKey).sort().join('\n')}`;
    let found = this.#authorized.get(key);
    if (found === undefined) {
      found = Object.freeze(this.#index.authorizedEntries(agentId, agentSelectors));
      if (this.#authorized.size >= AUTHORIZED_MEMO_AGENTS) {
        // Drop the oldest (Map keeps insertion order).
        const oldest = this.#authorized.keys().next().value;
        if (oldest !== undefined) this.#authorized.delete(oldest);
      }
    } else {
      this.#authorized.delete(key); // re-inserted below: most recently used last
    }
    this.#authorized.set(key, found);
    return found;
  }

  /**
   * Applies changes read from the revision the cache is at: each entry named by an event takes
   * its state from `changes.entries`, or is removed when absent there (deleted). Returns the
   * ids touched. Changes that do not start at the cache's revision are refused (RangeError),
   * because applying them would silently skip or replay events.
   */
  apply(changes: EntryChanges): string[] {
    if (changes.since !== this.#revision) {
      throw new RangeError(
        `changes since revision ${changes.since} cannot apply to a cache at revision ${this.#revision}`,
      );
    }
    const current = new Map(changes.entries.map((e) => [e.id, e]));
    const touched = new Set<string>();
    for (const event of changes.events) touched.add(event.entryId);
    for (const id of touched) {
      const entry = current.get(id);
      if (entry === undefined) this.#index.remove(id);
      else this.#index.upsert(entry);
    }
    if (touched.size > 0) this.#authorized.clear();
    this.#revision = changes.revision;
    return [...touched];
  }

  /**
   * Brings the cache to the source's current revision: deltas when the log still holds them,
   * otherwise (ERR_REVISION_OUT_OF_RANGE: pruned, or the database was restored to an earlier
   * state) a full reload. Concurrent calls run one after the other, so a burst of change
   * notifications may simply call sync() for each.
   */
  sync(source: EntryChangeSource, pageLimit = 1000): Promise<EntryCacheSyncResult> {
    const run = this.#syncing.then(() => this.#sync(source, pageLimit));
    this.#syncing = run.catch(() => undefined);
    return run;
  }

  async #sync(source: EntryChangeSource, pageLimit: number): Promise<EntryCacheSyncResult> {
    const changed = new Set<string>();
    try {
      for (;;) {
        const changes = await source.changesSince(this.#revision, pageLimit);
        for (const id of this.apply(changes)) changed.add(id);
        if (!changes.more) break;
      }
    } catch (err) {
      if (!isDatastoreError(err, 'ERR_REVISION_OUT_OF_RANGE')) throw err;
      const { revision, entries } = await source.snapshot();
      this.#index = new EntryIndex(entries);
      this.#authorized.clear();
      this.#revision = revision;
      return { reloaded: true, changedIds: [], revision };
    }
    return { reloaded: false, changedIds: [...changed], revision: this.#revision };
  }
}
