/**
 * An inbound listener: terminates mTLS in front of a local app, with Istio's
 * PeerAuthentication modes — STRICT (mTLS only), PERMISSIVE (mTLS or plaintext on the
 * same port, told apart by the first byte: 0x16 opens a TLS handshake) and DISABLE
 * (plaintext only). TCP listeners authorize each connection and splice it to the app;
 * HTTP listeners authorize each request, strip any `x-forwarded-client-cert` the caller
 * sent and add ours (`By=<our ID>;URI=<caller ID>`), and speak HTTP/1.1 or, after ALPN
 * `h2`, HTTP/2.
 *
 * STRICT listens with the TLS server directly (no first-byte peek), the fastest path.
 * @module
 */

import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { authorizeAny, getPeerId, mtlsServerOptions, type SpiffeError, serveMtls } from '@steeple/spiffe/core';
import type { Decision, PolicyEvaluator, RequestAttributes } from '@steeple/spiffe/policy';
import {
  type AuditLog,
  type EncodedRequestParts,
  encodeRequestParts,
  jsonMillis,
  serializeExchange,
  serializePartyFields,
  serializeTlsFields,
} from '../audit/audit-log.js';
import type { InboundConfig } from '../config.js';
import { type ExchangeOutcome, Http1Relay } from '../http1/http1-relay.js';
import type { RequestHead } from '../http1/message-head.js';
import { H2Inbound, type H2Outcome, isH2Preface } from '../http2/h2-inbound.js';
import {
  auditRecord,
  countDecision,
  decisionFields,
  handshakeFailureReason,
  type ListenerContext,
  ownId,
  peerAddress,
  shouldAudit,
  type TlsInfo,
  tlsInfo,
  UNAUTHENTICATED,
} from '../listener-context.js';
import { drain } from '../net/drain.js';
import { IdleSweeper } from '../net/idle-sweeper.js';
import { splice } from '../net/splice.js';
import type { DecisionCount, RequestSeries } from '../proxy-metrics.js';
import { AppConnection, connectPlain } from '../upstream/app-connection.js';

/** The identity header forwarded to the app (Envoy's name and format). */
export const XFCC_HEADER = 'x-forwarded-client-cert';

const TLS_HANDSHAKE_RECORD = 0x16;

/**
 * Per-connection facts the handlers need. The fields filled in later are present (as
 * undefined) from the start: one object shape for every connection, so the per-request
 * reads of them stay inline in optimized code (shapes that grow field by field made them
 * generic property look-ups, ≈ 120 instructions each; `npm run bench -- proxy-instructions`).
 */
interface Caller {
  readonly socket: Socket;
  /** Verified SPIFFE ID, or undefined for plaintext. */
  readonly principal: string | undefined;
  readonly tls: TlsInfo | undefined;
  readonly sni: string | undefined;
  readonly started: number;
  /** `ip:port` of the caller, formatted once per connection for its audit records. */
  readonly peer: string;
  /** The parts of this connection's request records that do not change, serialized at its first request. */
  recordParts: RecordParts | undefined;
  /**
   * The decision for this connection's requests, when the policy in force decides by the
   * connection alone (see PolicyEvaluator.connectionScoped); kept with the evaluator that
   * made it, so a policy reload decides afresh.
   */
  decided: { readonly by: PolicyEvaluator; readonly decision: Decision } | undefined;
  /** The connection's addresses as policy attributes, read from the socket once. */
  addresses:
    | { readonly sourceIp: string; readonly destinationIp: string; readonly destinationPort: number }
    | undefined;
  /**
   * The last request decided on this connection, when the policy in force reads no
   * request headers (see PolicyEvaluator.requestLineScoped): a request with the same
   * method, path and host gets the same decision.
   */
  lastRequest:
    | {
        readonly by: PolicyEvaluator;
        readonly method: string;
        readonly path: string;
        readonly host: string;
        readonly decision: Decision;
      }
    | undefined;
  /** The metrics series of the last shared decision this connection counted (requests mostly repeat it). */
  counted: { readonly decision: Decision; readonly series: DecisionCount } | undefined;
}

