/**
 * Where a relay sends requests: the local app (inbound) or a pool of mTLS connections to
 * an upstream (outbound). A lease is one connection, held for one exchange.
 * @module
 */
import type { Socket } from 'node:net';

export interface UpstreamLease {
  readonly socket: Socket;
  /** Whether the connection carried an earlier exchange (a request may be retried once on a fresh one). */
  readonly reused: boolean;
  /** The upstream's verified SPIFFE ID (outbound). */
  readonly peerId?: string | undefined;
}

export interface UpstreamProvider {
  /** True when a connection only ever serves this one caller connection (the relay may keep its listeners on it). */
  readonly dedicated?: boolean;
  /** Calls back with a connection ready for a request, or the reason there is none. */
  acquire(callback: (err: Error | undefined, lease?: UpstreamLease) => void): void;
  /** Returns a connection after an exchange; `reusable` says whether it may carry another. */
  release(lease: UpstreamLease, reusable: boolean): void;
  /** Closes what this provider holds for one downstream connection (dedicated providers). */
  close(): void;
}

/** A connection failure that happened before anything was sent. */
export class UpstreamConnectError extends Error {
  constructor(
    message: string,
    readonly reason: 'connect' | 'timeout' | 'tls' | 'identity',
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
