/**
 * HTTP/2 callers of an inbound HTTP listener (ALPN `h2`, or the h2c preface on a
 * PERMISSIVE/DISABLE port): each stream is authorized like an HTTP/1.1 request and
 * forwarded to the app as HTTP/1.1 (keep-alive agent) or, with `app_protocol: h2c`, as
 * an HTTP/2 stream over one shared cleartext session (gRPC needs that: trailers).
 * @module
 */
import type http from 'node:http';
import type http2 from 'node:http2';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { Decision } from '@steeple/spiffe/policy';
import type { Logger } from '../../common/logger.js';
import type { InboundConfig } from '../config.js';
import { normalizeTarget } from '../http1/normalize-path.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** Whether the bytes so far could be the start of the HTTP/2 connection preface. */
export function isH2Preface(first: Buffer): boolean {
  const n = Math.min(first.length, PREFACE.length);
  return n >= 4 && first.subarray(0, n).equals(PREFACE.subarray(0, n));
}

export interface H2Outcome {
  method: string;
  path: string;
  host: string;
  status: number;
  bytesReceived: number;
  bytesSent: number;
  durationMs: number;
  decision: Decision | undefined;
  error?: string | undefined;
  /** `performance.now()` when the stream ended, when known (the audit log reads the clock itself otherwise). */
  endedAt?: number;
}

export interface H2Hooks {
  authorize(
    caller: unknown,
    method: string,
    path: string,
    host: string,
    header: (name: string) => string | undefined,
  ): Decision;
  done(caller: unknown, outcome: H2Outcome): void;
  /** The identity header value for this caller, or undefined for plaintext callers. */
  identityHeader(caller: unknown): string | undefined;
  readonly logger: Logger;
}

/** Connection-specific headers that HTTP/2 forbids and HTTP/1.1 hop-by-hop headers. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'http2-settings',
  'host',
]);
const XFCC = 'x-forwarded-client-cert';

/**
 * `node:http2` and `node:http` are loaded by the first HTTP/2 caller, not with the proxy:
 * together ≈200 KiB of heap (and nghttp2's set-up) that a proxy whose callers all speak
 * HTTP/1.1 never uses.
 */
const requireBuiltin = createRequire(import.meta.url);
let h1mod: typeof http;
let h2mod: typeof http2;

export class H2Inbound {
  readonly #server: http2.Http2Server;
  readonly #config: InboundConfig;
  readonly #hooks: H2Hooks;
  readonly #callers = new WeakMap<http2.ServerHttp2Session, unknown>();
  readonly #agent: http.Agent;
  #pendingCaller: unknown;
  #appSession: http2.ClientHttp2Session | undefined;

