/**
 * Keeps the agent's caches current with the server:
 *
 * 1. makes sure the agent holds a usable SVID (attesting or re-attesting when needed) and
 *    renews it at half life;
 * 2. syncs the authorized entries as deltas by revision (SyncAuthorizedEntries), and the
 *    bundles (GetBundles) whenever their revision moved;
 * 3. gets X.509-SVIDs signed, in batches, for entries that have none, whose SVID passed its
 *    (jittered) half life, or whose SPIFFE ID, DNS names or TTL changed; keys are made here.
 *
 * A step runs at once when the server's WatchChanges stream says something changed, when
 * an SVID falls due, and every `syncIntervalMs` (5 s) as a fallback. While the server is
 * unreachable everything cached stays in service and attempts back off (0.5 s → 10 s).
 * @module
 */
import { Code, ConnectError } from '@connectrpc/connect';
import { type Clock, SpiffeBundle, systemClock } from '@steeple/spiffe';
import type { Logger } from '../../common/logger.js';
import { AgentNotAttestedError } from '../agent-errors.js';
import type { CachedEntry } from '../cache/cached-entry.js';
import { x509FieldsDiffer } from '../cache/cached-entry.js';
import { issuedFromProto } from '../cache/issued-x509-svid.js';
import { type CachedJwtSvid, JwtSvidCache } from '../cache/jwt-svid-cache.js';
import type { WorkloadCache } from '../cache/workload-cache.js';
import type { AgentIdentity } from '../identity/agent-identity.js';
import type { AgentApiClient, AgentApiConnection } from '../server-api/agent-api-connection.js';
import { buildCsr, generateSvidKey, type SvidKeyPair } from '../server-api/csr.js';
import { retryDelayMs } from './retry-delay.js';

/** Observers for metrics; every member optional. */
export interface SyncerObserver {
  syncSucceeded?(seconds: number): void;
  syncFailed?(): void;
  svidsSigned?(count: number): void;
}

export interface SyncerOptions {
  readonly identity: AgentIdentity;
  readonly connection: AgentApiConnection;
  readonly cache: WorkloadCache;
  readonly clock?: Clock;
  readonly logger: Logger;
  /** Randomness for rotation jitter and retry delays; default Math.random. */
  readonly random?: () => number;
  /** The fallback sync period; default 5000 ms. */
  readonly syncIntervalMs?: number;
  /** CSRs per BatchNewX509Svid call; default 500 (the server takes up to 1000). */
  readonly batchSize?: number;
  /** Longest delay between attempts while the server is unreachable; default 10000 ms. */
  readonly maxRetryDelayMs?: number;
  readonly observer?: SyncerObserver;
}

/** Deadline of one unary Agent API call. */
const CALL_TIMEOUT_MS = 30_000;
/** After an error that only an operator can fix, try again this rarely. */
const STUCK_RETRY_MS = 30_000;

export class Syncer {
  readonly #o: SyncerOptions;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #interval: number;
  readonly #batchSize: number;
  readonly jwtCache: JwtSvidCache;
  readonly #closer = new AbortController();
  #wake: (() => void) | undefined;
  #pending = false;
  #running: Promise<void> | undefined;
  #watching: Promise<void> | undefined;
  #watchAbort: AbortController | undefined;
  #synced = false;
  #lastError: string | undefined;
  #failures = 0;
  #firstSync: { promise: Promise<void>; resolve: () => void };

  constructor(options: SyncerOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#interval = options.syncIntervalMs ?? 5000;
    this.#batchSize = options.batchSize ?? 500;
    this.jwtCache = new JwtSvidCache(this.#clock);
    let resolve = () => {};
    const promise = new Promise<void>((r) => {
      resolve = r;
    });
    this.#firstSync = { promise, resolve };
  }

  /** True once a sync succeeded since start (the caches hold the server's view). */
  get synced(): boolean {
    return this.#synced;
  }

  /** The last failure, while the server is unreachable or refuses the agent; undefined when all is well. */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  /** Resolves after the first successful sync. */
  whenSynced(): Promise<void> {
    return this.#firstSync.promise;
  }

  /** Starts the loops. */
  start(): void {
    this.#running ??= this.#run();
  }

  /** Runs a step as soon as possible (a change was announced). */
  trigger(): void {
    this.#pending = true;
    this.#wake?.();
  }

  /** Stops the loops and waits for them to end. */
  async close(): Promise<void> {
    this.#closer.abort(new Error('agent stopping'));
    this.#watchAbort?.abort();
    this.#wake?.();
    await this.#running;
    await this.#watching;
  }

  /**
   * A JWT-SVID for `entry` and `audience`: from the cache until its half life, else minted
   * by the server (NewJwtSvid).
   */
  mintJwtSvid(entry: CachedEntry, audience: readonly string[]): Promise<CachedJwtSvid> {
    return this.jwtCache.get(entry.id, audience, async () => {
      const res = await this.#client().newJwtSvid(
        { entryId: entry.id, audience: [...audience] },
        { timeoutMs: CALL_TIMEOUT_MS, signal: this.#closer.signal },
      );
      const svid = res.svid;
      if (svid === undefined || svid.token === '') throw new Error('NewJwtSvid returned no token');
      return {
        spiffeId: svid.spiffeId,
        token: svid.token,
        issuedAt: Number(svid.issuedAt),
        expiresAt: Number(svid.expiresAt),
      };
    });
  }

  #client(): AgentApiClient {
    return this.#o.connection.client();
  }

