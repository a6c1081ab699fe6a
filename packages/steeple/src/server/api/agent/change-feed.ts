/**
 * The server's live view of what agents sync: every registration entry (an {@link EntryCache}
 * kept current from the datastore's event log) and every trust bundle. It polls the datastore
 * about once a second and refreshes at once when this server wrote something, then tells
 * subscribers (the WatchChanges streams) what moved.
 *
 * Polling the event log is also how several servers on one PostgreSQL database learn about
 * each other's writes: none of them has to know the others exist.
 * @module
 */
import { createHash } from 'node:crypto';
import { type Clock, systemClock, type TimerHandle } from '@steeple/spiffe';
import type { Logger } from '../../../common/logger.js';
import {
  EntryCache,
  type EntryChanges,
  isDatastoreError,
  isNodeAlias,
  type RegistrationEntry,
  type StoredBundle,
} from '../../datastore/index.js';

/** The part of the datastore the feed reads. */
export interface ChangeFeedSource {
  readonly entries: {
    snapshot(): Promise<{ revision: number; entries: readonly RegistrationEntry[] }>;
    changesSince(since: number, limit?: number): Promise<EntryChanges>;
    currentRevision(): Promise<number>;
  };
  readonly bundles: { list(): Promise<readonly StoredBundle[]> };
}

/** What one refresh found. */
export interface FeedChange {
  /** The entry revision after the refresh. */
  readonly revision: number;
  /** True when the entry cache had to be reloaded in full: every agent may be affected. */
  readonly reloaded: boolean;
  /** Entries created, updated or deleted, each with its state before (undefined when new) and after (undefined when deleted). */
  readonly entries: readonly { readonly before?: RegistrationEntry; readonly after?: RegistrationEntry }[];
  /** Trust domains whose bundle was set, changed or deleted. */
  readonly bundleTrustDomains: readonly string[];
}

export interface ChangeFeedOptions {
  readonly source: ChangeFeedSource;
  /** Milliseconds between polls; default 1000. */
  readonly pollIntervalMs?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

const PAGE_LIMIT = 1000;

/** The journal of recent changes keeps at most this many entry ids (older deltas become full syncs). */
const JOURNAL_MAX_IDS = 100_000;

/** One refresh's worth of entry changes, for delta syncs. */
interface JournalBatch {
  /** Revision before the batch (exclusive) … */
  readonly from: number;
  /** … and after it (inclusive). */
  readonly to: number;
  readonly ids: readonly string[];
  /**
   * True when the batch may change which entries an agent is authorized for beyond the
   * touched entries themselves: a node alias changed, or an entry that others name as
   * their parent appeared, vanished or moved. A delta across such a batch must be full.
   */
  readonly structural: boolean;
}

function bundleFingerprint(b: StoredBundle): string {
  return `${b.sequence}:${b.updatedAt}:${createHash('sha256').update(b.bundle).digest('base64')}`;
}

export class ChangeFeed {
  readonly #source: ChangeFeedSource;
  readonly #clock: Clock;
  readonly #logger: Logger | undefined;
  readonly #interval: number;
  #cache: EntryCache;
  /** Non-alias entries per parent ID: tells whether an entry's SPIFFE ID has children. */
  #children = new Map<string, number>();
  #journal: JournalBatch[] = [];
  #journalIds = 0;
  /** Deltas can be computed from this revision on. */
  #journalStart: number;
  #bundles: ReadonlyMap<string, StoredBundle>;
  #fingerprints: Map<string, string>;
  #bundlesRevision: bigint;
  readonly #listeners = new Set<(change: FeedChange) => void>();
  #running: Promise<void> | undefined;
  #again = false;
  #timer: TimerHandle | undefined;
  #closed = false;
  #lastSuccess: number;
  #lastError: Error | undefined;

  private constructor(options: ChangeFeedOptions, cache: EntryCache, bundles: readonly StoredBundle[]) {
    this.#source = options.source;
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger;
    this.#interval = options.pollIntervalMs ?? 1000;
    this.#cache = cache;
    this.#journalStart = cache.revision;
    this.#countChildren();
    this.#bundles = new Map(bundles.map((b) => [b.trustDomain, b]));
    this.#fingerprints = new Map(bundles.map((b) => [b.trustDomain, bundleFingerprint(b)]));
    this.#bundlesRevision = digestRevision(this.#fingerprints);
    this.#lastSuccess = this.#clock.now().getTime();
  }

  /** Loads every entry and bundle, then starts polling. */
  static async start(options: ChangeFeedOptions): Promise<ChangeFeed> {
    const cache = await EntryCache.load(options.source.entries);
    const bundles = await options.source.bundles.list();
    const feed = new ChangeFeed(options, cache, bundles);
    feed.#schedule();
    return feed;
  }

