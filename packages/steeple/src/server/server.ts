/**
 * The server's composition root: builds every part from the validated config and wires
 * them together — datastore, CA (publishing into the datastore's bundle, shared with every
 * server on the same database), node attestors, the change feed, the Agent API on TCP, the
 * admin API on its Unix socket, health and metrics listeners, and the housekeeping timer.
 * Nothing else in the server knows about more than its own neighbours.
 *
 * ```ts
 * const server = await startServer(loadServerConfig('server.yaml'), { handleSignals: true });
 * console.log(server.agentApiPort);
 * await server.closed;
 * ```
 * @module
 */
import { resolve } from 'node:path';
import { type Clock, type SpiffeBundle, systemClock, TrustDomain } from '@steeple/spiffe';
import { ensureSecureDir } from '../common/fs-secure.js';
import { type HealthServer, type Readiness, startHealthServer } from '../common/health-server.js';
import { createLogger, type Logger } from '../common/logger.js';
import { createMetrics, type Metrics } from '../common/metrics.js';
import { parseCsrSync } from './admin-csr.js';
import type { AdminCa, ComponentHealth } from './api/admin/admin-deps.js';
import { createAdminRoutes } from './api/admin/admin-routes.js';
import { type AdminServer, startAdminServer } from './api/admin/admin-server.js';
import { type AgentApiServer, type AgentApiSigner, ChangeFeed, ServerSvid, startAgentApi } from './api/agent/index.js';
import { createNodeAttestors } from './attestation/node-attestor-catalog.js';
import { subjectFromConfig } from './ca/ca-certificate.js';
import { fileJournalStorage, journalPath } from './ca/ca-journal.js';
import { CaManager } from './ca/ca-manager.js';
import { createKeyManager } from './ca/key-manager.js';
import { createDiskUpstreamAuthority } from './ca/upstream-authority.js';
import { type ServerConfig, serverConfigWarnings } from './config.js';
import { type Datastore, openDatastore } from './datastore/index.js';
import { DatastoreBundlePublisher } from './datastore-bundle-publisher.js';
import { type RunningFederation, startFederation } from './federation/start-federation.js';

/** How often expired join tokens and entries are pruned and old entry events dropped. */
const HOUSEKEEPING_INTERVAL_MS = 60_000;
/** Entry events older than this are pruned (a server or agent further behind syncs in full). */
const EVENT_RETENTION_SECONDS = 3600;
/** A change feed that has not read the datastore for this long makes the server not ready. */
const FEED_STALE_MS = 30_000;

export interface StartServerOptions {
  /** Default: the system clock. */
  readonly clock?: Clock;
  /** Default: a JSON logger at `log_level` named `steeple-server`. */
  readonly logger?: Logger;
  /** Stop gracefully on SIGTERM and SIGINT (what `steeple server run` does). Default false. */
  readonly handleSignals?: boolean;
  /** Milliseconds between polls of the datastore for changes by other servers; default 1000. */
  readonly pollIntervalMs?: number;
}

/** A started server. */
export interface RunningServer {
  readonly trustDomain: string;
  /** The Agent API's bound address and port (the real port when 0 was configured). */
  readonly agentApiAddress: string;
  readonly agentApiPort: number;
  /** Absolute path of the admin API socket. */
  readonly adminSocketPath: string;
  /** Where the data lives, without secrets. */
  readonly datastoreDescription: string;
  /** Base URL of the health listener, when enabled. */
  readonly healthUrl: string | undefined;
  /** Base URL of the Prometheus listener, when configured. */
  readonly metricsUrl: string | undefined;
  /** URL of the federation bundle endpoint, when configured. */
  readonly bundleEndpointUrl: string | undefined;
  /** The trust domain's bundle as last published. */
  bundle(): SpiffeBundle;
  /** Whether the server can do its job now (datastore reachable, CA active, changes flowing). */
  readiness(): Promise<Readiness>;
  /** Stops listening, lets calls in flight finish briefly, stops the CA and closes the datastore. Idempotent. */
  close(): Promise<void>;
  /** Resolves once the server has closed (by close() or a signal). */
  readonly closed: Promise<void>;
}

