/**
 * Joins two sockets into one byte stream each way, with backpressure, half-close (an end
 * on one side ends the other's writing side) and byte counts; an error on either side
 * tears both down.
 * @module
 */
import type { Socket } from 'node:net';
import { skipReadAhead } from './read-ahead.js';

export interface SpliceStats {
  /** Bytes read from `a` and written to `b`. */
  readonly aToB: number;
  /** Bytes read from `b` and written to `a`. */
  readonly bToA: number;
}

export function splice(a: Socket, b: Socket, onClosed: (stats: SpliceStats) => void, initialFromA?: Buffer): void {
  let aToB = 0;
  let bToA = 0;
  let open = 2;
  const closed = () => {
    if (--open === 0) onClosed({ aToB, bToA });
  };
  const forward = (from: Socket, to: Socket, count: (n: number) => void) => {
    const resume = () => from.resume();
    skipReadAhead(from);
    from.on('data', (chunk: Buffer) => {
      count(chunk.length);
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', resume);
      }
    });
    from.on('end', () => {
      if (!to.destroyed) to.end();
    });
    from.on('error', () => {
      to.destroy();
    });
    from.on('close', () => {
      // A side that went away without an orderly end takes the other with it.
      if (!from.readableEnded || !from.writableFinished) to.destroy();
      closed();
    });
  };
  if (initialFromA !== undefined && initialFromA.length > 0) {
    aToB += initialFromA.length;
    b.write(initialFromA);
  }
  forward(a, b, (n) => {
    aToB += n;
  });
  forward(b, a, (n) => {
    bToA += n;
  });
  if (a.isPaused()) a.resume();
  if (b.isPaused()) b.resume();
}
