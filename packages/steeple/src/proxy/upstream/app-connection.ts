/**
 * The inbound side's upstream: one plaintext connection to the local app per caller
 * connection, opened at the first request and kept while both sides keep it alive
 * (so the app sees the same connection pattern the caller makes).
 * @module
 */
// Imported: the global `Buffer` is a getter, a call on every use in optimized code.
import { Buffer } from 'node:buffer';
import { connect, type Socket } from 'node:net';
import type { HostPort } from '../net/host-port.js';
import { UpstreamConnectError, type UpstreamLease, type UpstreamProvider } from './upstream.js';

/**
 * All app connections read into this one buffer (net's `onread`): no 64 KiB allocation, no
 * ArrayBuffer and no Readable-stream bookkeeping per read. A read is handled before the next
 * one can start (one thread), so sharing it is safe; each chunk is copied out before anyone
 * sees it (small ones into Buffer's pool).
 */
const READ_BUFFER = Buffer.allocUnsafeSlow(64 * 1024);
/** READ_BUFFER's memory (its own, from offset 0), for the per-read views a copy reads from. */
const READ_MEMORY = READ_BUFFER.buffer;

/**
 * Opens a plaintext connection to `target`; calls back once it is connected or has failed.
 * The socket behaves as usual for its users ('data', 'end', pause/resume): chunks are copied
 * out of the shared read buffer and emitted as 'data'; bytes that arrive before anyone
 * listens for 'data' are held (reading paused) and delivered, in order, once someone does.
 */
export function connectPlain(
  target: HostPort,
  timeoutMs: number,
  callback: (err: Error | undefined, socket?: Socket) => void,
): Socket {
  let held: Buffer[] | undefined;
  const deliverHeld = () => {
    const chunks = held;
    held = undefined;
    if (chunks !== undefined) for (const chunk of chunks) socket.emit('data', chunk);
  };
  const socket = connect({
    host: target.host,
    port: target.port,
    noDelay: true,
    allowHalfOpen: true,
    onread: {
      buffer: READ_BUFFER,
      callback: (n: number): boolean => {
        const chunk = Buffer.allocUnsafe(n);
        // A plain view and TypedArray#set: Buffer#copy checks its arguments and makes a view
        // of its own (≈ 600 instructions a read more, callgrind).
        chunk.set(new Uint8Array(READ_MEMORY, 0, n));
        if (held === undefined && socket.listenerCount('data') > 0) {
          socket.emit('data', chunk);
          return true;
        }
        if (held === undefined) {
          held = [];
          // Attaching a 'data' listener resumes reading; the held bytes go first.
          socket.on('newListener', function onListener(event: string | symbol) {
            if (event !== 'data') return;
            socket.off('newListener', onListener);
            process.nextTick(deliverHeld);
          });
        }
        held.push(chunk);
        return false; // stop reading until someone listens
      },
    },
  });
  let settled = false;
  const timer = setTimeout(() => {
    if (settled) return;
    settled = true;
    socket.destroy();
    callback(new UpstreamConnectError(`connecting to ${target.text} timed out`, 'timeout'));
  }, timeoutMs);
  socket.once('connect', () => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    callback(undefined, socket);
  });
  socket.once('error', (err) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    callback(new UpstreamConnectError(`connecting to ${target.text}: ${err.message}`, 'connect', { cause: err }));
  });
  return socket;
}

export class AppConnection implements UpstreamProvider {
  readonly dedicated = true;
  #socket: Socket | undefined;
  #lease: UpstreamLease | undefined;
  #used = false;
  #closed = false;

  constructor(
    readonly target: HostPort,
    readonly connectTimeoutMs: number,
  ) {}

  acquire(callback: (err: Error | undefined, lease?: UpstreamLease) => void): void {
    const s = this.#socket;
    if (s !== undefined && !s.destroyed && s.readyState === 'open') {
      // One lease object per connection and use, not one per request.
      let lease = this.#lease;
      if (lease === undefined || lease.socket !== s || lease.reused !== this.#used) {
        lease = { socket: s, reused: this.#used };
        this.#lease = lease;
      }
      callback(undefined, lease);
      return;
    }
    this.#socket = undefined;
    connectPlain(this.target, this.connectTimeoutMs, (err, socket) => {
      if (err !== undefined || socket === undefined) return callback(err);
      if (this.#closed) {
        socket.destroy();
        return callback(new UpstreamConnectError('caller went away', 'connect'));
      }
      socket.on('error', () => {
        /* the relay or close() handles it */
      });
      this.#socket = socket;
      this.#used = false;
      callback(undefined, { socket, reused: false });
    });
  }

  release(lease: UpstreamLease, reusable: boolean): void {
    this.#used = true;
    if (!reusable) {
      lease.socket.destroy();
      if (this.#socket === lease.socket) this.#socket = undefined;
    }
  }

  close(): void {
    this.#closed = true;
    this.#socket?.destroy();
    this.#socket = undefined;
  }
}
