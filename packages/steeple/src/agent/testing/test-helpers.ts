/**
 * Small helpers for the agent's tests: waiting for a condition, reading a stream one
 * message at a time with a deadline, and capturing log lines.
 * @module
 */
import { Writable } from 'node:stream';
import { ConnectError } from '@connectrpc/connect';
import { createLogger, type Logger } from '../../common/logger.js';

/** Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Reads a server stream message by message; `next()` rejects with the stream's error or after `timeoutMs`. */
export class StreamReader<T> {
  readonly #it: AsyncIterator<T>;
  constructor(stream: AsyncIterable<T>) {
    this.#it = stream[Symbol.asyncIterator]();
  }

  async next(timeoutMs = 10_000): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no stream message within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const r = await Promise.race([this.#it.next(), timeout]);
      if (r.done) throw new Error('the stream ended');
      return r.value;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The error that ends the stream, as a ConnectError (fails if a message arrives instead). */
  async error(timeoutMs = 10_000): Promise<ConnectError> {
    try {
      const value = await this.next(timeoutMs);
      throw new Error(`expected the stream to fail, got a message: ${JSON.stringify(Object.keys(value as object))}`);
    } catch (err) {
      if (err instanceof ConnectError) return err;
      throw err;
    }
  }
}

/** A logger whose JSON lines are collected in `lines`. */
export function capturingLogger(level: 'debug' | 'info' = 'info'): {
  logger: Logger;
  lines: Record<string, unknown>[];
} {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: createLogger({ name: 'steeple-agent', level, destination }), lines };
}
