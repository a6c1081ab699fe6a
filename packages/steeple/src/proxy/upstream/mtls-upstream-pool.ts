/**
 * The outbound side's upstream: mTLS connections to one upstream, verified against its
 * expected SPIFFE ID, made from ONE reused secure context (rebuilt only when our SVID or
 * bundles change — passing key, cert and CA to every connect would halve the handshake
 * rate) and, for HTTP, kept in a pool of idle keep-alive connections.
 * @module
 */
import type { Socket } from 'node:net';
import tls from 'node:tls';
import { getPeerId, type MtlsClientOptions } from '@steeple/spiffe/core';
import type { HostPort } from '../net/host-port.js';
import { skipReadAhead } from '../net/read-ahead.js';
import { UpstreamConnectError, type UpstreamLease, type UpstreamProvider } from './upstream.js';

export interface MtlsUpstreamPoolOptions {
  readonly upstream: HostPort;
  readonly clientOptions: MtlsClientOptions;
  readonly sni?: string | undefined;
  readonly alpn?: readonly string[];
  readonly connectTimeoutMs: number;
  readonly maxIdle: number;
  readonly idleTimeoutMs: number;
}

export interface MtlsConnection {
  readonly socket: tls.TLSSocket;
  /** The upstream's verified SPIFFE ID. */
  readonly peerId: string;
}

const kIdle = Symbol('steeple.pool.idle');
type PooledSocket = tls.TLSSocket & { [kIdle]?: { onClose: () => void; onData: () => void } };

export class MtlsUpstreamPool {
  readonly #o: MtlsUpstreamPoolOptions;
  readonly #idle: PooledSocket[] = [];
  readonly #peerIds = new WeakMap<Socket, string>();
  #closed = false;
  /** A provider whose `close` leaves the pool alone: one per caller connection shares the pool. */
  readonly provider: UpstreamProvider;

  constructor(options: MtlsUpstreamPoolOptions) {
    this.#o = options;
    this.provider = {
      acquire: (cb) => this.acquire(cb),
      release: (lease, reusable) => this.release(lease, reusable),
      close: () => {},
    };
  }

  /** Opens a new verified mTLS connection. */
  connect(callback: (err: Error | undefined, conn?: MtlsConnection) => void): void {
    const { upstream, clientOptions, sni, alpn } = this.#o;
    const socket = tls.connect({
      ...clientOptions,
      host: upstream.host,
      port: upstream.port,
      ...(sni === undefined ? {} : { servername: sni }),
      ...(alpn === undefined ? {} : { ALPNProtocols: [...alpn] }),
    });
    socket.setNoDelay(true);
    skipReadAhead(socket); // read in flowing mode by the relay or the idle watcher
    let settled = false;
    const done = (err: Error | undefined, conn?: MtlsConnection) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      callback(err, conn);
    };
    const timer = setTimeout(() => {
      socket.destroy();
      done(new UpstreamConnectError(`mTLS connection to ${upstream.text} timed out`, 'timeout'));
    }, this.#o.connectTimeoutMs);
    socket.once('secureConnect', () => {
      const id = getPeerId(socket);
      if (id === undefined) {
        socket.destroy();
        done(new UpstreamConnectError(`upstream ${upstream.text} presented no verified SPIFFE ID`, 'identity'));
        return;
      }
      const peerId = id.toString();
      this.#peerIds.set(socket, peerId);
      done(undefined, { socket, peerId });
    });
    socket.once('error', (err: Error & { code?: string }) => {
      const reason = err.code === 'ECONNREFUSED' || err.code === 'ENOTFOUND' ? 'connect' : 'tls';
      const isSpiffe = typeof err.code === 'string' && err.code.startsWith('ERR_X509SVID');
      done(
        new UpstreamConnectError(
          `mTLS connection to ${upstream.text}: ${err.message}`,
          isSpiffe ? 'identity' : reason,
          {
            cause: err,
          },
        ),
      );
    });
  }

  acquire(callback: (err: Error | undefined, lease?: UpstreamLease) => void): void {
    let s = this.#idle.pop();
    while (s !== undefined && (s.destroyed || s.readyState !== 'open')) s = this.#idle.pop();
    if (s !== undefined) {
      const idle = s[kIdle];
      if (idle !== undefined) {
        s.off('close', idle.onClose);
        s.off('data', idle.onData);
        s[kIdle] = undefined;
      }
      s.setTimeout(0);
      callback(undefined, { socket: s, reused: true, peerId: this.#peerIds.get(s) });
      return;
    }
    this.connect((err, conn) => {
      if (err !== undefined || conn === undefined) return callback(err);
      const socket = conn.socket as PooledSocket;
      socket.on('error', () => {
        /* the relay or the pool handles it */
      });
      socket.on('timeout', () => {
        if (socket[kIdle] !== undefined) socket.destroy();
      });
      callback(undefined, { socket: conn.socket, reused: false, peerId: conn.peerId });
    });
  }

  release(lease: UpstreamLease, reusable: boolean): void {
    const s = lease.socket as PooledSocket;
    if (!reusable || this.#closed || this.#idle.length >= this.#o.maxIdle || s.destroyed) {
      s.destroy();
      return;
    }
    const onClose = () => {
      const i = this.#idle.indexOf(s);
      if (i >= 0) this.#idle.splice(i, 1);
    };
    // An idle connection has nothing to say; bytes now mean a confused upstream.
    const onData = () => s.destroy();
    s[kIdle] = { onClose, onData };
    s.on('close', onClose);
    s.on('data', onData);
    s.setTimeout(this.#o.idleTimeoutMs);
    this.#idle.push(s);
  }

  /** Idle connections held now. */
  get idleCount(): number {
    return this.#idle.length;
  }

  close(): void {
    this.#closed = true;
    for (const s of this.#idle.splice(0)) s.destroy();
  }
}
