/**
 * Keeps every federated trust domain's bundle current (SPIFFE Federation §4.2, §6):
 *
 * - relationships come from the config (`federates_with`, static) and from the datastore
 *   (created through the admin API, picked up by {@link FederationManager.sync});
 * - each peer is polled at its bundle's `spiffe_refresh_hint` (5 minutes when absent),
 *   bounded to [10 s, 1 h] (F-7); a failed poll keeps the last good bundle and tries again at
 *   the next interval, never sooner (until the first success it backs off from 10 s, so two
 *   servers started together find each other quickly without hammering);
 * - a fetched bundle is stored under ITS trust domain only (F-8) and only when it passes
 *   every check of {@link fetchBundle} and is not older (`spiffe_sequence`) than the last
 *   one accepted from the endpoint; a newer one replaces the stored bundle, so the peer's
 *   next CA reaches our agents as soon as the peer publishes it (F-9);
 * - every fetch is logged (F-11) and counted; {@link FederationManager.status} says, per
 *   relationship, when the last fetch succeeded, what failed since and when the next one is.
 *
 * Deleting a relationship stops its polling; an in-flight fetch is abandoned, and its result
 * is never written.
 * @module
 */
import { readFile } from 'node:fs/promises';
import {
  type Clock,
  SpiffeBundle,
  SpiffeId,
  systemClock,
  type TimerHandle,
  TrustDomain,
  X509Bundle,
} from '@steeple/spiffe';
import { ConfigError } from '../../common/errors.js';
import { createSilentLogger, type Logger } from '../../common/logger.js';
import type { Metrics } from '../../common/metrics.js';
import type { BundleEndpointProfile, BundleStore, FederationStore, StoredBundle } from '../datastore/index.js';
import { DatastoreError } from '../datastore/index.js';
import {
  DEFAULT_FETCH_TIMEOUT_MS,
  DEFAULT_MAX_BUNDLE_BYTES,
  DEFAULT_MAX_REDIRECTS,
  type EndpointAuthentication,
  type FetchedBundle,
  fetchBundle,
} from './bundle-endpoint-client.js';
import type { FederationConfig } from './federation-config.js';
import { FederationError, type FederationFailureReason } from './federation-error.js';

/** Poll interval when the peer's bundle has no refresh hint (F-7). */
export const DEFAULT_REFRESH_SECONDS = 300;
/** Shortest poll interval a refresh hint can ask for. */
export const MIN_REFRESH_SECONDS = 10;
/** Longest poll interval a refresh hint can ask for. */
export const MAX_REFRESH_SECONDS = 3600;
/** How often relationships are re-read from the datastore (changes made on another server). */
export const DEFAULT_RELATIONSHIP_SYNC_MS = 30_000;

/** A federation relationship as the manager runs it. */
export interface FederationRelationshipSpec {
  readonly trustDomain: TrustDomain;
  readonly bundleEndpointUrl: string;
  readonly profile: BundleEndpointProfile;
  /** `https_spiffe` only. */
  readonly endpointSpiffeId?: SpiffeId;
  /** Config: SPIFFE bundle JSON or PEM of the trust domain, stored when no bundle is (first contact). */
  readonly trustDomainBundlePath?: string;
  /** Where the relationship is defined; the config wins when both define one. */
  readonly source: 'config' | 'datastore';
}

/** What `steeple server federation show` reports for one relationship. */
export interface FederationRelationshipStatus {
  readonly trustDomain: string;
  readonly source: 'config' | 'datastore';
  readonly bundleEndpointUrl: string;
  readonly profile: BundleEndpointProfile;
  readonly endpointSpiffeId?: string;
  /** `ok` after a successful fetch, `failing` after a failed one, `not-yet-fetched` until the first fetch ends. */
  readonly state: 'not-yet-fetched' | 'ok' | 'failing';
  readonly lastAttemptAt?: Date;
  readonly lastSuccessAt?: Date;
  /** When a fetch last brought authorities that differ from the stored ones (e.g. the peer's next CA). */
  readonly lastChangeAt?: Date;
  /** The most recent failure (kept after a later success, for the record). */
  readonly lastError?: {
    readonly at: Date;
    /** The error's stable code (a FederationErrorCode, or e.g. a datastore code); absent for unexpected errors. */
    readonly code?: string;
    readonly reason: FederationFailureReason | 'internal';
    readonly message: string;
  };
  readonly consecutiveFailures: number;
  /** While failing: when the current run of failed fetches began. */
  readonly failingSince?: Date;
  readonly nextRefreshAt?: Date;
  /** Poll interval in use, seconds. */
  readonly refreshIntervalSeconds: number;
  /** `spiffe_sequence` of the bundle in force (the stored one), when known. */
  readonly sequence?: bigint;
}

