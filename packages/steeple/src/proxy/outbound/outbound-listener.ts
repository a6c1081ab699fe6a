/**
 * An outbound listener (Istio's ISTIO_MUTUAL role): the local app connects in plaintext,
 * the proxy originates mTLS to the upstream with our SVID and accepts the upstream only
 * if its SVID verifies against the bundle of its own trust domain and its ID is the
 * expected one (or a member of the expected trust domain). TCP listeners splice each
 * connection to its own mTLS connection; HTTP listeners send requests over a pool of
 * keep-alive mTLS connections.
 * @module
 */
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { authorizeId, authorizeMemberOf, mtlsClientOptions, type SpiffeError } from '@steeple/spiffe/core';
import type { OutboundConfig } from '../config.js';
import { Http1Relay } from '../http1/http1-relay.js';
import {
  auditRecord,
  handshakeFailureReason,
  type ListenerContext,
  ownId,
  peerAddress,
  type RecordInput,
  tlsInfo,
} from '../listener-context.js';
import { drain } from '../net/drain.js';
import { splice } from '../net/splice.js';
import { MtlsUpstreamPool } from '../upstream/mtls-upstream-pool.js';
import { UpstreamConnectError } from '../upstream/upstream.js';

export class OutboundListener {
  readonly config: OutboundConfig;
  readonly #ctx: ListenerContext;
  readonly #server: NetServer;
  readonly #pool: MtlsUpstreamPool;
  readonly #sockets = new Set<Socket>();

  constructor(config: OutboundConfig, ctx: ListenerContext) {
    this.config = config;
    this.#ctx = ctx;
    const authorize =
      config.upstream_id !== undefined
        ? authorizeId(config.upstream_id)
        : authorizeMemberOf(config.upstream_trust_domain as NonNullable<OutboundConfig['upstream_trust_domain']>);
    const clientOptions = mtlsClientOptions({
      svid: ctx.identity,
      bundles: ctx.identity,
      authorize,
      onReject: (err: SpiffeError) => {
        ctx.metrics.handshakeFailures.inc({
          listener: config.name,
          direction: 'outbound',
          reason: handshakeFailureReason(err),
        });
      },
    });
    this.#pool = new MtlsUpstreamPool({
      upstream: config.upstream,
      clientOptions,
      sni: config.sni,
      alpn: config.protocol === 'http' ? ['http/1.1'] : undefined,
      connectTimeoutMs: config.connect_timeout * 1000,
      maxIdle: config.max_idle_connections,
      idleTimeoutMs: config.pool_idle_timeout * 1000,
    });
    this.#server = createNetServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.#accepted(socket));
    this.#server.on('error', (err) => ctx.logger.error({ listener: config.name, err }, 'outbound listener error'));
  }

  async start(): Promise<number> {
    const { host, port } = this.config.listen;
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    this.#ctx.logger.info(
      { listener: this.config.name, address: `${host}:${this.port}`, upstream: this.config.upstream.text },
      'outbound listener ready',
    );
    return this.port;
  }

  get port(): number {
    const a = this.#server.address();
    return typeof a === 'object' && a !== null ? a.port : 0;
  }

  async close(graceMs = 0): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    await drain(this.#sockets, graceMs);
    for (const s of this.#sockets) s.destroy();
    this.#pool.close();
    await closed;
  }

  #accepted(socket: Socket): void {
    const name = this.config.name;
    const m = this.#ctx.metrics;
    this.#sockets.add(socket);
    m.activeConnections.inc({ listener: name, direction: 'outbound' });
    m.connections.inc({ listener: name, direction: 'outbound', transport: 'plaintext' });
    socket.once('close', () => {
      this.#sockets.delete(socket);
      m.activeConnections.dec({ listener: name, direction: 'outbound' });
    });
    socket.on('error', () => {
      /* handled at close */
    });
    if (this.config.idle_timeout > 0) socket.setTimeout(this.config.idle_timeout * 1000, () => socket.destroy());
    if (this.config.protocol === 'tcp') this.#serveTcp(socket);
    else this.#serveHttp(socket);
  }

  #record(
    socket: Socket,
    type: 'connection' | 'request',
    destinationId: string | undefined,
    denied: boolean,
    rest: Pick<
      RecordInput,
      'reason' | 'method' | 'path' | 'host' | 'status' | 'bytesReceived' | 'bytesSent' | 'durationMs' | 'tls'
    >,
  ) {
    return auditRecord({
      type,
      listener: this.config.name,
      direction: 'outbound',
      sourceId: ownId(this.#ctx.identity),
      destinationId,
      peerAddress: peerAddress(socket),
      decision: undefined,
      denied,
      reason: rest.reason,
      method: rest.method,
      path: rest.path,
      host: rest.host,
      status: rest.status,
      bytesReceived: rest.bytesReceived,
      bytesSent: rest.bytesSent,
      durationMs: rest.durationMs,
      tls: rest.tls,
    });
  }

  #upstreamFailed(err: Error): void {
    const reason = err instanceof UpstreamConnectError ? err.reason : 'connect';
    this.#ctx.metrics.upstreamErrors.inc({ listener: this.config.name, direction: 'outbound', reason });
    this.#ctx.logger.warn(
      { listener: this.config.name, upstream: this.config.upstream.text, reason: err.message },
      'upstream unreachable',
    );
  }

  #serveTcp(socket: Socket): void {
    const started = performance.now();
    const ctx = this.#ctx;
    this.#pool.connect((err, conn) => {
      if (err !== undefined || conn === undefined) {
        this.#upstreamFailed(err ?? new Error('no connection'));
        ctx.audit?.write(
          this.#record(socket, 'connection', undefined, true, {
            reason: `upstream refused: ${err?.message ?? ''}`,
            bytesReceived: 0,
            bytesSent: 0,
            durationMs: performance.now() - started,
          }),
        );
        socket.destroy();
        return;
      }
      if (socket.destroyed) {
        conn.socket.destroy();
        return;
      }
      const tls = tlsInfo(conn.socket);
      splice(socket, conn.socket, ({ aToB, bToA }) => {
        ctx.metrics.addBytes(this.config.name, 'outbound', aToB, bToA);
        if (ctx.auditRecords === 'all') {
          ctx.audit?.write(
            this.#record(socket, 'connection', conn.peerId, false, {
              bytesReceived: aToB,
              bytesSent: bToA,
              durationMs: performance.now() - started,
              tls,
            }),
          );
        }
      });
    });
  }

  #serveHttp(socket: Socket): void {
    const ctx = this.#ctx;
    new Http1Relay(socket, {
      addHeaders: '',
      pooledUpstream: true,
      upstream: this.#pool.provider,
      onExchange: (o) => {
        ctx.metrics.observeDuration(this.config.name, 'outbound', o.durationMs / 1000);
        ctx.metrics.addBytes(this.config.name, 'outbound', o.bytesReceived, o.bytesSent);
        if (o.error !== undefined) this.#upstreamFailed(new Error(o.error));
        if (ctx.auditRecords === 'all' || o.error !== undefined) {
          ctx.audit?.write(
            this.#record(socket, 'request', o.upstreamId, o.upstreamId === undefined && o.status >= 500, {
              reason: o.error,
              method: o.method,
              path: o.path,
              host: o.host,
              status: o.status,
              bytesReceived: o.bytesReceived,
              bytesSent: o.bytesSent,
              durationMs: o.durationMs,
            }),
          );
        }
      },
    });
  }
}