interface RecordParts {
  /** Our ID when the parts were made (an identity change with a new ID makes new ones). */
  readonly ownId: string;
  /** type … peer_address. */
  readonly head: string;
  /** tls_version, tls_cipher. */
  readonly tail: string;
  /** The encoded constant parts for the last decision seen (decisions are shared per policy rule). */
  encodedFor: Decision | undefined;
  encoded: EncodedRequestParts | undefined;
}

/** One request's audit record from its outcome and the connection's encoded constant parts. */
function writeRequestRecord(audit: AuditLog, parts: EncodedRequestParts, o: ExchangeOutcome | H2Outcome): void {
  audit.writeRequest(parts, o.method, o.path, o.host, o.status, o.bytesReceived, o.bytesSent, o.durationMs, o.endedAt);
}

function headerLookup(head: RequestHead): (name: string) => string | undefined {
  return (name) => {
    let value: string | undefined;
    for (let i = 0; i < head.names.length; i++) {
      if (head.names[i] === name) value = value === undefined ? head.values[i] : `${value},${head.values[i]}`;
    }
    return value;
  };
}

/** Server-preference ALPN for HTTP listeners: h2, then http/1.1; undefined refuses the handshake. */
function selectHttpAlpn({ protocols }: { protocols: string[] }): string | undefined {
  if (protocols.includes('h2')) return 'h2';
  if (protocols.includes('http/1.1')) return 'http/1.1';
  return undefined;
}

export class InboundListener {
  readonly config: InboundConfig;
  readonly #ctx: ListenerContext;
  readonly #server: NetServer | tls.Server;
  readonly #tls: tls.Server | undefined;
  readonly #sockets = new Set<Socket>();
  readonly #idle: IdleSweeper | undefined;
  #h2: H2Inbound | undefined;
  /** This listener's request series, looked up once. */
  #requestSeries: RequestSeries | undefined;

  constructor(config: InboundConfig, ctx: ListenerContext) {
    this.config = config;
    this.#ctx = ctx;
    if (config.idle_timeout > 0) this.#idle = new IdleSweeper(config.idle_timeout * 1000);
    if (config.mode !== 'DISABLE') this.#tls = this.#createTlsServer();
    if (config.mode === 'STRICT') {
      this.#server = this.#tls as tls.Server;
    } else {
      this.#server = createNetServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.#accepted(socket));
    }
    this.#server.on('error', (err) => ctx.logger.error({ listener: config.name, err }, 'inbound listener error'));
  }