export interface FederationManagerOptions {
  /** This server's trust domain (never federated with). */
  readonly trustDomain: TrustDomain;
  /** Where fetched bundles are stored and endpoint bundles are read. */
  readonly bundles: Pick<BundleStore, 'get' | 'set'>;
  /** Dynamic relationships (admin API). */
  readonly relationships: Pick<FederationStore, 'list' | 'get'>;
  /** Static relationships (config). */
  readonly staticRelationships?: readonly FederationRelationshipSpec[];
  readonly clock?: Clock;
  readonly logger?: Logger;
  readonly metrics?: Metrics;
  /** Poll every this many ms regardless of refresh hints (tests, demos); unset in production. */
  readonly refreshIntervalMs?: number;
  /** Bounds on the refresh hint, seconds; default [{@link MIN_REFRESH_SECONDS}, {@link MAX_REFRESH_SECONDS}]. */
  readonly minRefreshSeconds?: number;
  readonly maxRefreshSeconds?: number;
  /** Re-read datastore relationships this often; default {@link DEFAULT_RELATIONSHIP_SYNC_MS}, 0 turns it off. */
  readonly relationshipSyncIntervalMs?: number;
  /** PEM certificates trusted for `https_web` endpoints besides the system roots (private web CA, tests). */
  readonly webPkiExtraRoots?: readonly string[];
  readonly fetchTimeoutMs?: number;
  readonly maxBundleBytes?: number;
  readonly maxRedirects?: number;
}

/** The relationships of a `federation` config section. */
export function staticRelationshipsFrom(config: FederationConfig | undefined): FederationRelationshipSpec[] {
  if (config === undefined) return [];
  return Object.entries(config.federates_with).map(([name, rel]) => {
    const profile = rel.bundle_endpoint_profile;
    return {
      trustDomain: TrustDomain.parse(name),
      bundleEndpointUrl: rel.bundle_endpoint_url,
      profile: profile.type,
      ...(profile.type === 'https_spiffe'
        ? {
            endpointSpiffeId: SpiffeId.parse(profile.endpointSpiffeId),
            ...(profile.trustDomainBundlePath === undefined
              ? {}
              : { trustDomainBundlePath: profile.trustDomainBundlePath }),
          }
        : {}),
      source: 'config' as const,
    };
  });
}

interface LastError {
  at: Date;
  code?: string;
  reason: FederationFailureReason | 'internal';
  message: string;
}

/** One relationship being polled. */
interface Peer {
  readonly spec: FederationRelationshipSpec;
  readonly key: string;
  readonly abort: AbortController;
  removed: boolean;
  timer: TimerHandle | undefined;
  running: Promise<SpiffeBundle> | undefined;
  lastAttemptAt: Date | undefined;
  lastSuccessAt: Date | undefined;
  lastChangeAt: Date | undefined;
  lastError: LastError | undefined;
  lastOutcome: 'ok' | 'failing' | undefined;
  consecutiveFailures: number;
  failingSince: Date | undefined;
  nextRefreshAt: Date | undefined;
  /** Refresh hint of the bundle in force, seconds. */
  refreshHint: number | undefined;
  sequence: bigint | undefined;
}

function specKey(s: FederationRelationshipSpec): string {
  return JSON.stringify([
    s.source,
    s.bundleEndpointUrl,
    s.profile,
    s.endpointSpiffeId?.toString() ?? '',
    s.trustDomainBundlePath ?? '',
  ]);
}

