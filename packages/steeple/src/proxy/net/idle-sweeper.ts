/**
 * Closes connections that carried no bytes either way for a while, without per-read or
 * per-write cost. `socket.setTimeout` re-arms a timer on every read and every write
 * (a timer-list insert and a clock read each time, several percent of a proxied
 * request's CPU); this instead looks at each socket's byte counters from one timer per
 * listener, a few times per timeout period. A connection is therefore closed between
 * `timeoutMs` and `timeoutMs` plus two sweep intervals (at most 1.5 × `timeoutMs`) after
 * its last byte.
 * @module
 */
import type { Socket } from 'node:net';

/** Sweeps per timeout period: the closing time is late by at most 1/SWEEPS_PER_PERIOD of it. */
const SWEEPS_PER_PERIOD = 4;
/** The sweep interval is kept within these bounds (ms). */
const MIN_INTERVAL_MS = 50;
const MAX_INTERVAL_MS = 60_000;

interface Watched {
  /** bytesRead + bytesWritten when last seen changing. */
  bytes: number;
  /** The sweep count when `bytes` last changed. */
  sweep: number;
}

export class IdleSweeper {
  readonly #sockets = new Map<Socket, Watched>();
  readonly #idleSweeps: number;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #sweep = 0;

  /** @param timeoutMs idle time after which a connection is destroyed; must be > 0. */
  constructor(timeoutMs: number) {
    this.#intervalMs = Math.min(MAX_INTERVAL_MS, Math.max(MIN_INTERVAL_MS, Math.floor(timeoutMs / SWEEPS_PER_PERIOD)));
    this.#idleSweeps = Math.max(1, Math.ceil(timeoutMs / this.#intervalMs));
  }

  /** Watches `socket` until it closes. */
  add(socket: Socket): void {
    if (this.#sockets.has(socket)) return;
    this.#sockets.set(socket, { bytes: bytesOf(socket), sweep: this.#sweep });
    socket.once('close', () => {
      this.#sockets.delete(socket);
      if (this.#sockets.size === 0) this.#stop();
    });
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#run(), this.#intervalMs);
      this.#timer.unref();
    }
  }

  /** Stops watching everything. */
  close(): void {
    this.#sockets.clear();
    this.#stop();
  }

  #stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #run(): void {
    const now = ++this.#sweep;
    for (const [socket, w] of this.#sockets) {
      const bytes = bytesOf(socket);
      if (bytes !== w.bytes) {
        w.bytes = bytes;
        w.sweep = now;
      } else if (now - w.sweep >= this.#idleSweeps) {
        this.#sockets.delete(socket);
        socket.destroy();
      }
    }
  }
}

function bytesOf(socket: Socket): number {
  return socket.bytesRead + socket.bytesWritten;
}
