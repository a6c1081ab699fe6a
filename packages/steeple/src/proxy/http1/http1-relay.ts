/**
 * An HTTP/1.1-aware relay between one downstream connection and an upstream provider.
 * It reads request heads (to authorize each request, normalise its path and add the
 * caller's identity header), then streams bodies through untouched, finding where each
 * message ends from its framing; the response head is read only for its status and
 * framing, and response bytes are forwarded as they arrive (usually in one write).
 *
 * One exchange at a time per connection: a pipelined request waits in the buffer until
 * the previous response is complete, which keeps responses in order without a queue.
 * `101 Switching Protocols` turns the connection into a byte tunnel.
 * @module
 */

// Imported: the global `Buffer` is a getter, a call on every use in optimized code.
import { Buffer } from 'node:buffer';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Decision } from '@steeple/spiffe/policy';
import { ownedBuffer } from '../net/owned-bytes.js';
import { skipReadAhead } from '../net/read-ahead.js';
import type { UpstreamLease, UpstreamProvider } from '../upstream/upstream.js';
import { ChunkedScanner } from './chunked-scanner.js';
import {
  type BodyKind,
  type HeadStrings,
  HttpParseError,
  MAX_HEAD_BYTES,
  type RequestHead,
  responseBodyKind,
  scanned,
  scanRequestHead,
  scanResponseHead,
} from './message-head.js';
import { type NormalizedTarget, normalizeTarget } from './normalize-path.js';

/** What happened to one request, for the audit log and metrics. */
export interface ExchangeOutcome {
  readonly method: string;
  readonly path: string;
  readonly host: string;
  /** Final status sent to the caller; 0 when none was (the caller went away first). */
  readonly status: number;
  readonly bytesReceived: number;
  readonly bytesSent: number;
  readonly durationMs: number;
  readonly decision: Decision | undefined;
  readonly upstreamId?: string | undefined;
  /** Why the exchange failed, when it did (upstream unreachable, reset, malformed response). */
  readonly error?: string | undefined;
  /** `performance.now()` when the exchange ended (the audit log's time comes from it: one clock read). */
  readonly endedAt?: number;
}

export interface Http1RelayOptions {
  /** Decides each request (inbound); absent means allow (outbound). */
  readonly authorize?: (head: RequestHead, path: string, host: string) => Decision;
  /** Header lines, each ending in CRLF, added to every forwarded request. */
  readonly addHeaders: string;
  /** A lower-case header name removed from requests before forwarding (the identity header). */
  readonly stripHeader?: string;
  /** Outbound pools upstream connections: a caller's `Connection: close` is not passed on. */
  readonly pooledUpstream: boolean;
  readonly upstream: UpstreamProvider;
  /**
   * Called when an exchange ends. The outcome object is the relay's own and is reused for
   * its next exchange (one allocation less per request): read it during the call, copy
   * what must outlive it.
   */
  readonly onExchange: (outcome: ExchangeOutcome) => void;
}

type MutableOutcome = { -readonly [K in keyof ExchangeOutcome]: ExchangeOutcome[K] };

const CRLFCRLF = Buffer.from('\r\n\r\n');
const EMPTY = Buffer.alloc(0);
enum Phase {
  Head,
  Connecting,
  RequestBody,
  AwaitResponse,
  Tunnel,
  Closed,
}

interface Exchange {
  head: RequestHead;
  path: string;
  started: number;
  decision: Decision | undefined;
  /** The request as it is sent upstream (kept for one retry on a stale pooled connection). */
  forwardHead: Buffer;
  lease: UpstreamLease | undefined;
  reqRemaining: number;
  reqChunks: ChunkedScanner | undefined;
  reqDone: boolean;
  resHeadBuf: Buffer | undefined;
  /** Where to look for the end of a response head that came in pieces (-1: not in pieces). */
  resHeadSearch: number;
  resStarted: boolean;
  /** How the response body is delimited, once its head is read. */
  resKind: BodyKind | undefined;
  resRemaining: number;
  resChunks: ChunkedScanner | undefined;
  resDone: boolean;
  resClose: boolean;
  status: number;
  bytesReceived: number;
  bytesSent: number;
  retried: boolean;
}