  constructor(config: InboundConfig, hooks: H2Hooks) {
    this.#config = config;
    this.#hooks = hooks;
    h1mod ??= requireBuiltin('node:http') as typeof http;
    h2mod ??= requireBuiltin('node:http2') as typeof http2;
    this.#agent = new h1mod.Agent({ keepAlive: true, maxFreeSockets: 256 });
    this.#server = h2mod.createServer();
    this.#server.on('session', (session: http2.ServerHttp2Session) => {
      this.#callers.set(session, this.#pendingCaller);
    });
    this.#server.on('stream', (stream, headers) => this.#stream(stream, headers));
  }

  /** Runs an HTTP/2 session on `socket` (TLS after ALPN h2, or plaintext with `first` already read). */
  serve(socket: Socket, caller: unknown, first: Buffer | undefined): void {
    if (first !== undefined) socket.unshift(first);
    this.#pendingCaller = caller;
    this.#server.emit('connection', socket);
    this.#pendingCaller = undefined;
  }

  close(): void {
    this.#agent.destroy();
    this.#appSession?.destroy();
  }

  #stream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const caller = this.#callers.get(stream.session as http2.ServerHttp2Session);
    const started = performance.now();
    const method = String(headers[':method'] ?? '');
    const rawPath = String(headers[':path'] ?? '');
    const host = String(headers[':authority'] ?? headers.host ?? '');
    const normalized = normalizeTarget(rawPath);
    let bytesReceived = 0;
    let bytesSent = 0;
    const finish = (status: number, decision: Decision | undefined, error?: string) =>
      this.#hooks.done(caller, {
        method,
        path: normalized?.path ?? rawPath,
        host,
        status,
        bytesReceived,
        bytesSent,
        durationMs: performance.now() - started,
        decision,
        ...(error === undefined ? {} : { error }),
      });
    stream.on('error', () => {
      /* reported through close */
    });
    if (normalized === undefined || method === 'CONNECT') {
      stream.respond({ ':status': 400 });
      stream.end();
      finish(400, undefined, 'invalid :path or CONNECT');
      return;
    }
    const header = (name: string) => {
      const v = headers[name];
      return v === undefined ? undefined : Array.isArray(v) ? v.join(',') : String(v);
    };
    const decision = this.#hooks.authorize(caller, method, normalized.path, host, header);
    if (!decision.allowed) {
      const body = `RBAC: access denied: ${decision.reason}\n`;
      stream.respond({ ':status': 403, 'content-type': 'text/plain; charset=utf-8' });
      stream.end(body);
      bytesSent = Buffer.byteLength(body);
      finish(403, decision);
      return;
    }
    stream.on('data', (chunk: Buffer) => {
      bytesReceived += chunk.length;
    });
    const forward: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(headers)) {
      if (name.startsWith(':') || HOP_BY_HOP.has(name) || name === XFCC || value === undefined) continue;
      forward[name] = value as string | string[];
    }
    if (headers.te === 'trailers') forward['te'] = 'trailers';
    const identity = this.#hooks.identityHeader(caller);
    if (identity !== undefined) forward[XFCC] = identity;
    const countSent = (chunk: Buffer) => {
      bytesSent += chunk.length;
    };

    if (this.#config.app_protocol === 'h2c') {
      const session = this.#app();
      const up = session.request({ ...forward, ':method': method, ':path': normalized.target, ':authority': host });
      stream.pipe(up);
      let trailers: http2.IncomingHttpHeaders | undefined;
      up.on('trailers', (t) => {
        trailers = t;
      });
      up.on('response', (res) => {
        const status = Number(res[':status'] ?? 502);
        const out: http2.OutgoingHttpHeaders = { ':status': status };
        for (const [name, value] of Object.entries(res))
          if (!name.startsWith(':') && !HOP_BY_HOP.has(name)) out[name] = value;
        stream.respond(out, { waitForTrailers: true });
        stream.on('wantTrailers', () => {
          const t: http2.OutgoingHttpHeaders = {};
          for (const [name, value] of Object.entries(trailers ?? {})) if (!name.startsWith(':')) t[name] = value;
          stream.sendTrailers(t);
        });
        up.on('data', countSent);
        up.pipe(stream);
        up.on('end', () => finish(status, decision));
      });
      up.on('error', (err) => {
        if (!stream.headersSent) {
          stream.respond({ ':status': 502 });
          stream.end();
          finish(502, decision, err.message);
        } else stream.close(h2mod.constants.NGHTTP2_INTERNAL_ERROR);
      });
      stream.on('close', () => {
        if (!up.closed) up.close(h2mod.constants.NGHTTP2_CANCEL);
      });
      return;
    }

    const req = h1mod.request({
      host: this.#config.target.host,
      port: this.#config.target.port,
      method,
      path: normalized.target,
      headers: { ...forward, host },
      agent: this.#agent,
    });
    stream.pipe(req);
    req.on('response', (res) => {
      const status = res.statusCode ?? 502;
      const out: http2.OutgoingHttpHeaders = { ':status': status };
      for (const [name, value] of Object.entries(res.headers)) {
        if (!HOP_BY_HOP.has(name) && value !== undefined) out[name] = value;
      }
      stream.respond(out);
      res.on('data', countSent);
      res.pipe(stream);
      res.on('end', () => finish(status, decision));
    });
    req.on('error', (err) => {
      if (!stream.headersSent) {
        stream.respond({ ':status': 503 });
        stream.end(`upstream connect error: ${err.message}\n`);
        finish(503, decision, err.message);
      } else stream.close(h2mod.constants.NGHTTP2_INTERNAL_ERROR);
    });
    stream.on('close', () => {
      // The caller reset the stream: stop talking to the app for it.
      if (stream.rstCode !== h2mod.constants.NGHTTP2_NO_ERROR && !req.destroyed) req.destroy();
    });
  }

  #app(): http2.ClientHttp2Session {
    const s = this.#appSession;
    if (s !== undefined && !s.closed && !s.destroyed) return s;
    const { host, port } = this.#config.target;
    const session = h2mod.connect(`http://${host.includes(':') ? `[${host}]` : host}:${port}`);
    session.on('error', (err) =>
      this.#hooks.logger.warn({ listener: this.#config.name, err: err.message }, 'h2c app session error'),
    );
    session.on('close', () => {
      if (this.#appSession === session) this.#appSession = undefined;
    });
    this.#appSession = session;
    return session;
  }
}
