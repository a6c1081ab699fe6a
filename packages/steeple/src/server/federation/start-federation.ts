/**
 * Federation as the composition root starts it: the bundle endpoint (when
 * `federation.bundle_endpoint` is configured) and the {@link FederationManager} (always:
 * relationships can be created through the admin API at any time).
 *
 * ```ts
 * const federation = await startFederation({
 *   config: config.federation, trustDomain, datastore, serverSvid, clock, logger, metrics,
 *   onBundlesChanged: refreshFeed,                          // agents get the new bundles
 * });
 * // admin API: refreshBundle: (td) => federation.manager.refresh(td)
 * // admin onChange('federation'): federation.manager.sync()
 * await federation.close();
 * ```
 * @module
 */
import { type Clock, SpiffeBundle, type TrustDomain } from '@steeple/spiffe';
import { createSilentLogger, type Logger } from '../../common/logger.js';
import type { Metrics } from '../../common/metrics.js';
import type { BundleStore, FederationStore } from '../datastore/index.js';
import {
  type BundleEndpointServer,
  startBundleEndpointServer,
  type TlsMaterialSource,
} from './bundle-endpoint-server.js';
import type { FederationConfig } from './federation-config.js';
import { FederationManager, type FederationManagerOptions, staticRelationshipsFrom } from './federation-manager.js';

/** How long the served bundle may lag the datastore: peers poll every few minutes anyway. */
const OWN_BUNDLE_CACHE_MS = 1000;

export interface StartFederationOptions {
  /** The `federation` section (undefined when absent). */
  readonly config: FederationConfig | undefined;
  /** This server's trust domain. */
  readonly trustDomain: TrustDomain;
  readonly datastore: {
    readonly bundles: Pick<BundleStore, 'get' | 'set'>;
    readonly federation: Pick<FederationStore, 'list' | 'get'>;
  };
  /** The server's own SVID (for an `https_spiffe` bundle endpoint); the Agent API's `ServerSvid` fits. */
  readonly serverSvid?: TlsMaterialSource;
  /**
   * The bundle the endpoint serves. Default: this trust domain's bundle from the datastore
   * (shared by every server of the trust domain), re-read at most once a second.
   */
  readonly ownBundle?: () => SpiffeBundle | Promise<SpiffeBundle>;
  /**
   * Called with the trust domain name whenever a fetch changed a stored bundle (wake the agent
   * API's change feed). Registered before the first fetch, so no change is missed.
   */
  readonly onBundlesChanged?: (trustDomain: string) => void;
  readonly clock?: Clock;
  readonly logger?: Logger;
  readonly metrics?: Metrics;
  /** Tuning of the manager (tests, demos): refresh interval override, timeouts, extra web roots… */
  readonly manager?: Partial<
    Omit<FederationManagerOptions, 'trustDomain' | 'bundles' | 'relationships' | 'staticRelationships'>
  >;
}

/** Federation, running. */
export interface RunningFederation {
  readonly manager: FederationManager;
  /** The bundle endpoint, when configured. */
  readonly endpoint: BundleEndpointServer | undefined;
  /** Stops the endpoint and all polling. Idempotent. */
  close(): Promise<void>;
}

/** The trust domain's stored bundle, parsed once per change and re-read at most every `cacheMs`. */
export function storedOwnBundle(
  bundles: Pick<BundleStore, 'get'>,
  trustDomain: TrustDomain,
  clock: Pick<Clock, 'now'>,
  cacheMs = OWN_BUNDLE_CACHE_MS,
): () => Promise<SpiffeBundle> {
  let cached: { json: string; bundle: SpiffeBundle; readAt: number } | undefined;
  return async () => {
    const now = clock.now().getTime();
    if (cached !== undefined && now - cached.readAt < cacheMs && now >= cached.readAt) return cached.bundle;
    const stored = await bundles.get(trustDomain.name);
    if (stored === undefined) throw new Error(`no bundle of "${trustDomain.name}" has been published yet`);
    const bundle = cached?.json === stored.bundle ? cached.bundle : SpiffeBundle.parse(trustDomain, stored.bundle);
    cached = { json: stored.bundle, bundle, readAt: now };
    return bundle;
  };
}

/**
 * Starts the bundle endpoint (if configured) and the federation manager. Rejects, with
 * nothing left running, on a ConfigError (unreadable `https_web` files or initial bundle,
 * `https_spiffe` endpoint without `serverSvid`) or a listen error.
 */
export async function startFederation(options: StartFederationOptions): Promise<RunningFederation> {
  const logger = options.logger ?? createSilentLogger();
  const config = options.config;
  const clock = options.clock;
  let endpoint: BundleEndpointServer | undefined;
  const ep = config?.bundle_endpoint;
  if (ep !== undefined) {
    const profile = ep.profile;
    if (profile.type === 'https_spiffe' && options.serverSvid === undefined) {
      throw new TypeError('startFederation: an https_spiffe bundle endpoint needs the server SVID (serverSvid)');
    }
    endpoint = await startBundleEndpointServer({
      host: ep.address,
      port: ep.port,
      ...(ep.path === undefined ? {} : { path: ep.path }),
      refreshHintSeconds: ep.refresh_hint,
      bundle:
        options.ownBundle ??
        storedOwnBundle(options.datastore.bundles, options.trustDomain, clock ?? { now: () => new Date() }),
      tls:
        profile.type === 'https_spiffe'
          ? { profile: 'https_spiffe', svid: options.serverSvid as TlsMaterialSource }
          : {
              profile: 'https_web',
              certFile: profile.cert_file_path,
              keyFile: profile.key_file_path,
              fileSyncIntervalMs: profile.file_sync_interval * 1000,
            },
      ...(clock === undefined ? {} : { clock }),
      logger: logger.child({ component: 'bundle-endpoint' }),
      ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
    });
  }

  const manager = new FederationManager({
    ...options.manager,
    trustDomain: options.trustDomain,
    bundles: options.datastore.bundles,
    relationships: options.datastore.federation,
    staticRelationships: staticRelationshipsFrom(config),
    ...(clock === undefined ? {} : { clock }),
    logger: logger.child({ component: 'federation' }),
    ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
  });
  if (options.onBundlesChanged !== undefined) manager.onBundlesChanged(options.onBundlesChanged);
  try {
    await manager.start();
  } catch (err) {
    await manager.close();
    await endpoint?.close();
    throw err;
  }

  let closing: Promise<void> | undefined;
  return {
    manager,
    endpoint,
    close() {
      closing ??= (async () => {
        await manager.close();
        await endpoint?.close();
      })();
      return closing;
    },
  };
}