  /** The entry revision the cache reflects. */
  get revision(): number {
    return this.#cache.revision;
  }

  /** The in-memory entries, for authorization lookups. */
  get cache(): EntryCache {
    return this.#cache;
  }

  /**
   * The ids of entries that changed after revision `since` up to {@link ChangeFeed.revision},
   * or undefined when only a full sync is correct: `since` is older than this server's
   * journal (pruned, or from before this server started), or a change in between may have
   * moved other entries in or out of an agent's authorized set.
   */
  changedSince(since: number): ReadonlySet<string> | undefined {
    if (since < this.#journalStart || since > this.#cache.revision) return undefined;
    const ids = new Set<string>();
    for (let i = this.#journal.length - 1; i >= 0; i--) {
      const batch = this.#journal[i] as JournalBatch;
      if (batch.to <= since) break;
      if (batch.structural) return undefined;
      for (const id of batch.ids) ids.add(id);
    }
    return ids;
  }

  /** The bundle of `trustDomain` as last read, or undefined. */
  bundle(trustDomain: string): StoredBundle | undefined {
    return this.#bundles.get(trustDomain);
  }

  /**
   * A number that changes whenever any bundle changes (a digest, not a counter: agents
   * compare it for equality only). Per agent, see {@link ChangeFeed.bundlesRevisionFor}.
   */
  get bundlesRevision(): bigint {
    return this.#bundlesRevision;
  }

  /** A digest of exactly the bundles of `trustDomains` (the own one and the agent's federated ones). */
  bundlesRevisionFor(trustDomains: Iterable<string>): bigint {
    const picked = new Map<string, string>();
    for (const td of trustDomains) picked.set(td, this.#fingerprints.get(td) ?? '-');
    return digestRevision(picked);
  }

  /** Milliseconds since the last successful refresh, and the error of the last failed one. */
  health(): { sinceSuccessMs: number; lastError: Error | undefined } {
    return { sinceSuccessMs: this.#clock.now().getTime() - this.#lastSuccess, lastError: this.#lastError };
  }

  /** Calls `listener` after every refresh that found something; returns the unsubscribe function. */
  subscribe(listener: (change: FeedChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Reads what changed now (after a local write, or when an agent is ahead of the cache).
   * Calls that arrive during a refresh cause exactly one more, so a write is never missed
   * and a burst of writes costs two reads, not one per write.
   */
  refresh(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    const run = (async () => {
      try {
        do {
          this.#again = false;
          await this.#refreshOnce();
        } while (this.#again && !this.#closed);
      } finally {
        this.#running = undefined;
      }
    })();
    this.#running = run;
    return run;
  }

  /**
   * Makes sure the cache reflects every entry change committed before this call (by this
   * server or another): one read of the revision counter, and a refresh when it is ahead.
   * Gives agents read-your-writes after an operator's change, even before the next poll.
   */
  async catchUp(): Promise<void> {
    const committed = await this.#source.entries.currentRevision();
    if (committed > this.#cache.revision) await this.refresh();
  }

  /** Stops polling; an ongoing refresh finishes. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#timer?.cancel();
    this.#listeners.clear();
    await this.#running?.catch(() => undefined);
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = this.#clock.setTimer(() => {
      this.refresh()
        .catch(() => undefined)
        .finally(() => this.#schedule());
    }, this.#interval);
  }

  async #refreshOnce(): Promise<void> {
    let change: FeedChange;
    try {
      const entries = await this.#syncEntries();
      const bundleTrustDomains = await this.#syncBundles();
      change = { ...entries, bundleTrustDomains };
      this.#lastSuccess = this.#clock.now().getTime();
      this.#lastError = undefined;
    } catch (err) {
      if (this.#lastError === undefined) {
        this.#logger?.warn({ err }, 'cannot read changes from the datastore; retrying');
      }
      this.#lastError = err as Error;
      throw err;
    }
    if (!change.reloaded && change.entries.length === 0 && change.bundleTrustDomains.length === 0) return;
    for (const listener of [...this.#listeners]) {
      try {
        listener(change);
      } catch (err) {
        this.#logger?.error({ err }, 'change listener failed');
      }
    }
  }

  async #syncEntries(): Promise<Pick<FeedChange, 'revision' | 'reloaded' | 'entries'>> {
    const from = this.#cache.revision;
    const touched = new Map<string, { before?: RegistrationEntry; after?: RegistrationEntry }>();
    let hadChildren = false;
    try {
      for (;;) {
        const changes = await this.#source.entries.changesSince(this.#cache.revision, PAGE_LIMIT);
        // Another refresh cannot run concurrently, so the cache is still where the read started.
        for (const event of changes.events) {
          if (touched.has(event.entryId)) continue;
          const before = this.#cache.get(event.entryId);
          touched.set(event.entryId, before === undefined ? {} : { before });
          if (before !== undefined && this.#hasChildren(before.spiffeId)) hadChildren = true;
        }
        for (const id of new Set(changes.events.map((e) => e.entryId))) {
          const before = this.#cache.get(id);
          if (before !== undefined) this.#countChild(before, -1);
        }
        this.#cache.apply(changes);
        for (const id of new Set(changes.events.map((e) => e.entryId))) {
          const after = this.#cache.get(id);
          if (after !== undefined) this.#countChild(after, +1);
        }
        if (!changes.more) break;
      }
    } catch (err) {
      if (!isDatastoreError(err, 'ERR_REVISION_OUT_OF_RANGE')) throw err;
      // The log was pruned past us, or the database was restored: start over from a snapshot.
      this.#cache = await EntryCache.load(this.#source.entries);
      this.#countChildren();
      this.#journal = [];
      this.#journalIds = 0;
      this.#journalStart = this.#cache.revision;
      this.#logger?.info({ revision: this.#cache.revision }, 'entry cache reloaded in full');
      return { revision: this.#cache.revision, reloaded: true, entries: [] };
    }
    const entries = [...touched].map(([id, t]) => {
      const after = this.#cache.get(id);
      return after === undefined ? t : { ...t, after };
    });
    if (entries.length > 0) {
      const structural = entries.some((t) => this.#isStructural(t, hadChildren));
      this.#record({ from, to: this.#cache.revision, ids: [...touched.keys()], structural });
    }
    return { revision: this.#cache.revision, reloaded: false, entries };
  }

  #isStructural(t: { before?: RegistrationEntry; after?: RegistrationEntry }, hadChildren: boolean): boolean {
    const { before, after } = t;
    if ((before && isNodeAlias(before)) || (after && isNodeAlias(after))) return true;
    const moved =
      before === undefined ||
      after === undefined ||
      before.spiffeId !== after.spiffeId ||
      before.parentId !== after.parentId;
    if (!moved) return false;
    return (
      hadChildren ||
      (before !== undefined && this.#hasChildren(before.spiffeId)) ||
      (after !== undefined && this.#hasChildren(after.spiffeId))
    );
  }

  #record(batch: JournalBatch): void {
    this.#journal.push(batch);
    this.#journalIds += batch.ids.length;
    while (this.#journalIds > JOURNAL_MAX_IDS && this.#journal.length > 1) {
      const dropped = this.#journal.shift() as JournalBatch;
      this.#journalIds -= dropped.ids.length;
      this.#journalStart = dropped.to;
    }
  }

  #countChildren(): void {
    this.#children = new Map();
    for (const e of this.#cache.entries()) this.#countChild(e, +1);
  }

  #countChild(entry: RegistrationEntry, delta: 1 | -1): void {
    if (isNodeAlias(entry)) return;
    const n = (this.#children.get(entry.parentId) ?? 0) + delta;
    if (n > 0) this.#children.set(entry.parentId, n);
    else this.#children.delete(entry.parentId);
  }

  #hasChildren(spiffeId: string): boolean {
    return this.#children.has(spiffeId);
  }

  async #syncBundles(): Promise<string[]> {
    const list = await this.#source.bundles.list();
    const next = new Map(list.map((b) => [b.trustDomain, bundleFingerprint(b)]));
    const changed: string[] = [];
    for (const [td, fp] of next) if (this.#fingerprints.get(td) !== fp) changed.push(td);
    for (const td of this.#fingerprints.keys()) if (!next.has(td)) changed.push(td);
    if (changed.length > 0) {
      this.#bundles = new Map(list.map((b) => [b.trustDomain, b]));
      this.#fingerprints = next;
      this.#bundlesRevision = digestRevision(next);
    }
    return changed;
  }
}

/** 63 bits of a digest over sorted (trust domain, fingerprint) pairs; 0 is never produced. */
function digestRevision(fingerprints: ReadonlyMap<string, string>): bigint {
  const hash = createHash('sha256');
  for (const td of [...fingerprints.keys()].sort()) hash.update(`${td}\0${fingerprints.get(td)}\n`);
  const value = hash.digest().readBigUInt64BE(0) & 0x7fff_ffff_ffff_ffffn;
  return value === 0n ? 1n : value;
}
