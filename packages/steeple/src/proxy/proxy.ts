/**
 * The proxy's composition root: identity (files or Workload API), policy store, audit
 * log, metrics, health endpoints and the listeners, started and stopped together.
 * @module
 */

import { PolicyEvaluator } from '@steeple/spiffe/policy';
import { ConfigError } from '../common/errors.js';
import { type HealthServer, startHealthServer } from '../common/health-server.js';
import { isoTime } from '../common/iso-time.js';
import { createLogger, type Logger } from '../common/logger.js';
import { createMetrics, type Metrics } from '../common/metrics.js';
import { AuditLog } from './audit/audit-log.js';
import type { ProxyConfig } from './config.js';
import { FileIdentity } from './identity/file-identity.js';
import { InboundListener } from './inbound/inbound-listener.js';
import type { IdentitySource, ListenerContext } from './listener-context.js';
import { OutboundListener } from './outbound/outbound-listener.js';
import { PolicyStore } from './policy/policy-store.js';
import { ProxyMetrics } from './proxy-metrics.js';

export interface StartProxyOptions {
  readonly config: ProxyConfig;
  /** Default: a JSON logger on stdout at the configured level. */
  readonly logger?: Logger;
  /** Use this identity instead of the configured one (tests, embedding). */
  readonly identity?: IdentitySource;
  /** The environment, for `SPIFFE_ENDPOINT_SOCKET`; default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** A running proxy. */
export interface RunningProxy {
  /** Bound ports by listener name (useful when the config asked for port 0). */
  readonly ports: ReadonlyMap<string, number>;
  /** Base URL of the health listener, when enabled. */
  readonly healthUrl: string | undefined;
  /** Base URL of the Prometheus listener, when configured separately. */
  readonly metricsUrl: string | undefined;
  readonly metrics: Metrics;
  /** Re-reads the policy file now; true when a new policy is in force. */
  reloadPolicy(): boolean;
  /** Stops listening, closes open connections after `graceMs`, flushes the audit log. */
  close(graceMs?: number): Promise<void>;
}

/** Workload API identity: the configured socket, else SPIFFE_ENDPOINT_SOCKET. */
async function workloadApiIdentity(
  config: ProxyConfig,
  env: Readonly<Record<string, string | undefined>>,
  logger: Logger,
) {
  const configured = config.identity.workload_api?.socket_path;
  const address = configured ?? env['SPIFFE_ENDPOINT_SOCKET'];
  if (address === undefined) {
    throw new Error(
      'no identity configured: set identity.files (cert, key, bundle), identity.workload_api.socket_path, or SPIFFE_ENDPOINT_SOCKET',
    );
  }
  // A bare path is a Unix socket; anything else is an address URI for the SDK to check.
  const full = address.startsWith('/') ? `unix://${address}` : address;
  logger.info({ address: full }, 'waiting for the first X.509-SVID from the Workload API');
  // Loaded only here: a proxy whose identity comes from files does not carry the Workload
  // API client's gRPC stack (about 17 MiB resident; the rest of the proxy uses @steeple/spiffe/core).
  const { X509Source } = await import('@steeple/spiffe');
  const source = await X509Source.create({ address: full });
  source.onError((err: Error) =>
    logger.warn({ reason: err.message }, 'Workload API stream error (retrying); keeping the last identity'),
  );
  source.onUpdate(() =>
    logger.info({ spiffeId: source.getX509Svid().id.toString() }, 'identity updated by the Workload API'),
  );
  const svid = source.getX509Svid();
  logger.info(
    { spiffeId: svid.id.toString(), expiresAt: isoTime(svid.expiresAt.getTime()) },
    'identity from the Workload API',
  );
  return source;
}

/** Starts everything the configuration describes; rejects if any listener cannot bind. */
export async function startProxy(options: StartProxyOptions): Promise<RunningProxy> {
  const { config } = options;
  const logger = options.logger ?? createLogger({ name: 'steeple-proxy', level: config.log_level });
  // Process metrics (CPU, memory, GC, event-loop delay) cost a GC observer and a delay
  // histogram (≈ 0.4 MiB); they are collected only when a listener can serve them.
  const served = config.telemetry.prometheus !== undefined || config.health_checks.listener_enabled;
  const metrics = createMetrics({ collectProcessMetrics: served });
  const proxyMetrics = new ProxyMetrics(metrics);
  const closers: (() => unknown)[] = [];
  const started: { close(graceMs?: number): Promise<void> }[] = [];
  let audit: AuditLog | undefined;
  let closed = false;
  const shutdown = async (graceMs = 0) => {
    if (closed) return;
    closed = true;
    await Promise.all(started.map((l) => l.close(graceMs)));
    for (const close of closers.reverse()) await close();
    audit?.close();
  };
  try {
    return await start();
  } catch (err) {
    // Whatever started before the failure (identity watch, policy poll, listeners) stops,
    // so a proxy that cannot start exits instead of idling without listeners.
    await shutdown();
    throw err;
  }

  async function start(): Promise<RunningProxy> {
    let identity: IdentitySource;
    if (options.identity !== undefined) identity = options.identity;
    else if (config.identity.files !== undefined) {
      const files = FileIdentity.open(config.identity.files, logger);
      files.onChange(() => proxyMetrics.identityReloads.inc({ result: 'ok' }));
      closers.push(() => files.close());
      identity = files;
    } else {
      const source = await workloadApiIdentity(config, options.env ?? process.env, logger);
      source.onUpdate(() => proxyMetrics.identityReloads.inc({ result: 'ok' }));
      closers.push(() => source.close());
      identity = source;
    }

    let policyStore: PolicyStore | undefined;
    if (config.policy.file !== undefined) {
      policyStore = PolicyStore.open({
        file: config.policy.file,
        pollIntervalMs: config.policy.poll_interval * 1000,
        logger,
        onReload: (ok) => proxyMetrics.policyReloads.inc({ result: ok ? 'ok' : 'rejected' }),
      });
      closers.push(() => policyStore?.close());
    }
    const allowAll = PolicyEvaluator.allowAll();
    const store = policyStore;

    const auditConfig = config.audit;
    audit =
      auditConfig.output === 'none'
        ? undefined
        : openAuditLog(
            {
              output:
                auditConfig.output === 'stdout'
                  ? 'stdout'
                  : {
                      path: auditConfig.path as string,
                      maxSizeBytes: auditConfig.max_size_bytes,
                      maxFiles: auditConfig.max_files,
                    },
              flushIntervalMs: auditConfig.flush_interval_ms,
              onError: (err) => logger.error({ reason: err.message }, 'audit log write failed'),
            },
            auditConfig.path,
          );

    const ctx: ListenerContext = {
      identity,
      policy: store === undefined ? () => allowAll : () => store.current,
      audit,
      auditRecords: auditConfig.records,
      metrics: proxyMetrics,
      logger,
    };

    const inbound = config.inbound.map((c) => new InboundListener(c, ctx));
    const outbound = config.outbound.map((c) => new OutboundListener(c, ctx));
    const ports = new Map<string, number>();
    for (const l of [...inbound, ...outbound]) {
      ports.set(l.config.name, await l.start());
      started.push(l);
    }

    let health: HealthServer | undefined;
    let prometheus: HealthServer | undefined;
    const readiness = () => {
      try {
        identity.getX509Svid();
        return { ready: true };
      } catch (err) {
        return { ready: false, reason: `no identity: ${(err as Error).message}` };
      }
    };
    const hc = config.health_checks;
    if (hc.listener_enabled) {
      health = await startHealthServer({
        host: hc.bind_address,
        port: hc.bind_port,
        livePath: hc.live_path,
        readyPath: hc.ready_path,
        registry: metrics.registry,
        readiness,
        logger,
      });
      closers.push(() => health?.close());
    }
    const prom = config.telemetry.prometheus;
    if (prom !== undefined) {
      prometheus = await startHealthServer({
        host: prom.host,
        port: prom.port,
        registry: metrics.registry,
        readiness,
        logger,
      });
      closers.push(() => prometheus?.close());
    }

    return {
      ports,
      healthUrl: health?.url,
      metricsUrl: prometheus?.url,
      metrics,
      reloadPolicy: () => store?.reload() ?? false,
      close: shutdown,
    };
  }
}

/** Opens the audit log; a file that cannot be opened is a startup error naming the file. */
function openAuditLog(options: ConstructorParameters<typeof AuditLog>[0], path: string | undefined): AuditLog {
  try {
    return new AuditLog(options);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ConfigError(
      [{ path: 'audit.path', message: `cannot open the audit log "${path}": ${e.code ?? ''} ${e.message}`.trim() }],
      { code: 'ERR_CONFIG_UNREADABLE', cause: err },
    );
  }
}
