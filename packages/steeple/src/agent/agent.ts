/**
 * The agent's composition root: from a validated {@link AgentConfig} to a running agent —
 * its identity loaded from data_dir (or obtained by node attestation), the sync with the
 * server, the Workload API on its Unix socket, and the health and metrics listeners.
 * @module
 */
import { readFileSync } from 'node:fs';
import { type Clock, SpiffeBundle, systemClock, TrustDomain, X509Bundle } from '@steeple/spiffe';
import { ConfigError } from '../common/errors.js';
import { type HealthServer, type Readiness, startHealthServer } from '../common/health-server.js';
import type { Logger } from '../common/logger.js';
import { createMetrics, type Metrics } from '../common/metrics.js';
import { createUnixAttestor } from './attestation/unix-attestor.js';
import { createWorkloadAttestation, type WorkloadAttestationOptions } from './attestation/workload-attestation.js';
import type { PeerCredentials, WorkloadAttestor } from './attestation/workload-attestor.js';
import { BundleCache } from './cache/bundle-cache.js';
import { EntryCache } from './cache/entry-cache.js';
import { WorkloadCache } from './cache/workload-cache.js';
import type { AgentConfig } from './config.js';
import { AgentIdentity } from './identity/agent-identity.js';
import { IdentityStore } from './identity/identity-store.js';
import { createJoinTokenClient, createX509PopClient, type NodeAttestorClient } from './node-attestation/index.js';
import { AgentApiConnection } from './server-api/agent-api-connection.js';
import { Syncer } from './sync/syncer.js';
import { startWorkloadApiServer, type WorkloadApiServer } from './workload-api/server.js';

/** Options of {@link startAgent} beyond the config; tests inject time and credentials. */
export interface StartAgentOptions {
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly random?: () => number;
  /** Fallback sync period; default 5000 ms. */
  readonly syncIntervalMs?: number;
  /** Reads a Workload API caller's credentials; default SO_PEERCRED via koffi. */
  readonly readCredentials?: (socket: import('node:net').Socket) => PeerCredentials;
  /** Replaces the pid-reuse check of workload attestation. */
  readonly sameProcess?: WorkloadAttestationOptions['sameProcess'];
  /** Workload attestors to use instead of the configured ones. */
  readonly workloadAttestors?: readonly WorkloadAttestor[];
}

/** A running agent. */
export interface Agent {
  readonly cache: WorkloadCache;
  readonly identity: AgentIdentity;
  readonly syncer: Syncer;
  readonly workloadApi: WorkloadApiServer;
  readonly metrics: Metrics;
  /** The health listener, when `health_checks.listener_enabled`. */
  readonly health: HealthServer | undefined;
  /** Whether the agent can serve workloads now, and if not, why. */
  readiness(): Readiness;
  /** Stops serving and syncing; resolves when everything is closed. */
  close(): Promise<void>;
}

/** The bootstrap bundle from `trust_bundle_path` (PEM certificates). */
export function readBootstrapBundle(path: string, trustDomain: TrustDomain): SpiffeBundle {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new ConfigError(
      [{ path: 'trust_bundle_path', message: `cannot read ${JSON.stringify(path)}: ${(cause as Error).message}` }],
      { cause },
    );
  }
  try {
    return SpiffeBundle.fromBundles({ x509: X509Bundle.parse(trustDomain, pem) });
  } catch (cause) {
    throw new ConfigError(
      [{ path: 'trust_bundle_path', message: `${JSON.stringify(path)}: ${(cause as Error).message}` }],
      { cause },
    );
  }
}

function nodeAttestorFor(config: AgentConfig, trustDomain: TrustDomain): NodeAttestorClient {
  if (config.join_token !== undefined) return createJoinTokenClient(config.join_token);
  if (config.node_attestor !== undefined) {
    return createX509PopClient(config.node_attestor.x509pop, { trustDomain, configKey: 'node_attestor.x509pop' });
  }
  throw new ConfigError([{ path: 'join_token', message: 'no node attestation method is configured' }]);
}