function sameAuthorities(a: SpiffeBundle, b: SpiffeBundle): boolean {
  return a.x509Bundle().equals(b.x509Bundle()) && a.jwtBundle().equals(b.jwtBundle());
}

/**
 * Polls federated bundle endpoints and stores their bundles. Create it, then {@link start};
 * call {@link sync} after relationships change, {@link refresh} for an immediate fetch, and
 * {@link close} on shutdown.
 *
 * @example
 * const federation = new FederationManager({ trustDomain, bundles: ds.bundles, relationships: ds.federation,
 *   staticRelationships: staticRelationshipsFrom(config.federation), clock, logger, metrics });
 * federation.onBundlesChanged(() => feed.refresh());
 * await federation.start();
 */
export class FederationManager {
  readonly #o: FederationManagerOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #peers = new Map<string, Peer>();
  readonly #listeners = new Set<(trustDomain: string) => void>();
  readonly #warnedShadowed = new Set<string>();
  readonly #fetches;
  readonly #lastSuccess;
  readonly #failures;
  #syncTimer: TimerHandle | undefined;
  #syncing: Promise<void> | undefined;
  #closed = false;

  constructor(options: FederationManagerOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#log = options.logger ?? createSilentLogger();
    for (const s of options.staticRelationships ?? []) {
      if (s.trustDomain.equals(options.trustDomain)) {
        throw new TypeError(`cannot federate with the server's own trust domain "${s.trustDomain.name}"`);
      }
    }
    const m = options.metrics;
    this.#fetches = m?.counter({
      name: 'federation_bundle_fetches_total',
      help: 'Federated bundle fetches by peer trust domain, result (success|failure) and failure reason',
      labelNames: ['federated_trust_domain', 'result', 'reason'],
    });
    this.#lastSuccess = m?.gauge({
      name: 'federation_bundle_last_success_timestamp_seconds',
      help: 'When the bundle of the federated trust domain was last fetched successfully (epoch seconds)',
      labelNames: ['federated_trust_domain'],
    });
    this.#failures = m?.gauge({
      name: 'federation_bundle_consecutive_failures',
      help: 'Failed fetches of the federated trust domain since its last success (the last good bundle stays in force)',
      labelNames: ['federated_trust_domain'],
    });
    m?.gauge({
      name: 'federation_bundle_age_seconds',
      help: 'Seconds since the bundle of the federated trust domain was last fetched successfully',
      labelNames: ['federated_trust_domain'],
      // Computed at scrape time, so a stuck peer shows a growing age without any fetch.
      collect: (age) => {
        age.reset();
        const now = this.#clock.now().getTime();
        for (const p of this.#peers.values()) {
          if (p.lastSuccessAt !== undefined) {
            age.set({ federated_trust_domain: p.spec.trustDomain.name }, (now - p.lastSuccessAt.getTime()) / 1000);
          }
        }
      },
    });
  }

  /**
   * Stores the bootstrap bundles of static relationships that have none yet, reads the
   * datastore relationships and starts polling every peer at once. Rejects when a configured
   * `trust_domain_bundle_path` cannot be read or parsed, or the datastore cannot be read.
   */
  async start(): Promise<void> {
    for (const spec of this.#o.staticRelationships ?? []) {
      if (spec.trustDomainBundlePath !== undefined) await this.#storeBootstrapBundle(spec, spec.trustDomainBundlePath);
    }
    await this.sync();
    this.#scheduleSync();
  }

  /**
   * Re-reads the datastore relationships and applies the difference: new ones start polling
   * at once, changed ones restart with the new parameters, deleted ones stop (F-10).
   */
  sync(): Promise<void> {
    // Concurrent callers share one pass; a pass started after a change sees it.
    const once = () => this.#syncOnce();
    const run = (this.#syncing ?? Promise.resolve()).then(once, once);
    const mine = run.finally(() => {
      if (this.#syncing === mine) this.#syncing = undefined;
    });
    this.#syncing = mine;
    return mine;
  }

  /**
   * Fetches the trust domain's bundle now (admin RefreshBundle) and resolves to the bundle in
   * force afterwards. Rejects with a {@link FederationError} saying why the fetch or the bundle
   * was refused (the last good bundle stays), or a DatastoreError
   * `ERR_FEDERATION_RELATIONSHIP_NOT_FOUND` when no relationship exists.
   */
  async refresh(trustDomain: TrustDomain | string): Promise<SpiffeBundle> {
    const td = TrustDomain.from(trustDomain);
    let peer = this.#peers.get(td.name);
    if (peer === undefined) {
      await this.sync();
      peer = this.#peers.get(td.name);
    }
    if (peer === undefined) {
      throw new DatastoreError(
        'ERR_FEDERATION_RELATIONSHIP_NOT_FOUND',
        `no federation relationship with trust domain "${td.name}"`,
      );
    }
    if (peer.running !== undefined) await peer.running.catch(() => undefined);
    if (peer.removed) {
      throw new DatastoreError(
        'ERR_FEDERATION_RELATIONSHIP_NOT_FOUND',
        `the federation relationship with trust domain "${td.name}" was deleted`,
      );
    }
    return this.#run(peer, 'manual');
  }

  /** Calls `listener` with the trust domain name whenever a fetch changed a stored bundle; returns an unsubscribe. */
  onBundlesChanged(listener: (trustDomain: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The status of every relationship, ordered by trust domain name. */
  status(): FederationRelationshipStatus[];
  /** The status of one relationship, or undefined when there is none. */
  status(trustDomain: TrustDomain | string): FederationRelationshipStatus | undefined;
  status(
    trustDomain?: TrustDomain | string,
  ): FederationRelationshipStatus[] | FederationRelationshipStatus | undefined {
    if (trustDomain !== undefined) {
      const peer = this.#peers.get(TrustDomain.from(trustDomain).name);
      return peer === undefined ? undefined : this.#statusOf(peer);
    }
    return [...this.#peers.values()]
      .sort((a, b) => (a.spec.trustDomain.name < b.spec.trustDomain.name ? -1 : 1))
      .map((p) => this.#statusOf(p));
  }

  /** Resolves once no fetch or relationship sync is running (tests; orderly shutdown). */
  async whenIdle(): Promise<void> {
    for (;;) {
      const pending = [this.#syncing, ...[...this.#peers.values()].map((p) => p.running)].filter(
        (p): p is Promise<never> => p !== undefined,
      );
      if (pending.length === 0) return;
      await Promise.allSettled(pending);
    }
  }

  /** Stops all polling; fetches in flight are abandoned. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#syncTimer?.cancel();
    for (const peer of this.#peers.values()) this.#stop(peer);
    this.#peers.clear();
    await Promise.allSettled([this.#syncing]);
  }

  // ---------------------------------------------------------------------------

  async #syncOnce(): Promise<void> {
    if (this.#closed) return;
    const wanted = new Map<string, FederationRelationshipSpec>();
    for (const s of this.#o.staticRelationships ?? []) wanted.set(s.trustDomain.name, s);
    for (const r of await this.#o.relationships.list()) {
      if (wanted.has(r.trustDomain)) {
        if (!this.#warnedShadowed.has(r.trustDomain)) {
          this.#warnedShadowed.add(r.trustDomain);
          this.#log.warn(
            { trustDomain: r.trustDomain },
            'a federation relationship is defined both in the config and in the datastore; the config one is used',
          );
        }
        continue;
      }
      const spec = this.#specFromStore(r);
      if (spec !== undefined) wanted.set(r.trustDomain, spec);
    }
    if (this.#closed) return;
    for (const [name, peer] of this.#peers) {
      const next = wanted.get(name);
      if (next === undefined || specKey(next) !== peer.key) {
        this.#stop(peer);
        this.#peers.delete(name);
        this.#forgetMetrics(name);
        if (next === undefined)
          this.#log.info({ trustDomain: name }, 'federation relationship removed: polling stopped');
      }
    }
    for (const [name, spec] of wanted) {
      if (this.#peers.has(name)) continue;
      const peer = this.#newPeer(spec);
      this.#peers.set(name, peer);
      this.#log.info(
        {
          trustDomain: name,
          source: spec.source,
          bundleEndpointUrl: spec.bundleEndpointUrl,
          profile: spec.profile,
          ...(spec.endpointSpiffeId ? { endpointSpiffeId: spec.endpointSpiffeId.toString() } : {}),
        },
        'federation relationship active: polling its bundle endpoint',
      );
      this.#schedule(peer, 0);
    }
  }

  #specFromStore(r: {
    trustDomain: string;
    bundleEndpointUrl: string;
    profile: BundleEndpointProfile;
    endpointSpiffeId?: string;
  }): FederationRelationshipSpec | undefined {
    try {
      const trustDomain = TrustDomain.parse(r.trustDomain);
      if (trustDomain.equals(this.#o.trustDomain)) throw new TypeError("it names this server's own trust domain");
      if (r.profile === 'https_spiffe' && r.endpointSpiffeId === undefined) {
        throw new TypeError('an https_spiffe relationship needs an endpoint SPIFFE ID');
      }
      return {
        trustDomain,
        bundleEndpointUrl: r.bundleEndpointUrl,
        profile: r.profile,
        ...(r.profile === 'https_spiffe' ? { endpointSpiffeId: SpiffeId.parse(r.endpointSpiffeId as string) } : {}),
        source: 'datastore',
      };
    } catch (err) {
      this.#log.error({ err, trustDomain: r.trustDomain }, 'ignoring an unusable federation relationship');
      return undefined;
    }
  }

  #newPeer(spec: FederationRelationshipSpec): Peer {
    return {
      spec,
      key: specKey(spec),
      abort: new AbortController(),
      removed: false,
      timer: undefined,
      running: undefined,
      lastAttemptAt: undefined,
      lastSuccessAt: undefined,
      lastChangeAt: undefined,
      lastError: undefined,
      lastOutcome: undefined,
      consecutiveFailures: 0,
      failingSince: undefined,
      nextRefreshAt: undefined,
      refreshHint: undefined,
      sequence: undefined,
    };
  }

  #stop(peer: Peer): void {
    peer.removed = true;
    peer.timer?.cancel();
    peer.timer = undefined;
    peer.nextRefreshAt = undefined;
    peer.abort.abort();
  }

  #scheduleSync(): void {
    const every = this.#o.relationshipSyncIntervalMs ?? DEFAULT_RELATIONSHIP_SYNC_MS;
    if (every <= 0 || this.#closed) return;
    this.#syncTimer = this.#clock.setTimer(() => {
      this.sync()
        .catch((err: unknown) => this.#log.warn({ err }, 'cannot read federation relationships; retrying later'))
        .finally(() => this.#scheduleSync());
    }, every);
  }

  #schedule(peer: Peer, ms: number): void {
    peer.timer?.cancel();
    if (peer.removed || this.#closed) return;
    peer.nextRefreshAt = new Date(this.#clock.now().getTime() + ms);
    peer.timer = this.#clock.setTimer(() => {
      peer.timer = undefined;
      if (peer.running !== undefined) return; // a manual refresh is under way; it schedules the next poll
      this.#run(peer, 'poll').catch(() => undefined); // #run records and logs the failure
    }, ms);
  }

  /** Poll interval after a success, ms. */
  #intervalMs(peer: Peer): number {
    if (this.#o.refreshIntervalMs !== undefined) return this.#o.refreshIntervalMs;
    const min = this.#o.minRefreshSeconds ?? MIN_REFRESH_SECONDS;
    const max = this.#o.maxRefreshSeconds ?? MAX_REFRESH_SECONDS;
    const hint = peer.refreshHint ?? DEFAULT_REFRESH_SECONDS;
    return Math.min(max, Math.max(min, hint)) * 1000;
  }

  /** After a failure: the normal interval (F-7), or a backoff from the minimum while nothing was ever fetched. */
  #retryMs(peer: Peer): number {
    const interval = this.#intervalMs(peer);
    if (peer.lastSuccessAt !== undefined || peer.sequence !== undefined || this.#o.refreshIntervalMs !== undefined) {
      return interval;
    }
    const min = (this.#o.minRefreshSeconds ?? MIN_REFRESH_SECONDS) * 1000;
    return Math.min(interval, min * 2 ** Math.min(16, peer.consecutiveFailures - 1));
  }

  /** One fetch of `peer`, serialized per peer; schedules the next one whatever happens. */
  #run(peer: Peer, trigger: 'poll' | 'manual'): Promise<SpiffeBundle> {
    const run = this.#refreshOnce(peer, trigger);
    peer.running = run;
    const clear = () => {
      if (peer.running === run) peer.running = undefined;
    };
    run.then(clear, clear);
    return run;
  }

  async #refreshOnce(peer: Peer, trigger: 'poll' | 'manual'): Promise<SpiffeBundle> {
    const { spec } = peer;
    const td = spec.trustDomain;
    peer.timer?.cancel();
    peer.timer = undefined;
    const started = this.#clock.now();
    peer.lastAttemptAt = started;
    const startedMs = Date.now();
    let fetched: FetchedBundle | undefined;
    try {
      const stored = await this.#storedBundle(td);
      if (stored !== undefined) {
        peer.sequence = stored.sequence;
        peer.refreshHint ??= stored.bundle.refreshHintSeconds;
      }
      fetched = await fetchBundle({
        url: spec.bundleEndpointUrl,
        trustDomain: td,
        authentication: await this.#authentication(spec, stored),
        clock: this.#clock,
        timeoutMs: this.#o.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS,
        maxBytes: this.#o.maxBundleBytes ?? DEFAULT_MAX_BUNDLE_BYTES,
        maxRedirects: this.#o.maxRedirects ?? DEFAULT_MAX_REDIRECTS,
        signal: peer.abort.signal,
      });
      const bundle = fetched.bundle;
      if (peer.removed) throw new FederationAbandoned();

      // F-7: order by spiffe_sequence. The stored sequence is the last one accepted from the
      // endpoint, or the one an operator set (`bundle set`), which then becomes the baseline.
      const incoming = bundle.sequenceNumber;
      const same = stored !== undefined && sameAuthorities(stored.bundle, bundle);
      let toStore: SpiffeBundle;
      let sequence: bigint;
      let write: boolean;
      if (stored !== undefined && incoming !== undefined && incoming < stored.sequence) {
        if (!same) {
          throw new FederationError(
            'ERR_FEDERATION_BUNDLE_REFUSED',
            'sequence-rollback',
            `bundle of "${td.name}" from ${fetched.url}: spiffe_sequence ${incoming} is lower than the stored ` +
              `bundle's ${stored.sequence} and the authorities differ: a stale or replayed bundle never replaces a ` +
              'newer one (F-7)',
          );
        }
        // Same authorities under an older number: nothing to change.
        toStore = stored.bundle;
        sequence = stored.sequence;
        write = false;
      } else {
        // The peer's own sequence; without one, ours grows by one whenever the authorities change.
        sequence = incoming ?? (stored === undefined ? 1n : same ? stored.sequence : stored.sequence + 1n);
        toStore = incoming === undefined ? bundle.withSequenceNumber(sequence) : bundle;
        write = stored === undefined || stored.json !== toStore.marshal() || stored.sequence !== sequence;
      }
      if (write) {
        // The admin API deletes the relationship and then its bundle: never write one back.
        if (spec.source === 'datastore' && !(await this.#stillDefined(peer))) {
          this.sync().catch((err: unknown) => this.#log.warn({ err }, 'cannot read federation relationships'));
          throw new FederationAbandoned();
        }
        await this.#o.bundles.set({ trustDomain: td.name, bundle: toStore.marshal(), sequence });
      }

      const now = this.#clock.now();
      peer.lastSuccessAt = now;
      peer.lastOutcome = 'ok';
      peer.consecutiveFailures = 0;
      peer.failingSince = undefined;
      peer.sequence = sequence;
      peer.refreshHint = bundle.refreshHintSeconds;
      const changed = !same;
      if (changed) peer.lastChangeAt = now;
      this.#fetches?.inc({ federated_trust_domain: td.name, result: 'success', reason: 'ok' });
      this.#lastSuccess?.set({ federated_trust_domain: td.name }, now.getTime() / 1000);
      this.#failures?.set({ federated_trust_domain: td.name }, 0);
      this.#schedule(peer, this.#intervalMs(peer));
      this.#log.info(
        {
          trustDomain: td.name,
          trigger,
          url: spec.bundleEndpointUrl,
          ...(fetched.redirects.length > 0 ? { redirects: fetched.redirects } : {}),
          profile: spec.profile,
          ...(fetched.endpointId ? { endpointSpiffeId: fetched.endpointId.toString() } : {}),
          sequence: sequence.toString(),
          refreshHint: bundle.refreshHintSeconds,
          x509Authorities: bundle.x509Authorities.length,
          jwtAuthorities: bundle.jwtAuthorities.size,
          bytes: fetched.bytes,
          changed,
          durationMs: Date.now() - startedMs,
          nextRefreshAt: peer.nextRefreshAt,
        },
        changed ? 'fetched federated bundle: updated' : 'fetched federated bundle: unchanged',
      );
      if (write) this.#notify(td.name);
      return toStore;
    } catch (err) {
      if (err instanceof FederationAbandoned || (peer.removed && !(err instanceof FederationError))) {
        this.#log.debug({ trustDomain: td.name }, 'federated bundle fetch abandoned: the relationship changed');
        this.#schedule(peer, this.#intervalMs(peer)); // a no-op once the peer is removed
        throw new DatastoreError(
          'ERR_FEDERATION_RELATIONSHIP_NOT_FOUND',
          `the federation relationship with trust domain "${td.name}" was deleted or changed during the fetch`,
        );
      }
      if (peer.removed) throw err;
      const fe = err instanceof FederationError ? err : undefined;
      const code = (err as { code?: unknown }).code;
      peer.lastError = {
        at: this.#clock.now(),
        ...(typeof code === 'string' ? { code } : {}),
        reason: fe?.reason ?? 'internal',
        message: (err as Error).message,
      };
      peer.lastOutcome = 'failing';
      peer.consecutiveFailures++;
      peer.failingSince ??= peer.lastError.at;
      this.#fetches?.inc({ federated_trust_domain: td.name, result: 'failure', reason: fe?.reason ?? 'internal' });
      this.#failures?.set({ federated_trust_domain: td.name }, peer.consecutiveFailures);
      this.#schedule(peer, this.#retryMs(peer));
      this.#log.warn(
        {
          trustDomain: td.name,
          trigger,
          url: spec.bundleEndpointUrl,
          profile: spec.profile,
          code: peer.lastError.code,
          reason: peer.lastError.reason,
          error: peer.lastError.message,
          ...(fe === undefined ? { err } : {}),
          consecutiveFailures: peer.consecutiveFailures,
          keptSequence: peer.sequence?.toString(),
          lastSuccessAt: peer.lastSuccessAt,
          nextRefreshAt: peer.nextRefreshAt,
        },
        peer.sequence === undefined
          ? 'federated bundle fetch failed; no bundle of this trust domain is held yet'
          : 'federated bundle fetch failed; the last good bundle stays in force',
      );
      throw err;
    }
  }

  async #stillDefined(peer: Peer): Promise<boolean> {
    const r = await this.#o.relationships.get(peer.spec.trustDomain.name);
    if (r === undefined) return false;
    const spec = this.#specFromStore(r);
    return spec !== undefined && specKey(spec) === peer.key;
  }

  /** The stored bundle of `td`, parsed; an unreadable one counts as absent (and is replaced by the next fetch). */
  async #storedBundle(td: TrustDomain): Promise<{ bundle: SpiffeBundle; json: string; sequence: bigint } | undefined> {
    const stored: StoredBundle | undefined = await this.#o.bundles.get(td.name);
    if (stored === undefined) return undefined;
    try {
      return { bundle: SpiffeBundle.parse(td, stored.bundle), json: stored.bundle, sequence: stored.sequence };
    } catch (err) {
      this.#log.warn({ err, trustDomain: td.name }, 'the stored bundle is unreadable; it will be replaced');
      return undefined;
    }
  }

  async #authentication(
    spec: FederationRelationshipSpec,
    stored: { bundle: SpiffeBundle } | undefined,
  ): Promise<EndpointAuthentication> {
    if (spec.profile === 'https_web') {
      return {
        profile: 'https_web',
        ...(this.#o.webPkiExtraRoots === undefined ? {} : { extraRootCertificates: this.#o.webPkiExtraRoots }),
      };
    }
    const endpointId = spec.endpointSpiffeId as SpiffeId;
    const endpointTd = endpointId.trustDomain;
    // Self-serving: the configured bundle on first contact, the latest fetched one after (F-5).
    // Otherwise: the latest bundle of the endpoint's own trust domain (ours, or another federated one).
    const endpointBundle = endpointTd.equals(spec.trustDomain)
      ? stored?.bundle
      : (await this.#storedBundle(endpointTd))?.bundle;
    return {
      profile: 'https_spiffe',
      endpointSpiffeId: endpointId,
      endpointBundle: endpointBundle?.x509Bundle(),
    };
  }

  async #storeBootstrapBundle(spec: FederationRelationshipSpec, path: string): Promise<void> {
    const td = spec.trustDomain;
    if ((await this.#o.bundles.get(td.name)) !== undefined) return;
    const key = `federation.federates_with["${td.name}"].bundle_endpoint_profile.https_spiffe.trust_domain_bundle_path`;
    const problem = (message: string, cause?: unknown) =>
      new ConfigError([{ path: key, message }], cause === undefined ? {} : { cause });
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (cause) {
      throw problem(`cannot read ${path}: ${(cause as Error).message}`, cause);
    }
    let bundle: SpiffeBundle;
    try {
      bundle = text.trimStart().startsWith('{')
        ? SpiffeBundle.parse(td, text)
        : SpiffeBundle.fromBundles({ x509: X509Bundle.parse(td, text) });
    } catch (cause) {
      throw problem(`${path} is neither SPIFFE bundle JSON nor PEM certificates: ${(cause as Error).message}`, cause);
    }
    if (bundle.isEmpty()) throw problem(`${path} holds no X.509 or JWT authority`);
    const sequence = bundle.sequenceNumber ?? 1n;
    await this.#o.bundles.set({
      trustDomain: td.name,
      bundle: bundle.withSequenceNumber(sequence).marshal(),
      sequence,
    });
    this.#log.info({ trustDomain: td.name, path }, 'stored the configured initial bundle of a federated trust domain');
    this.#notify(td.name);
  }

  #notify(trustDomain: string): void {
    for (const listener of this.#listeners) {
      try {
        listener(trustDomain);
      } catch (err) {
        this.#log.error({ err }, 'a federated bundle listener threw');
      }
    }
  }

  #forgetMetrics(name: string): void {
    this.#lastSuccess?.remove({ federated_trust_domain: name });
    this.#failures?.remove({ federated_trust_domain: name });
  }

  #statusOf(p: Peer): FederationRelationshipStatus {
    const { spec } = p;
    return {
      trustDomain: spec.trustDomain.name,
      source: spec.source,
      bundleEndpointUrl: spec.bundleEndpointUrl,
      profile: spec.profile,
      ...(spec.endpointSpiffeId ? { endpointSpiffeId: spec.endpointSpiffeId.toString() } : {}),
      state: p.lastOutcome ?? 'not-yet-fetched',
      ...(p.lastAttemptAt ? { lastAttemptAt: p.lastAttemptAt } : {}),
      ...(p.lastSuccessAt ? { lastSuccessAt: p.lastSuccessAt } : {}),
      ...(p.lastChangeAt ? { lastChangeAt: p.lastChangeAt } : {}),
      ...(p.lastError ? { lastError: { ...p.lastError } } : {}),
      consecutiveFailures: p.consecutiveFailures,
      ...(p.failingSince ? { failingSince: p.failingSince } : {}),
      ...(p.nextRefreshAt ? { nextRefreshAt: p.nextRefreshAt } : {}),
      refreshIntervalSeconds: Math.round(this.#intervalMs(p) / 1000),
      ...(p.sequence === undefined ? {} : { sequence: p.sequence }),
    };
  }
}

/** Internal: the relationship went away while its fetch was in flight. */
class FederationAbandoned extends Error {}