/** The CA as the Agent API signs with it. */
function agentApiSigner(ca: CaManager): AgentApiSigner {
  return {
    async signX509Svid(r) {
      const signed = ca.x509Ca().signX509Svid({
        publicKey: r.subjectPublicKeyInfo,
        spiffeId: r.spiffeId,
        ttlSeconds: r.ttlSeconds,
        ...(r.dnsNames && r.dnsNames.length > 0 ? { dnsNames: r.dnsNames } : {}),
      });
      return { certChain: signed.certificates, expiresAt: Math.floor(signed.expiresAt.getTime() / 1000) };
    },
    async mintJwtSvid(r) {
      const minted = ca
        .jwtSigner()
        .mintJwtSvid({ spiffeId: r.spiffeId, audience: r.audience, ttlSeconds: r.ttlSeconds });
      return {
        token: minted.token,
        expiresAt: Math.floor(minted.expiresAt.getTime() / 1000),
        issuedAt: Math.floor(minted.issuedAt.getTime() / 1000),
      };
    },
  };
}

/** The CA as the admin API uses it. */
function adminCa(ca: CaManager): AdminCa {
  return {
    async signX509Svid(r) {
      const signed = ca.x509Ca().signX509Svid({
        publicKey: r.publicKey,
        spiffeId: r.spiffeId,
        ttlSeconds: r.ttlSeconds,
        ...(r.dnsNames.length > 0 ? { dnsNames: r.dnsNames } : {}),
      });
      return { certificates: signed.certificates, expiresAt: signed.expiresAt };
    },
    async mintJwtSvid(r) {
      const minted = ca.jwtSigner().mintJwtSvid(r);
      return { token: minted.token, expiresAt: minted.expiresAt, issuedAt: minted.issuedAt };
    },
    bundle: () => ca.bundle(),
  };
}

/**
 * Starts a server from a validated configuration. Resolves once every listener is bound
 * and the CA is active; on failure, whatever was started is stopped again and the error
 * (a ConfigError naming the key, a DatastoreError, a CaError…) is rethrown.
 */