  async #run(): Promise<void> {
    const { logger } = this.#o;
    while (!this.#closer.signal.aborted) {
      this.#pending = false;
      let waitMs: number;
      const started = performance.now();
      try {
        await this.#step();
        this.#o.observer?.syncSucceeded?.((performance.now() - started) / 1000);
        if (this.#failures > 0) logger.info({ server: this.#o.connection.target }, 'server reachable again');
        this.#failures = 0;
        this.#lastError = undefined;
        if (!this.#synced) {
          this.#synced = true;
          this.#firstSync.resolve();
        }
        this.#watching ??= this.#watch();
        waitMs = this.#nextWakeMs();
      } catch (err) {
        if (this.#closer.signal.aborted) break;
        this.#failures++;
        this.#o.observer?.syncFailed?.();
        const message = describe(err);
        const stuck = err instanceof AgentNotAttestedError;
        if (this.#failures === 1 || this.#lastError !== message) {
          logger[stuck ? 'error' : 'warn'](
            { err: message, server: this.#o.connection.target, failures: this.#failures },
            stuck ? 'the agent cannot get an identity' : 'sync with the server failed; serving from cache',
          );
        }
        this.#lastError = message;
        waitMs = stuck
          ? STUCK_RETRY_MS
          : retryDelayMs(this.#failures, { maxMs: this.#o.maxRetryDelayMs ?? 10_000, random: this.#random });
      }
      if (!this.#pending) await this.#sleep(waitMs);
    }
  }

  /** One round: identity, entries, bundles, SVIDs. */
  async #step(): Promise<void> {
    const { identity, cache } = this.#o;
    const signal = this.#closer.signal;
    const wasUsable = identity.isUsable();
    await identity.ensure(this.#client(), signal);
    if (!wasUsable) cache.entries.resetRevision();
    const renewAt = identity.renewAt();
    if (renewAt !== undefined && this.#clock.now() >= renewAt) {
      await this.#guard(() => identity.renew(this.#client(), signal));
      this.#watchAbort?.abort(); // the watch stream rides on the old session
    }
    cache.agentId = identity.spiffeId ?? cache.agentId;
    const client = this.#client();
    await this.#guard(() => this.#syncEntriesAndBundles(client));
    await this.#guard(() => this.#signDue(client));
  }

  /** Runs an authenticated call; a refusal of the agent SVID marks it, so the next step re-attests if it can. */
  async #guard<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      const ce = err instanceof ConnectError ? err : undefined;
      if (ce !== undefined && (ce.code === Code.PermissionDenied || ce.code === Code.Unauthenticated)) {
        this.#o.identity.markRefused(ce.rawMessage);
        this.#o.connection.reset();
      }
      throw err;
    }
  }

  async #syncEntriesAndBundles(client: AgentApiClient): Promise<void> {
    const { cache, identity } = this.#o;
    const signal = this.#closer.signal;
    const res = await client.syncAuthorizedEntries(
      { knownRevision: cache.entries.revision },
      { timeoutMs: CALL_TIMEOUT_MS, signal },
    );
    const changes = cache.entries.apply(res);
    let bundlesChanged = new Set<string>();
    if (res.bundlesRevision !== cache.bundles.revision || cache.bundles.revision === 0n) {
      const b = await client.getBundles({}, { timeoutMs: CALL_TIMEOUT_MS, signal });
      if (b.bundle === undefined) throw new Error('GetBundles returned no bundle for the own trust domain');
      const td = cache.bundles.trustDomain;
      if (b.bundle.trustDomain !== td)
        throw new Error(`GetBundles returned the bundle of "${b.bundle.trustDomain}" as the own one`);
      const own = SpiffeBundle.parse(td, b.bundle.spiffeBundleJson);
      const federated: SpiffeBundle[] = [];
      for (const f of b.federatedBundles) {
        try {
          federated.push(SpiffeBundle.parse(f.trustDomain, f.spiffeBundleJson));
        } catch (err) {
          this.#o.logger.warn(
            { trustDomain: f.trustDomain, err: describe(err) },
            'ignoring an unusable federated bundle',
          );
        }
      }
      bundlesChanged = cache.bundles.replace(own, federated, b.revision);
      await identity.updateBundle(cache.bundles.own);
    }
    if (changes.removed.length > 0 || changes.upserted.length > 0 || bundlesChanged.size > 0) {
      const removed = new Set(changes.removed);
      for (const id of removed) cache.svids.delete(id);
      this.jwtCache.retain((id) => !removed.has(id));
      if (changes.upserted.length + changes.removed.length > 0) {
        this.#o.logger.debug(
          { upserted: changes.upserted.length, removed: changes.removed.length, revision: String(res.revision) },
          'entries synced',
        );
      }
      cache.notify({
        entries: changes.removed.length + changes.upserted.length > 0,
        svids: removed.size > 0,
        bundles: bundlesChanged,
      });
    }
  }

  /** Gets SVIDs signed for every served entry that lacks a current one; drops SVIDs of entries no longer served. */
  async #signDue(client: AgentApiClient): Promise<void> {
    const { cache, logger } = this.#o;
    const now = this.#clock.now().getTime();
    const served = cache.servedEntries();
    const servedIds = new Set(served.map((e) => e.id));
    let dropped = false;
    for (const id of [...cache.svids.keys()]) {
      if (!servedIds.has(id)) {
        cache.svids.delete(id);
        dropped = true;
      }
    }
    if (dropped) cache.notify({ entries: false, svids: true, bundles: new Set() });
    const due = served.filter((e) => {
      const svid = cache.svids.get(e.id);
      return svid === undefined || now >= svid.rotateAt || x509FieldsDiffer(svid.entry, e);
    });
    for (let i = 0; i < due.length; i += this.#batchSize) {
      const batch = due.slice(i, i + this.#batchSize);
      const keys: SvidKeyPair[] = await Promise.all(batch.map(() => generateSvidKey()));
      const res = await client.batchNewX509Svid(
        { params: batch.map((e, j) => ({ entryId: e.id, csr: buildCsr(keys[j] as SvidKeyPair) })) },
        { timeoutMs: CALL_TIMEOUT_MS, signal: this.#closer.signal },
      );
      let signed = 0;
      res.results.forEach((r, j) => {
        const entry = batch[j] as CachedEntry;
        if (r.entryId !== entry.id) {
          logger.error(
            { expected: entry.id, got: r.entryId },
            'BatchNewX509Svid answered out of order; result ignored',
          );
          return;
        }
        if (r.status !== undefined && r.status.code !== 0) {
          // The entry was probably removed or moved meanwhile; the next sync will tell.
          logger.warn(
            { entryId: entry.id, code: Code[r.status.code] ?? r.status.code, reason: r.status.message },
            'server refused to sign an SVID',
          );
          this.#pending = true;
          return;
        }
        if (r.svid === undefined || cache.entries.get(entry.id) === undefined) return;
        try {
          const pair = keys[j] as SvidKeyPair;
          cache.svids.set(entry.id, issuedFromProto(entry, r.svid, pair.privateKey, pair.publicKey, this.#random));
          signed++;
        } catch (err) {
          logger.error({ entryId: entry.id, err: describe(err) }, 'the server returned an unusable SVID');
        }
      });
      if (signed > 0) {
        this.#o.observer?.svidsSigned?.(signed);
        logger.debug({ signed, batch: batch.length }, 'X.509-SVIDs signed');
        cache.notify({ entries: false, svids: true, bundles: new Set() });
      }
    }
  }

  /** Milliseconds until the next step is due: the fallback period, an SVID's rotation, or the agent SVID's renewal. */
  #nextWakeMs(): number {
    const now = this.#clock.now().getTime();
    let next = now + this.#interval;
    for (const svid of this.#o.cache.svids.values()) if (svid.rotateAt < next) next = svid.rotateAt;
    const renewAt = this.#o.identity.renewAt()?.getTime();
    if (renewAt !== undefined && renewAt < next) next = renewAt;
    return Math.max(0, next - now);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = this.#clock.setTimer(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#wake = () => {
        timer.cancel();
        this.#wake = undefined;
        resolve();
      };
    });
  }

  /** Follows WatchChanges and triggers a step for every notification; reconnects with backoff. */
  async #watch(): Promise<void> {
    let failures = 0;
    while (!this.#closer.signal.aborted) {
      const abort = new AbortController();
      this.#watchAbort = abort;
      const onClose = () => abort.abort();
      this.#closer.signal.addEventListener('abort', onClose, { once: true });
      try {
        const stream = this.#client().watchChanges(
          { knownRevision: this.#o.cache.entries.revision },
          { signal: abort.signal },
        );
        let heard = false;
        for await (const _change of stream) {
          heard = true;
          failures = 0;
          this.trigger();
        }
        // A stream the server ends at once, again and again, must not spin.
        if (!heard && !abort.signal.aborted) failures++;
      } catch (err) {
        if (this.#closer.signal.aborted) break;
        if (!abort.signal.aborted) {
          failures++;
          this.#o.logger.debug({ err: describe(err), failures }, 'change stream ended; reconnecting');
        }
      } finally {
        this.#closer.signal.removeEventListener('abort', onClose);
      }
      if (this.#closer.signal.aborted) break;
      if (failures === 0) continue; // replaced on purpose (a renewed SVID): reconnect at once
      await new Promise<void>((resolve) => {
        const timer = this.#clock.setTimer(resolve, retryDelayMs(failures, { random: this.#random }));
        this.#closer.signal.addEventListener(
          'abort',
          () => {
            timer.cancel();
            resolve();
          },
          { once: true },
        );
      });
    }
  }
}

function describe(err: unknown): string {
  if (err instanceof ConnectError) return `${Code[err.code] ?? err.code}: ${err.rawMessage}`;
  return (err as Error)?.message ?? String(err);
}