/** Starts an agent. Resolves once the Workload API listens (before the first sync). */
export async function startAgent(config: AgentConfig, options: StartAgentOptions): Promise<Agent> {
  const { logger } = options;
  const clock = options.clock ?? systemClock;
  const trustDomain = TrustDomain.parse(config.trust_domain);
  const attestor = nodeAttestorFor(config, trustDomain);
  const store = new IdentityStore(config.data_dir, trustDomain);
  const identity = new AgentIdentity({
    trustDomain,
    store,
    attestor,
    ...(config.join_token === undefined ? {} : { joinToken: config.join_token }),
    ...(config.trust_bundle_path === undefined
      ? {}
      : { bootstrapBundle: readBootstrapBundle(config.trust_bundle_path, trustDomain) }),
    clock,
    logger,
  });
  await identity.load();
  const bundle = identity.bundle;
  if (bundle === undefined) {
    throw new ConfigError([
      {
        path: 'trust_bundle_path',
        message: 'is required for the first attestation: the PEM root certificate(s) of the server’s trust domain',
      },
    ]);
  }

  const metrics = createMetrics({ collectProcessMetrics: true, defaultLabels: { trust_domain: trustDomain.name } });
  const attestors = options.workloadAttestors ?? [
    ...(config.workload_attestors.unix === undefined
      ? []
      : [createUnixAttestor(config.workload_attestors.unix, { logger })]),
  ];
  const cache = new WorkloadCache({
    entries: new EntryCache(),
    bundles: new BundleCache(bundle),
    agentId: identity.spiffeId ?? '',
    selectorTypes: attestors.map((a) => a.name),
  });
  const connection = new AgentApiConnection({
    address: config.server_address,
    port: config.server_port,
    material: () => identity.material(),
    clock,
  });
  const syncs = metrics.histogram({
    name: 'agent_sync_duration_seconds',
    help: 'Duration of successful syncs with the server',
  });
  const syncFailures = metrics.counter({
    name: 'agent_sync_failures_total',
    help: 'Syncs with the server that failed',
  });
  const signed = metrics.counter({
    name: 'agent_x509_svids_signed_total',
    help: 'Workload X.509-SVIDs obtained from the server',
  });
  const syncer = new Syncer({
    identity,
    connection,
    cache,
    clock,
    logger,
    ...(options.random === undefined ? {} : { random: options.random }),
    ...(options.syncIntervalMs === undefined ? {} : { syncIntervalMs: options.syncIntervalMs }),
    observer: {
      syncSucceeded: (s) => syncs.observe(s),
      syncFailed: () => syncFailures.inc(),
      svidsSigned: (n) => signed.inc(n),
    },
  });
  metrics.gauge({ name: 'agent_entries', help: 'Authorized entries cached' }).set(0);

  const workloadApi = await startWorkloadApiServer({
    socketPath: config.socket_path,
    cache,
    attestation: createWorkloadAttestation(
      attestors,
      options.sameProcess === undefined ? {} : { sameProcess: options.sameProcess },
    ),
    mintJwtSvid: (entry, audience) => syncer.mintJwtSvid(entry, audience),
    allowUnauthenticatedVerifiers: config.allow_unauthenticated_verifiers,
    ready: () => syncer.synced,
    clock,
    logger: logger.child({ component: 'workload-api' }),
    ...(options.readCredentials === undefined ? {} : { readCredentials: options.readCredentials }),
  });
  cache.onChange(() => {
    metrics.gauge({ name: 'agent_entries', help: 'Authorized entries cached' }).set(cache.entries.size);
  });
  syncer.start();

  const readiness = (): Readiness => {
    if (!identity.isUsable()) {
      return { ready: false, reason: identity.problem ?? syncer.lastError ?? 'waiting for node attestation' };
    }
    if (!syncer.synced)
      return { ready: false, reason: syncer.lastError ?? 'waiting for the first sync with the server' };
    return { ready: true };
  };

  let health: HealthServer | undefined;
  let metricsServer: HealthServer | undefined;
  try {
    if (config.health_checks.listener_enabled) {
      health = await startHealthServer({
        host: config.health_checks.bind_address,
        port: config.health_checks.bind_port,
        livePath: config.health_checks.live_path,
        readyPath: config.health_checks.ready_path,
        readiness,
        logger,
      });
    }
    const prometheus = config.telemetry.prometheus;
    if (prometheus !== undefined) {
      metricsServer = await startHealthServer({
        host: prometheus.host,
        port: prometheus.port,
        registry: metrics.registry,
        readiness,
        logger,
      });
    }
  } catch (err) {
    await syncer.close();
    await workloadApi.close();
    connection.close();
    throw err;
  }

  let closing: Promise<void> | undefined;
  return {
    cache,
    identity,
    syncer,
    workloadApi,
    metrics,
    health,
    readiness,
    close() {
      closing ??= (async () => {
        await workloadApi.close();
        await syncer.close();
        connection.close();
        await health?.close();
        await metricsServer?.close();
      })();
      return closing;
    },
  };
}