export async function startServer(config: ServerConfig, options: StartServerOptions = {}): Promise<RunningServer> {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger({ name: 'steeple-server', level: config.log_level });
  const trustDomain = TrustDomain.parse(config.trust_domain);
  const dataDir = resolve(config.data_dir);
  for (const warning of serverConfigWarnings(config)) logger.warn(warning);

  // Undone in reverse order if a later step fails, and on close().
  const stops: { name: string; stop: () => unknown }[] = [];
  const stopAll = async () => {
    for (const { name, stop } of stops.reverse()) {
      try {
        await stop();
      } catch (err) {
        logger.warn({ err, component: name }, 'error while stopping');
      }
    }
    stops.length = 0;
  };

  try {
    await ensureSecureDir(dataDir);
    const datastore: Datastore = await openDatastore(
      config.datastore.type === 'sqlite' ? { type: 'sqlite', path: resolve(config.datastore.path) } : config.datastore,
      { clock },
    );
    stops.push({ name: 'datastore', stop: () => datastore.close() });
    if (datastore.migration.from !== datastore.migration.to) {
      logger.info({ from: datastore.migration.from, to: datastore.migration.to }, 'datastore schema migrated');
    }

    const metrics: Metrics = createMetrics({
      collectProcessMetrics: config.telemetry.prometheus !== undefined,
      defaultLabels: { trust_domain: trustDomain.name },
    });

    // CA: keys with the key manager, journal in data_dir, bundle in the datastore.
    const publisher = new DatastoreBundlePublisher({ trustDomain, bundles: datastore.bundles, clock });
    const ca = new CaManager({
      trustDomain,
      keyManager: createKeyManager(config.key_manager, { dataDir }),
      journal: fileJournalStorage(journalPath(dataDir)),
      publisher,
      clock,
      logger: logger.child({ component: 'ca' }),
      caTtlSeconds: config.ca_ttl,
      caKeyType: config.ca_key_type,
      ...(config.ca_subject ? { caSubject: subjectFromConfig(config.ca_subject) } : {}),
      ...(config.jwt_issuer ? { jwtIssuer: config.jwt_issuer } : {}),
      ...(config.upstream_authority
        ? { upstreamAuthority: createDiskUpstreamAuthority(config.upstream_authority.disk, { clock }) }
        : {}),
    });
    await ca.start();
    stops.push({
      name: 'ca',
      stop: async () => {
        ca.stop();
        await ca.whenIdle();
      },
    });

    const nodeAttestors = createNodeAttestors(config.node_attestors, { joinTokens: datastore.joinTokens });

    const feed = await ChangeFeed.start({
      source: datastore,
      clock,
      logger: logger.child({ component: 'change-feed' }),
      ...(options.pollIntervalMs === undefined ? {} : { pollIntervalMs: options.pollIntervalMs }),
    });
    stops.push({ name: 'change-feed', stop: () => feed.close() });
    const refreshFeed = () => {
      feed.refresh().catch(() => undefined); // the feed logs; polling retries
    };
    const stopBundleWatch = ca.onBundleChange(refreshFeed);
    stops.push({ name: 'bundle-watch', stop: stopBundleWatch });
    // Another server's bundle write may have dropped our authorities (a lost update): restore them.
    const stopRepair = feed.subscribe((change) => {
      if (!change.bundleTrustDomains.includes(trustDomain.name)) return;
      publisher
        .ensurePublished()
        .then(
          (repaired) => repaired && logger.warn('own CA authorities were missing from the shared bundle; republished'),
        )
        .catch((err: unknown) => logger.warn({ err }, 'cannot check the shared bundle'));
    });
    stops.push({ name: 'bundle-repair', stop: stopRepair });

    const entriesGauge = metrics.gauge({ name: 'registration_entries', help: 'Registration entries' });
    const agentsGauge = metrics.gauge({ name: 'attested_agents', help: 'Attested agents' });
    entriesGauge.set(feed.cache.size);
    stops.push({ name: 'entries-gauge', stop: feed.subscribe(() => entriesGauge.set(feed.cache.size)) });

    const signer = agentApiSigner(ca);
    const serverSvid = await ServerSvid.start({
      trustDomain,
      signer,
      ttlSeconds: config.default_x509_svid_ttl,
      clock,
      logger: logger.child({ component: 'server-svid' }),
    });
    stops.push({ name: 'server-svid', stop: () => serverSvid.close() });

    const agentApi: AgentApiServer = await startAgentApi({
      trustDomain,
      host: config.bind_address,
      port: config.bind_port,
      datastore,
      feed,
      signer,
      nodeAttestors,
      serverSvid,
      defaultX509SvidTtl: config.default_x509_svid_ttl,
      defaultJwtSvidTtl: config.default_jwt_svid_ttl,
      agentSvidTtl: config.agent_ttl ?? config.default_x509_svid_ttl,
      clock,
      logger: logger.child({ component: 'agent-api' }),
      metrics,
      onLocalWrite: refreshFeed,
    });
    stops.push({ name: 'agent-api', stop: () => agentApi.close() });

    // Federation: the bundle endpoint (when configured) and the manager that keeps every
    // federated bundle current; a fetched bundle reaches agents through the change feed.
    const federation: RunningFederation = await startFederation({
      config: config.federation,
      trustDomain,
      datastore,
      serverSvid,
      clock,
      logger,
      metrics,
    });
    stops.push({ name: 'federation', stop: () => federation.close() });
    stops.push({ name: 'federation-watch', stop: federation.manager.onBundlesChanged(refreshFeed) });

    const readiness = async (): Promise<Readiness> => {
      const status = ca.status();
      if (!status.ready) return { ready: false, reason: `CA not active (${status.state})` };
      try {
        await datastore.entries.currentRevision();
      } catch (err) {
        return { ready: false, reason: `datastore unreachable: ${(err as Error).message}` };
      }
      const { sinceSuccessMs } = feed.health();
      if (sinceSuccessMs > FEED_STALE_MS) {
        return { ready: false, reason: `no change read from the datastore for ${Math.round(sinceSuccessMs / 1000)} s` };
      }
      return { ready: true };
    };

    const adminRoutes = createAdminRoutes({
      trustDomain,
      datastore,
      ca: adminCa(ca),
      parseCsr: parseCsrSync,
      svidDefaults: { x509TtlSeconds: config.default_x509_svid_ttl, jwtTtlSeconds: config.default_jwt_svid_ttl },
      logger: logger.child({ component: 'admin-api' }),
      clock,
      metrics,
      healthChecks: (): ComponentHealth[] => {
        const { sinceSuccessMs, lastError } = feed.health();
        const healthy = sinceSuccessMs <= FEED_STALE_MS;
        return [
          { name: 'agent-api', healthy: true },
          {
            name: 'change-feed',
            healthy,
            ...(healthy ? {} : { message: lastError?.message ?? `stale for ${Math.round(sinceSuccessMs / 1000)} s` }),
          },
        ];
      },
      refreshBundle: (td) => federation.manager.refresh(td),
      federationStatus: () => federation.manager.status(),
      onChange: (what) => {
        refreshFeed();
        if (what === 'federation') {
          federation.manager.sync().catch((err: unknown) => logger.warn({ err }, 'cannot apply federation changes'));
        }
      },
    });
    const admin: AdminServer = await startAdminServer({
      socketPath: config.socket_path,
      routes: adminRoutes,
      logger: logger.child({ component: 'admin-api' }),
    });
    stops.push({ name: 'admin-api', stop: () => admin.close() });

    let health: HealthServer | undefined;
    if (config.health_checks.listener_enabled) {
      health = await startHealthServer({
        host: config.health_checks.bind_address,
        port: config.health_checks.bind_port,
        livePath: config.health_checks.live_path,
        readyPath: config.health_checks.ready_path,
        readiness,
        logger,
      });
      stops.push({ name: 'health', stop: () => health?.close() });
    }
    let prometheus: HealthServer | undefined;
    if (config.telemetry.prometheus !== undefined) {
      prometheus = await startHealthServer({
        host: config.telemetry.prometheus.host,
        port: config.telemetry.prometheus.port,
        registry: metrics.registry,
        readiness,
        logger,
      });
      stops.push({ name: 'prometheus', stop: () => prometheus?.close() });
    }

    const housekeeping = startHousekeeping({ datastore, clock, logger, agentsGauge, onPruned: refreshFeed });
    stops.push({ name: 'housekeeping', stop: housekeeping });

    let closing: Promise<void> | undefined;
    let markClosed: () => void = () => undefined;
    const closed = new Promise<void>((resolveClosed) => {
      markClosed = resolveClosed;
    });
    const close = () => {
      closing ??= (async () => {
        logger.info('server stopping');
        await stopAll();
        logger.info('server stopped');
        markClosed();
      })();
      return closing;
    };
    if (options.handleSignals) {
      const onSignal = (signal: NodeJS.Signals) => {
        logger.info({ signal }, 'signal received; shutting down');
        void close();
      };
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
      stops.unshift({
        name: 'signals',
        stop: () => {
          process.off('SIGTERM', onSignal);
          process.off('SIGINT', onSignal);
        },
      });
    }

    const agentApiAddress = agentApi.host;
    const running: RunningServer = {
      trustDomain: trustDomain.name,
      agentApiAddress,
      agentApiPort: agentApi.port,
      adminSocketPath: admin.socketPath,
      datastoreDescription: datastore.description,
      healthUrl: health?.url,
      metricsUrl: prometheus ? `${prometheus.url}/metrics` : undefined,
      bundleEndpointUrl: federation.endpoint?.url,
      bundle: () => ca.bundle(),
      readiness,
      close,
      closed,
    };
    logger.info(
      {
        trustDomain: trustDomain.name,
        agentApiAddress,
        agentApiPort: agentApi.port,
        adminSocket: admin.socketPath,
        datastore: datastore.description,
        ...(health ? { health: health.url } : {}),
        ...(prometheus ? { metrics: running.metricsUrl } : {}),
        ...(federation.endpoint ? { bundleEndpoint: federation.endpoint.url } : {}),
      },
      describeRunningServer(running),
    );
    return running;
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/**
 * One line for people: `server ready: trust domain example.org, agent API 0.0.0.0:8081,
 * admin socket /tmp/steeple-server/private/api.sock, datastore sqlite:/var/lib/…` (no secrets).
 */
export function describeRunningServer(server: RunningServer): string {
  const host = server.agentApiAddress.includes(':') ? `[${server.agentApiAddress}]` : server.agentApiAddress;
  return (
    `server ready: trust domain ${server.trustDomain}, agent API ${host}:${server.agentApiPort}, ` +
    `admin socket ${server.adminSocketPath}, datastore ${server.datastoreDescription}`
  );
}

/** Prunes expired join tokens and entries and old entry events, and samples the agent count. */
function startHousekeeping(deps: {
  datastore: Datastore;
  clock: Clock;
  logger: Logger;
  agentsGauge: { set(value: number): void };
  onPruned: () => void;
}): () => Promise<void> {
  const { datastore, clock, logger } = deps;
  let timer: { cancel(): void } | undefined;
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  const run = async () => {
    const now = Math.floor(clock.now().getTime() / 1000);
    await datastore.joinTokens.pruneExpired(now);
    const entries = await datastore.entries.pruneExpired(now);
    if (entries > 0) {
      logger.info({ entries }, 'pruned expired registration entries');
      deps.onPruned();
    }
    await datastore.entries.pruneEventsOlderThan(now - EVENT_RETENTION_SECONDS);
    deps.agentsGauge.set(await datastore.agents.count());
  };
  const schedule = (ms: number) => {
    if (stopped) return;
    timer = clock.setTimer(() => {
      running = run()
        .catch((err: unknown) => logger.warn({ err }, 'housekeeping failed; retrying later'))
        .finally(() => schedule(HOUSEKEEPING_INTERVAL_MS));
    }, ms);
  };
  schedule(0);
  return async () => {
    stopped = true;
    timer?.cancel();
    await running; // never close the datastore under a running prune
  };
}
