/**
 * Retry delays for Workload API watches: exponential growth with jitter, so that the
 * workloads of a node do not all reconnect in the same instant after an agent restart.
 * @module
 */
import { type Clock, systemClock } from '../clock.js';

/** How retry delays grow. Defaults: 1 s doubling up to 30 s (go-spiffe's bounds), 20 % jitter. */
export interface BackoffOptions {
  /** The first delay, in ms; default 1000. */
  readonly initialDelayMs?: number;
  /** The longest delay, in ms; default 30000. */
  readonly maxDelayMs?: number;
  /** Each delay is the previous one times this; default 2. */
  readonly multiplier?: number;
  /** Fraction of each delay taken off at random, 0–1; default 0.2 (a 10 s step waits 8–10 s). */
  readonly jitter?: number;
  /** Randomness in [0, 1); default Math.random. */
  readonly random?: () => number;
}

/** One sequence of retry delays. */
export interface Backoff {
  /** The delay before the next retry, in ms. */
  next(): number;
  /** Starts again from the initial delay (after a success). */
  reset(): void;
}

function checkNumber(name: string, value: number, min: number, max = Number.POSITIVE_INFINITY): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new TypeError(`backoff: ${name} must be a finite number in [${min}, ${max}], got ${String(value)}`);
  }
  return value;
}

/**
 * A new backoff sequence: `initialDelayMs`, then times `multiplier` each retry, capped at
 * `maxDelayMs`, each value reduced by up to `jitter` of itself at random.
 *
 * @example
 * const b = createBackoff({ jitter: 0 });
 * b.next(); b.next(); b.next(); // 1000, 2000, 4000
 */
export function createBackoff(options: BackoffOptions = {}): Backoff {
  const initial = checkNumber('initialDelayMs', options.initialDelayMs ?? 1000, 0);
  const max = checkNumber('maxDelayMs', options.maxDelayMs ?? 30_000, initial);
  const multiplier = checkNumber('multiplier', options.multiplier ?? 2, 1);
  const jitter = checkNumber('jitter', options.jitter ?? 0.2, 0, 1);
  const random = options.random ?? Math.random;
  let base = initial;
  return {
    next() {
      const delay = base * (1 - jitter * random());
      base = Math.min(max, base * multiplier);
      return Math.max(0, Math.round(delay));
    },
    reset() {
      base = initial;
    },
  };
}

/**
 * Waits `ms` on `clock`, or less when `signal` aborts; never rejects (callers check
 * `signal.aborted`). On the system clock the timer keeps the process alive, as the
 * socket of an open watch would: a program that only waits for its first SVID must not
 * exit just because the agent is briefly unreachable.
 */
export function sleep(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      cancel();
      signal.removeEventListener('abort', done);
      resolve();
    };
    let cancel: () => void;
    if (clock === systemClock) {
      const t = setTimeout(done, Math.max(0, Math.min(ms, 2_147_483_647)));
      cancel = () => clearTimeout(t);
    } else {
      const handle = clock.setTimer(done, ms);
      cancel = () => handle.cancel();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