function forbidden(reason: string): Buffer {
  const body = `RBAC: access denied: ${reason}\n`;
  return Buffer.from(
    `HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  505: 'HTTP Version Not Supported',
};

function errorResponse(status: number, message: string): Buffer {
  const body = `${message}\n`;
  return Buffer.from(
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

export class Http1Relay {
  readonly #down: Socket;
  readonly #o: Http1RelayOptions;
  /** The added header lines and the empty line that ends a head, encoded once per connection. */
  readonly #headTail: Buffer;
  #phase = Phase.Head;
  #pending: Buffer | undefined;
  /** Where to look for the end of a request head that came in pieces (-1: not in pieces). */
  #headSearch = -1;
  /** This connection's last target and Host (requests on a connection mostly repeat them). */
  readonly #strings: HeadStrings = { target: '', host: '' };
  #lastTarget = '';
  #lastNormalized: NormalizedTarget | undefined;
  #ex: Exchange | undefined;
  /** The exchange object this connection reuses for its requests. */
  #spare: Exchange | undefined;
  #closeAfter = false;
  /** The upstream socket our listeners are on. */
  #attached: Socket | undefined;
  /** A 'drain' listener is pending (backpressure in either direction). */
  #waitingDrain = false;
  readonly #onUpData = (chunk: Buffer) => this.#upData(chunk);
  readonly #onUpEnd = () => this.#upEnded();
  readonly #onUpClose = () => this.#upClosed();
  readonly #onUpError = () => {
    /* 'close' follows and decides */
  };
  readonly #resumeUp = () => this.#ex?.lease?.socket.resume();
  readonly #resumeDown = () => this.#down.resume();
  /** The outcome handed to onExchange, filled afresh for each exchange. */
  readonly #outcome: MutableOutcome = {
    method: '',
    path: '',
    host: '',
    status: 0,
    bytesReceived: 0,
    bytesSent: 0,
    durationMs: 0,
    decision: undefined,
    upstreamId: undefined,
    error: undefined,
    endedAt: 0,
  };

  constructor(down: Socket, options: Http1RelayOptions, initial?: Buffer) {
    this.#down = down;
    this.#o = options;
    this.#headTail = ownedBuffer(`${options.addHeaders}\r\n`, 'latin1');
    skipReadAhead(down);
    down.on('data', (chunk: Buffer) => this.#downData(chunk));
    down.on('end', () => this.#downEnded());
    down.on('close', () => this.#downClosed());
    down.on('error', () => {
      /* 'close' follows */
    });
    if (initial !== undefined && initial.length > 0) this.#downData(initial);
  }

  // ---- downstream ------------------------------------------------------------------

  #downData(chunk: Buffer): void {
    switch (this.#phase) {
      case Phase.Head:
        this.#pending = this.#pending === undefined ? chunk : Buffer.concat([this.#pending, chunk]);
        this.#nextRequest();
        return;
      case Phase.RequestBody:
        this.#forwardRequestBody(chunk);
        return;
      case Phase.Tunnel:
        if (this.#ex?.lease?.socket.write(chunk) === false) {
          this.#down.pause();
          this.#ex.lease.socket.once('drain', this.#resumeDown);
          this.#waitingDrain = true;
        }
        if (this.#ex) this.#ex.bytesReceived += chunk.length;
        return;
      case Phase.Closed:
        return;
      default:
        // Connecting or waiting for a response: hold what comes (body start or a pipelined request).
        this.#pending = this.#pending === undefined ? chunk : Buffer.concat([this.#pending, chunk]);
        if (this.#pending.length > MAX_HEAD_BYTES) this.#down.pause();
    }
  }

  #nextRequest(): void {
    while (this.#phase === Phase.Head && this.#pending !== undefined) {
      const buf = this.#pending;
      // RFC 9112 §2.2: ignore empty lines before a request line.
      let start = 0;
      while (start + 1 < buf.length && buf[start] === 0x0d && buf[start + 1] === 0x0a) start += 2;
      let head: RequestHead | undefined;
      try {
        // A head that came in pieces is parsed again only once its end is here (found
        // from where the last look stopped), so a slow sender costs no repeated parses.
        if (this.#headSearch < 0 || buf.indexOf(CRLFCRLF, Math.max(start, this.#headSearch)) >= 0) {
          head = scanRequestHead(buf, start, Math.min(buf.length, start + MAX_HEAD_BYTES + 4), this.#strings);
        }
      } catch (err) {
        const e = err as HttpParseError;
        this.#fail(e instanceof HttpParseError ? e.status : 400, e.message);
        return;
      }
      if (head === undefined) {
        if (buf.length - start > MAX_HEAD_BYTES) {
          this.#fail(431, 'request head too large');
          return;
        }
        const held = start > 0 ? buf.subarray(start) : buf;
        this.#pending = held;
        this.#headSearch = Math.max(0, held.length - 3);
        return;
      }
      this.#headSearch = -1;
      const end = scanned.headEnd;
      this.#pending = end + 4 < buf.length ? buf.subarray(end + 4) : undefined;
      this.#startExchange(head, buf, start, end + 2);
    }
  }

  /** `buf[start, headEnd)` is the head as received, up to and including its last line's CRLF. */
  #startExchange(head: RequestHead, buf: Buffer, start: number, headEnd: number): void {
    const headBytes = headEnd - start + 2;
    // Requests on a connection often repeat their target (the same string object, see
    // HeadStrings): its normalised form is kept for the next one.
    let normalized = this.#lastNormalized;
    if (head.target !== this.#lastTarget || normalized === undefined) {
      normalized = normalizeTarget(head.target);
      this.#lastTarget = head.target;
      this.#lastNormalized = normalized;
    }
    if (normalized === undefined) {
      this.#fail(400, 'invalid request target');
      return;
    }
    const host = head.host !== '' ? head.host : (normalized.authority ?? '');
    const decision = this.#o.authorize?.(head, normalized.path, host);
    const started = performance.now();
    if (decision !== undefined && !decision.allowed) {
      // A denied request's body is not read; the connection closes after the answer.
      const hasBody = head.framing.kind !== 'none';
      const answer = forbidden(decision.reason);
      this.#write(answer);
      this.#o.onExchange({
        method: head.method,
        path: normalized.path,
        host,
        status: 403,
        bytesReceived: headBytes,
        bytesSent: answer.length,
        durationMs: performance.now() - started,
        decision,
      });
      if (hasBody || head.wantsClose) this.#closeDown();
      return;
    }
    const forwardHead = this.#buildHead(head, buf, start, headEnd, normalized.changed ? normalized.target : undefined);
    // One exchange object per connection, reset for each request (exchanges on a
    // connection never overlap, and nothing keeps one past its end).
    let ex = this.#spare;
    if (ex === undefined) {
      ex = {
        head,
        path: normalized.path,
        started,
        decision,
        forwardHead,
        lease: undefined,
        reqRemaining: 0,
        reqChunks: undefined,
        reqDone: false,
        resHeadBuf: undefined,
        resHeadSearch: -1,
        resStarted: false,
        resKind: undefined,
        resRemaining: 0,
        resChunks: undefined,
        resDone: false,
        resClose: false,
        status: 0,
        bytesReceived: headBytes,
        bytesSent: 0,
        retried: false,
      };
      this.#spare = ex;
    } else {
      ex.head = head;
      ex.path = normalized.path;
      ex.started = started;
      ex.decision = decision;
      ex.forwardHead = forwardHead;
      ex.lease = undefined;
      ex.resHeadBuf = undefined;
      ex.resHeadSearch = -1;
      ex.resStarted = false;
      ex.resKind = undefined;
      ex.resRemaining = 0;
      ex.resChunks = undefined;
      ex.resDone = false;
      ex.resClose = false;
      ex.status = 0;
      ex.bytesReceived = headBytes;
      ex.bytesSent = 0;
      ex.retried = false;
    }
    const kind = head.framing.kind;
    ex.reqRemaining = head.framing.kind === 'length' ? head.framing.length : 0;
    ex.reqChunks = kind === 'chunked' ? new ChunkedScanner() : undefined;
    ex.reqDone = kind === 'none';
    this.#ex = ex;
    if (head.wantsClose) this.#closeAfter = true;
    this.#phase = Phase.Connecting;
    this.#acquire();
  }

  #acquire(): void {
    this.#o.upstream.acquire(this.#onLease);
  }

  /** Takes the upstream connection for the current exchange (one function per relay, not one per request). */
  readonly #onLease = (err: Error | undefined, lease?: UpstreamLease): void => {
    const ex = this.#ex;
    if (ex === undefined || this.#phase === Phase.Closed) {
      if (lease) this.#o.upstream.release(lease, lease.socket.readyState === 'open');
      return;
    }
    if (err !== undefined || lease === undefined) {
      this.#respondError(503, `upstream connect error: ${err?.message ?? 'no connection'}`);
      return;
    }
    ex.lease = lease;
    const up = lease.socket;
    // A dedicated connection keeps our listeners between exchanges (fewer listener
    // changes per request); a pooled one moves between callers and is re-attached.
    if (this.#attached !== up) {
      up.on('data', this.#onUpData);
      up.on('end', this.#onUpEnd);
      up.on('close', this.#onUpClose);
      up.on('error', this.#onUpError);
      this.#attached = up;
    }
    up.write(ex.forwardHead);
    if (ex.reqDone) {
      this.#phase = Phase.AwaitResponse;
      // Nothing of the held bytes belongs to this request; they wait for the next one.
      return;
    }
    this.#phase = Phase.RequestBody;
    const held = this.#pending;
    this.#pending = undefined;
    if (held !== undefined) this.#forwardRequestBody(held);
    if (this.#down.isPaused() && this.#phase === Phase.RequestBody) this.#down.resume();
  };

  /**
   * The head sent upstream: the received one, minus the identity header, plus ours.
   * `buf[start, headEnd)` is the validated head as received (request line and header
   * lines, each with its CRLF); when nothing in it changes it is forwarded byte for byte,
   * with our header lines appended, instead of being rebuilt as text.
   */
  #buildHead(head: RequestHead, buf: Buffer, start: number, headEnd: number, newTarget: string | undefined): Buffer {
    const strip = this.#o.stripHeader;
    const dropClose = this.#o.pooledUpstream && head.hasHeader('connection');
    const mustRebuild =
      newTarget !== undefined ||
      dropClose ||
      (this.#o.pooledUpstream && head.minorVersion !== 1) ||
      (strip !== undefined && head.hasHeader(strip));
    const tail = this.#headTail;
    if (!mustRebuild) {
      const n = headEnd - start;
      const out = Buffer.allocUnsafe(n + tail.length);
      // Native copies: under callgrind 900 instructions less per request than the byte loop
      // they replaced (which looked faster in a timed micro-benchmark). A head that is the
      // whole chunk is copied whole, its final CRLF then overwritten by our lines (whose
      // tail ends with one): no view to make. Otherwise a plain Uint8Array view, which
      // costs less than Buffer#subarray (that runs Buffer's own constructor).
      if (start === 0 && headEnd + 2 === buf.length) out.set(buf, 0);
      else out.set(new Uint8Array(buf.buffer, buf.byteOffset + start, n), 0);
      out.set(tail, n);
      return out;
    }
    // A pooled upstream connection outlives the caller's, so it always speaks HTTP/1.1.
    const version = dropClose || this.#o.pooledUpstream ? 'HTTP/1.1' : `HTTP/1.${head.minorVersion}`;
    let text = `${head.method} ${newTarget ?? head.target} ${version}\r\n`;
    for (let i = 0; i < head.lines.length; i++) {
      const name = head.names[i] as string;
      if (name === strip) continue;
      if (dropClose && (name === 'connection' || name === 'keep-alive')) continue;
      text += `${head.lines[i]}\r\n`;
    }
    return Buffer.concat([Buffer.from(text, 'latin1'), tail]);
  }

  #forwardRequestBody(chunk: Buffer): void {
    const ex = this.#ex;
    if (ex === undefined || ex.lease === undefined) return;
    let end = chunk.length;
    try {
      if (ex.reqChunks !== undefined) {
        const at = ex.reqChunks.scan(chunk);
        if (at >= 0) {
          end = at;
          ex.reqDone = true;
        }
      } else {
        end = Math.min(ex.reqRemaining, chunk.length);
        ex.reqRemaining -= end;
        if (ex.reqRemaining === 0) ex.reqDone = true;
      }
    } catch (err) {
      this.#fail(400, (err as Error).message);
      return;
    }
    const body = end === chunk.length ? chunk : chunk.subarray(0, end);
    ex.bytesReceived += body.length;
    if (body.length > 0 && !ex.lease.socket.write(body)) {
      this.#down.pause();
      ex.lease.socket.once('drain', this.#resumeDown);
      this.#waitingDrain = true;
    }
    if (ex.reqDone) {
      if (end < chunk.length) this.#pending = chunk.subarray(end);
      if (ex.resDone) this.#finishExchange();
      else this.#phase = Phase.AwaitResponse;
    }
  }

  #downEnded(): void {
    // The caller finished sending. Mid-request that is an aborted request; between
    // requests (or while a response is on its way) we end our side once it is written.
    if (this.#phase === Phase.Head && this.#ex === undefined) this.#closeDown();
    else if (this.#phase === Phase.Tunnel) this.#ex?.lease?.socket.end();
    else if (this.#phase === Phase.RequestBody) this.#abort('caller closed mid-request');
    else this.#closeAfter = true;
  }

  #downClosed(): void {
    if (this.#phase === Phase.Closed) return;
    if (this.#phase === Phase.Tunnel) {
      const ex = this.#ex;
      this.#releaseUp(false, ex);
      if (ex !== undefined) this.#report(ex);
      this.#ex = undefined;
    } else if (this.#ex !== undefined) this.#abort('caller closed the connection');
    this.#phase = Phase.Closed;
    this.#o.upstream.close();
  }

  // ---- upstream --------------------------------------------------------------------

  #upData(chunk: Buffer): void {
    const ex = this.#ex;
    if (ex === undefined) {
      // Bytes from the app between exchanges: it is confused; the connection cannot be trusted.
      this.#attached?.destroy();
      return;
    }
    if (this.#phase === Phase.Tunnel) {
      ex.bytesSent += chunk.length;
      this.#writeFromUp(chunk);
      return;
    }
    ex.resStarted = true;
    let buf = chunk;
    try {
      while (buf.length > 0 && !ex.resDone) {
        if (ex.resKind === undefined) {
          const joined = ex.resHeadBuf === undefined ? buf : Buffer.concat([ex.resHeadBuf, buf]);
          // As for requests: a head that came in pieces is parsed once its end is here.
          const res =
            ex.resHeadSearch < 0 || joined.indexOf(CRLFCRLF, ex.resHeadSearch) >= 0
              ? scanResponseHead(joined, Math.min(joined.length, MAX_HEAD_BYTES + 4))
              : undefined;
          if (res === undefined) {
            if (joined.length > MAX_HEAD_BYTES) throw new HttpParseError('response head too large', 502);
            ex.resHeadBuf = joined;
            ex.resHeadSearch = Math.max(0, joined.length - 3);
            return;
          }
          ex.resHeadBuf = undefined;
          ex.resHeadSearch = -1;
          const headEnd = scanned.headEnd + 4;
          if (res.status === 101) {
            this.#writeFromUp(joined);
            ex.status = 101;
            ex.bytesSent += joined.length;
            this.#startTunnel();
            return;
          }
          if (res.status < 200) {
            // Interim response (100 Continue, 103 Early Hints): pass it on, wait for the final one.
            this.#writeFromUp(joined.subarray(0, headEnd));
            ex.bytesSent += headEnd;
            buf = joined.subarray(headEnd);
            continue;
          }
          ex.status = res.status;
          const kind = responseBodyKind(ex.head.method, res);
          ex.resKind = kind;
          ex.resClose = res.connectionClose || kind === 'close';
          if (kind === 'length') ex.resRemaining = res.contentLength;
          else if (kind === 'chunked') ex.resChunks = new ChunkedScanner();
          // Head and body usually arrive together: forward them in one write below.
          const bodyEnd = headEnd + this.#bodyBytes(ex, joined, headEnd);
          if (bodyEnd === joined.length) {
            // The usual case: head and body in one chunk, all of it this response's.
            ex.bytesSent += joined.length;
            this.#writeFromUp(joined);
            buf = EMPTY;
            continue;
          }
          const part = joined.subarray(0, bodyEnd);
          ex.bytesSent += part.length;
          this.#writeFromUp(part);
          buf = joined.subarray(bodyEnd);
          continue;
        }
        const n = this.#bodyBytes(ex, buf, 0);
        ex.bytesSent += n;
        if (n === buf.length) {
          this.#writeFromUp(buf);
          buf = EMPTY;
        } else {
          this.#writeFromUp(buf.subarray(0, n));
          buf = buf.subarray(n);
        }
      }
    } catch (err) {
      this.#upstreamBroken(err instanceof HttpParseError ? err.message : 'malformed response');
      return;
    }
    if (buf.length > 0) ex.resClose = true; // bytes after the response: the connection is not reusable
    if (ex.resDone) {
      if (ex.reqDone) this.#finishExchange();
      else {
        // Answered before the request body was read (an early 413, say): close once done.
        this.#closeAfter = true;
        ex.resClose = true;
        this.#finishExchange();
      }
    }
  }

  /** How many bytes of `buf` from `at` belong to the response body; marks the response done at its end. */
  #bodyBytes(ex: Exchange, buf: Buffer, at: number): number {
    const avail = buf.length - at;
    switch (ex.resKind as BodyKind) {
      case 'none':
        ex.resDone = true;
        return 0;
      case 'length': {
        const n = Math.min(ex.resRemaining, avail);
        ex.resRemaining -= n;
        if (ex.resRemaining === 0) ex.resDone = true;
        return n;
      }
      case 'chunked': {
        const end = (ex.resChunks as ChunkedScanner).scan(buf, at);
        if (end < 0) return avail;
        ex.resDone = true;
        return end - at;
      }
      case 'close':
        return avail;
    }
  }

  #writeFromUp(chunk: Buffer): void {
    if (!this.#down.write(chunk)) {
      const up = this.#ex?.lease?.socket;
      if (up !== undefined) {
        up.pause();
        this.#down.once('drain', this.#resumeUp);
        this.#waitingDrain = true;
      }
    }
  }

  #upEnded(): void {
    const ex = this.#ex;
    if (ex === undefined) {
      // The app closed an idle kept-alive connection: the next request opens a new one.
      this.#attached?.destroy();
      return;
    }
    if (this.#phase === Phase.Tunnel) {
      this.#down.end();
      return;
    }
    if (ex.resKind === 'close' && !ex.resDone) {
      ex.resDone = true;
      ex.resClose = true;
      this.#closeAfter = true;
      this.#finishExchange();
    }
  }

  #upClosed(): void {
    const ex = this.#ex;
    if (ex === undefined || ex.lease === undefined) {
      this.#attached = undefined;
      return;
    }
    if (this.#phase === Phase.Tunnel) {
      this.#reportTunnel();
      this.#down.destroy();
      return;
    }
    if (!ex.resDone) {
      // A pooled or kept-alive connection the upstream closed just as we reused it: the
      // request had no body and got no byte of answer, so it is safe to send it again once.
      if (!ex.resStarted && ex.lease.reused && !ex.retried && ex.head.framing.kind === 'none') {
        this.#detachUp(ex.lease);
        ex.lease = undefined;
        ex.retried = true;
        this.#phase = Phase.Connecting;
        this.#acquire();
        return;
      }
      this.#upstreamBroken('upstream closed the connection mid-exchange');
    }
  }

  #upstreamBroken(reason: string): void {
    const ex = this.#ex;
    if (ex === undefined) return;
    if (ex.status === 0) {
      this.#respondError(502, `upstream error: ${reason}`);
      return;
    }
    // The answer was already under way: the caller can only learn of the failure by a reset.
    this.#report(ex, reason);
    this.#releaseUp(false);
    this.#ex = undefined;
    this.#phase = Phase.Closed;
    this.#down.destroy();
  }

  #startTunnel(): void {
    this.#phase = Phase.Tunnel;
    const ex = this.#ex as Exchange;
    const held = this.#pending;
    this.#pending = undefined;
    if (held !== undefined) {
      ex.bytesReceived += held.length;
      ex.lease?.socket.write(held);
    }
    this.#down.resume();
  }

  #reportTunnel(): void {
    const ex = this.#ex;
    if (ex === undefined) return;
    this.#report(ex);
    this.#ex = undefined;
  }

  // ---- exchange end ----------------------------------------------------------------

  #finishExchange(): void {
    const ex = this.#ex as Exchange;
    this.#report(ex);
    this.#ex = undefined;
    // The spare exchange outlives the request: it must not keep the head's pool slab.
    ex.forwardHead = EMPTY;
    const reusable = !ex.resClose && ex.reqDone;
    if (ex.resClose && !this.#o.pooledUpstream) this.#closeAfter = true;
    this.#releaseUp(reusable, ex);
    if (this.#closeAfter) {
      this.#closeDown();
      return;
    }
    this.#phase = Phase.Head;
    if (this.#down.isPaused()) this.#down.resume();
    if (this.#pending !== undefined) this.#nextRequest();
  }

  #report(ex: Exchange, error?: string): void {
    const now = performance.now();
    const o = this.#outcome;
    o.method = ex.head.method;
    o.path = ex.path;
    o.host = ex.head.host;
    o.status = ex.status;
    o.bytesReceived = ex.bytesReceived;
    o.bytesSent = ex.bytesSent;
    o.durationMs = now - ex.started;
    o.decision = ex.decision;
    o.upstreamId = ex.lease?.peerId;
    o.error = error;
    o.endedAt = now;
    this.#o.onExchange(o);
  }

  #detachUp(lease: UpstreamLease): void {
    const up = lease.socket;
    if (this.#attached === up) {
      up.off('data', this.#onUpData);
      up.off('end', this.#onUpEnd);
      up.off('close', this.#onUpClose);
      up.off('error', this.#onUpError);
      this.#attached = undefined;
    }
    this.#clearBackpressure(up);
  }

  #clearBackpressure(up: Socket): void {
    if (this.#waitingDrain) {
      up.off('drain', this.#resumeDown);
      this.#down.off('drain', this.#resumeUp);
      this.#waitingDrain = false;
      if (up.isPaused()) up.resume();
      if (this.#down.isPaused() && this.#phase !== Phase.Closed) this.#down.resume();
    }
  }

  #releaseUp(reusable: boolean, ex: Exchange | undefined = this.#ex): void {
    const lease = ex?.lease;
    if (ex === undefined || lease === undefined) return;
    const keep = reusable && this.#o.upstream.dedicated === true && lease.socket.readyState === 'open';
    if (keep) this.#clearBackpressure(lease.socket);
    else this.#detachUp(lease);
    ex.lease = undefined;
    this.#o.upstream.release(lease, reusable && lease.socket.readyState === 'open');
  }

  #abort(reason: string): void {
    const ex = this.#ex;
    if (ex === undefined) return;
    this.#report(ex, reason);
    this.#releaseUp(false);
    this.#ex = undefined;
    this.#phase = Phase.Closed;
    this.#down.destroy();
  }

  #respondError(status: number, message: string): void {
    const ex = this.#ex;
    const answer = errorResponse(status, message);
    this.#write(answer);
    if (ex !== undefined) {
      ex.status = status;
      ex.bytesSent += answer.length;
      this.#report(ex, message);
      this.#releaseUp(false);
      this.#ex = undefined;
    }
    this.#closeDown();
  }

  #fail(status: number, message: string): void {
    this.#write(errorResponse(status, message));
    this.#closeDown();
  }

  #write(buf: Buffer): void {
    if (this.#phase !== Phase.Closed && !this.#down.destroyed) this.#down.write(buf);
  }

  #closeDown(): void {
    this.#phase = Phase.Closed;
    this.#pending = undefined;
    if (!this.#down.destroyed) this.#down.end();
    this.#o.upstream.close();
  }
}