  #createTlsServer(): tls.Server {
    const ctx = this.#ctx;
    const mtls = mtlsServerOptions({
      svid: ctx.identity,
      bundles: ctx.identity,
      // Authorization is the policy's job (it needs the listener, port and request);
      // the SDK still verifies the chain against the caller's own trust domain.
      authorize: authorizeAny(),
      sessionResumption: this.config.session_resumption,
      onReject: (err: SpiffeError, peer) => this.#handshakeFailed(err, peer.address, peer.port),
    });
    const server = tls.createServer({
      ...mtls,
      // HTTP listeners prefer h2, then http/1.1, and refuse a client that offers ALPN but
      // neither (RFC 7301 §3.2), as `ALPNProtocols: ['h2', 'http/1.1']` would. A callback
      // instead of that list: Node copies the list into a small Buffer for every socket,
      // which pins an 8 KiB pool slab per connection for its lifetime.
      ALPNCallback: this.config.protocol === 'http' ? selectHttpAlpn : undefined,
      handshakeTimeout: this.config.handshake_timeout * 1000,
      allowHalfOpen: true,
      noDelay: true,
    } as tls.TlsOptions);
    serveMtls(server, mtls);
    server.on('connection', (socket: Socket) => this.#track(socket));
    server.on('secureConnection', (socket: tls.TLSSocket) => this.#secured(socket));
    server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) =>
      this.#handshakeFailed(err, socket.remoteAddress, socket.remotePort),
    );
    return server;
  }

  /** Starts listening; resolves with the bound port. */
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
      {
        listener: this.config.name,
        address: `${host}:${this.port}`,
        mode: this.config.mode,
        protocol: this.config.protocol,
      },
      'inbound listener ready',
    );
    return this.port;
  }

  get port(): number {
    const a = this.#server.address();
    return typeof a === 'object' && a !== null ? a.port : 0;
  }

  /** Stops accepting; open connections are closed after `graceMs`. */
  async close(graceMs = 0): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    await drain(this.#sockets, graceMs);
    for (const s of this.#sockets) s.destroy();
    this.#idle?.close();
    this.#h2?.close();
    await closed;
  }

  #track(socket: Socket): void {
    if (this.#sockets.has(socket)) return;
    this.#sockets.add(socket);
    const m = this.#ctx.metrics.activeConnections;
    m.inc({ listener: this.config.name, direction: 'inbound' });
    socket.once('close', () => {
      this.#sockets.delete(socket);
      m.dec({ listener: this.config.name, direction: 'inbound' });
    });
  }

  /**
   * Idle timeout on the socket that carries the traffic: for TLS that is the TLSSocket
   * (the raw socket under it sees no reads or writes of its own once TLS wraps it).
   * A sweeper reads byte counters instead of `socket.setTimeout`, whose timer is re-armed
   * on every read and write.
   */
  #idleTimeout(socket: Socket): void {
    this.#idle?.add(socket);
  }

  // ---- PERMISSIVE / DISABLE: plain TCP accept ------------------------------------------

  #accepted(socket: Socket): void {
    this.#track(socket);
    socket.on('error', () => {
      /* handled at close */
    });
    if (this.config.mode === 'DISABLE') {
      this.#plaintext(socket, undefined);
      return;
    }
    const detectMs = this.config.protocol_detection_timeout * 1000;
    let timer: NodeJS.Timeout | undefined;
    const onFirst = (first: Buffer) => {
      if (timer !== undefined) clearTimeout(timer);
      socket.pause();
      if (first[0] === TLS_HANDSHAKE_RECORD) {
        socket.unshift(first);
        (this.#tls as tls.Server).emit('connection', socket);
      } else {
        this.#plaintext(socket, first);
      }
    };
    socket.once('data', onFirst);
    socket.once('close', () => {
      if (timer !== undefined) clearTimeout(timer);
    });
    if (detectMs > 0) {
      // A server-speaks-first protocol sends nothing: after a while it is plaintext.
      timer = setTimeout(() => {
        socket.off('data', onFirst);
        socket.pause();
        this.#plaintext(socket, undefined);
      }, detectMs);
      timer.unref();
    }
  }

  #plaintext(socket: Socket, first: Buffer | undefined): void {
    this.#idleTimeout(socket);
    this.#ctx.metrics.connections.inc({ listener: this.config.name, direction: 'inbound', transport: 'plaintext' });
    this.#serve(
      {
        socket,
        principal: undefined,
        tls: undefined,
        sni: undefined,
        started: performance.now(),
        peer: peerAddress(socket),
        recordParts: undefined,
        decided: undefined,
        addresses: undefined,
        lastRequest: undefined,
        counted: undefined,
      },
      first,
    );
  }

  // ---- mTLS ----------------------------------------------------------------------------

  #secured(socket: tls.TLSSocket): void {
    this.#track(socket);
    this.#idleTimeout(socket);
    socket.setNoDelay(true);
    this.#ctx.metrics.connections.inc({ listener: this.config.name, direction: 'inbound', transport: 'mtls' });
    const id = getPeerId(socket);
    const servername = (socket as tls.TLSSocket & { servername?: string | false }).servername;
    this.#serve(
      {
        socket,
        principal: id?.toString(),
        tls: tlsInfo(socket),
        sni: typeof servername === 'string' ? servername : undefined,
        started: performance.now(),
        peer: peerAddress(socket),
        recordParts: undefined,
        decided: undefined,
        addresses: undefined,
        lastRequest: undefined,
        counted: undefined,
      },
      undefined,
    );
  }

  #handshakeFailed(err: Error, address: string | undefined, port: number | undefined): void {
    const reason = handshakeFailureReason(err as Error & { code?: string });
    this.#ctx.metrics.handshakeFailures.inc({ listener: this.config.name, direction: 'inbound', reason });
    this.#ctx.logger.debug(
      { listener: this.config.name, peer: `${address}:${port}`, reason, err: err.message },
      'handshake refused',
    );
    this.#ctx.audit?.write(
      auditRecord({
        type: 'connection',
        listener: this.config.name,
        direction: 'inbound',
        sourceId: UNAUTHENTICATED,
        destinationId: ownId(this.#ctx.identity),
        peerAddress: address?.includes(':') ? `[${address}]:${port}` : `${address}:${port}`,
        decision: undefined,
        denied: true,
        reason: `handshake failed: ${reason}`,
        bytesReceived: 0,
        bytesSent: 0,
        durationMs: 0,
      }),
    );
  }

  // ---- serving a caller ----------------------------------------------------------------

  #attributes(
    c: Caller,
    kind: 'tcp' | 'http',
    method?: string,
    path?: string,
    host?: string,
    header?: (name: string) => string | undefined,
  ): RequestAttributes {
    let a = c.addresses;
    if (a === undefined) {
      a = {
        sourceIp: c.socket.remoteAddress ?? '',
        destinationIp: c.socket.localAddress ?? '',
        destinationPort: c.socket.localPort ?? 0,
      };
      c.addresses = a;
    }
    return {
      kind,
      listener: this.config.name,
      principal: c.principal,
      sourceIp: a.sourceIp,
      destinationIp: a.destinationIp,
      destinationPort: a.destinationPort,
      sni: c.sni,
      method,
      path,
      host,
      header,
    };
  }

  #serve(c: Caller, first: Buffer | undefined): void {
    if (this.config.protocol === 'tcp') this.#serveTcp(c, first);
    else this.#serveHttp(c, first);
  }

  #connectionRecord(c: Caller, decision: Decision, bytesReceived: number, bytesSent: number, reason?: string) {
    return auditRecord({
      type: 'connection',
      listener: this.config.name,
      direction: 'inbound',
      sourceId: c.principal ?? UNAUTHENTICATED,
      destinationId: ownId(this.#ctx.identity),
      peerAddress: c.peer,
      decision,
      reason,
      bytesReceived,
      bytesSent,
      durationMs: performance.now() - c.started,
      tls: c.tls,
    });
  }

  #serveTcp(c: Caller, first: Buffer | undefined): void {
    const ctx = this.#ctx;
    const decision = ctx.policy().evaluate(this.#attributes(c, 'tcp'));
    countDecision(ctx, this.config.name, decision);
    if (!decision.allowed) {
      if (shouldAudit(ctx, decision)) ctx.audit?.write(this.#connectionRecord(c, decision, 0, 0));
      c.socket.destroy();
      return;
    }
    connectPlain(this.config.target, 10_000, (err, app) => {
      if (err !== undefined || app === undefined) {
        ctx.metrics.upstreamErrors.inc({ listener: this.config.name, direction: 'inbound', reason: 'connect' });
        if (shouldAudit(ctx, decision)) {
          ctx.audit?.write(this.#connectionRecord(c, decision, 0, 0, `app unreachable: ${err?.message ?? ''}`));
        }
        c.socket.destroy();
        return;
      }
      if (c.socket.destroyed) {
        app.destroy();
        return;
      }
      splice(
        c.socket,
        app,
        ({ aToB, bToA }) => {
          ctx.metrics.addBytes(this.config.name, 'inbound', aToB, bToA);
          if (shouldAudit(ctx, decision)) ctx.audit?.write(this.#connectionRecord(c, decision, aToB, bToA));
        },
        first,
      );
    });
  }

  /** Decides one HTTP request; shared by the HTTP/1.1 and HTTP/2 paths. */
  authorizeRequest(
    c: Caller,
    method: string,
    path: string,
    host: string,
    header: RequestHead | ((name: string) => string | undefined),
  ): Decision {
    const evaluator = this.#ctx.policy();
    let decision: Decision;
    const last = c.lastRequest;
    if (c.decided !== undefined && c.decided.by === evaluator) {
      decision = c.decided.decision;
    } else if (
      last !== undefined &&
      last.by === evaluator &&
      last.path === path &&
      last.method === method &&
      last.host === host
    ) {
      // The same request line as the last one on this connection, under a policy that
      // reads no headers: the same decision (strings repeat as the same objects here).
      decision = last.decision;
    } else {
      const lookup = typeof header === 'function' ? header : headerLookup(header);
      decision = evaluator.evaluate(this.#attributes(c, 'http', method, path, host, lookup));
      const listener = this.config.name;
      if (evaluator.connectionScoped(listener)) c.decided = { by: evaluator, decision };
      else if (evaluator.requestLineScoped(listener)) c.lastRequest = { by: evaluator, method, path, host, decision };
    }
    const counted = c.counted;
    if (counted !== undefined && counted.decision === decision) counted.series.value++;
    else {
      const series = countDecision(this.#ctx, this.config.name, decision);
      if (series !== undefined) c.counted = { decision, series };
    }
    return decision;
  }

  /** Writes the audit record and metrics of one HTTP request. */
  requestDone(c: Caller, o: ExchangeOutcome | H2Outcome): void {
    const ctx = this.#ctx;
    this.#requestSeries ??= ctx.metrics.requestSeries(this.config.name, 'inbound');
    ctx.metrics.observeRequestOn(this.#requestSeries, o.durationMs / 1000, o.bytesReceived, o.bytesSent);
    if (o.error !== undefined && o.status >= 500) {
      ctx.metrics.upstreamErrors.inc({ listener: this.config.name, direction: 'inbound', reason: 'app' });
    }
    const audit = ctx.audit;
    if (audit === undefined || !shouldAudit(ctx, o.decision)) return;
    // The record auditRecord() would build, serialized from parts: the connection's are
    // made once, the decision's once per policy rule, only the exchange's per request.
    const me = ownId(ctx.identity);
    let parts = c.recordParts;
    if (parts === undefined || parts.ownId !== me) {
      parts = {
        ownId: me,
        head: serializePartyFields({
          type: 'request',
          listener: this.config.name,
          direction: 'inbound',
          source_id: c.principal ?? UNAUTHENTICATED,
          destination_id: me,
          peer_address: c.peer,
        }),
        tail: serializeTlsFields({
          tls_version: c.tls?.tls_version,
          tls_cipher: c.tls?.tls_cipher,
          tls_resumed: c.tls?.tls_resumed,
        }),
        encodedFor: undefined,
        encoded: undefined,
      };
      c.recordParts = parts;
    }
    // The common case first: the same shared decision as this connection's last request.
    if (o.error === undefined && parts.encoded !== undefined && parts.encodedFor === o.decision) {
      writeRequestRecord(audit, parts.encoded, o);
      return;
    }
    if (o.error !== undefined || (o.decision !== undefined && !Object.isFrozen(o.decision))) {
      audit.writeFields(
        parts.head +
          decisionFields(o.decision, o.error) +
          serializeExchange(
            o.method,
            o.path,
            o.host,
            o.status,
            o.bytesReceived,
            o.bytesSent,
            jsonMillis(o.durationMs),
          ) +
          parts.tail,
      );
      return;
    }
    let encoded = parts.encoded;
    if (encoded === undefined || parts.encodedFor !== o.decision) {
      encoded = encodeRequestParts(parts.head, decisionFields(o.decision, undefined), parts.tail);
      parts.encoded = encoded;
      parts.encodedFor = o.decision;
    }
    writeRequestRecord(audit, encoded, o);
  }

  #identityHeader(c: Caller): string {
    return c.principal === undefined ? '' : `${XFCC_HEADER}: By=${ownId(this.#ctx.identity)};URI=${c.principal}\r\n`;
  }

  #serveHttp(c: Caller, first: Buffer | undefined): void {
    const alpn = (c.socket as tls.TLSSocket).alpnProtocol;
    if (alpn === 'h2' || (c.tls === undefined && first !== undefined && isH2Preface(first))) {
      this.#h2 ??= new H2Inbound(this.config, {
        authorize: (caller, method, path, host, header) =>
          this.authorizeRequest(caller as Caller, method, path, host, header),
        done: (caller, outcome) => this.requestDone(caller as Caller, outcome),
        identityHeader: (caller) => {
          const p = (caller as Caller).principal;
          return p === undefined ? undefined : `By=${ownId(this.#ctx.identity)};URI=${p}`;
        },
        logger: this.#ctx.logger,
      });
      this.#h2.serve(c.socket, c, first);
      return;
    }
    new Http1Relay(
      c.socket,
      {
        authorize: (head, path, host) => this.authorizeRequest(c, head.method, path, host, head),
        addHeaders: this.#identityHeader(c),
        stripHeader: XFCC_HEADER,
        pooledUpstream: false,
        upstream: new AppConnection(this.config.target, 10_000),
        onExchange: (o) => this.requestDone(c, o),
      },
      first,
    );
  }
}
