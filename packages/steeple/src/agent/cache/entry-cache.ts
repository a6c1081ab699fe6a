/**
 * The entries this agent is authorized for, kept current from SyncAuthorizedEntries:
 * a full response replaces the set, a delta adds, replaces and removes by id.
 * @module
 */
import type { SyncAuthorizedEntriesResponse } from '../../gen/steeple/agent/v1/agent_pb.js';
import { type CachedEntry, entryFromProto } from './cached-entry.js';

/** What one sync changed. */
export interface EntryChanges {
  /** Entries new to the cache, or whose content changed. */
  readonly upserted: readonly CachedEntry[];
  /** Ids no longer in the cache. */
  readonly removed: readonly string[];
}

export class EntryCache {
  #entries = new Map<string, CachedEntry>();
  #revision = 0n;

  /** The revision of the last applied response; 0 before the first sync (asks for a full set). */
  get revision(): bigint {
    return this.#revision;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(id: string): CachedEntry | undefined {
    return this.#entries.get(id);
  }

  values(): IterableIterator<CachedEntry> {
    return this.#entries.values();
  }

  /** Applies one SyncAuthorizedEntries response and says what changed. */
  apply(res: Pick<SyncAuthorizedEntriesResponse, 'revision' | 'full' | 'entries' | 'deletedEntryIds'>): EntryChanges {
    const upserted: CachedEntry[] = [];
    const removed: string[] = [];
    const incoming = res.entries.map(entryFromProto);
    if (res.full) {
      const keep = new Set(incoming.map((e) => e.id));
      for (const id of this.#entries.keys()) {
        if (!keep.has(id)) {
          this.#entries.delete(id);
          removed.push(id);
        }
      }
    } else {
      for (const id of res.deletedEntryIds) if (this.#entries.delete(id)) removed.push(id);
    }
    for (const entry of incoming) {
      const before = this.#entries.get(entry.id);
      if (before !== undefined && before.revision === entry.revision && entry.revision !== 0n) continue;
      this.#entries.set(entry.id, entry);
      upserted.push(entry);
    }
    this.#revision = res.revision;
    return { upserted, removed };
  }

  /** Forgets the revision, so the next sync asks for the full set (after re-attestation, say). */
  resetRevision(): void {
    this.#revision = 0n;
  }
}
