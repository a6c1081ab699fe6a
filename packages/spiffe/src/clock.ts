/**
 * Time is injected everywhere expiry or rotation matters, so that tests move time
 * instead of sleeping. Production code uses {@link systemClock}.
 * @module
 */

export interface TimerHandle {
  /** Cancels the timer; harmless when it already fired. */
  cancel(): void;
}

export interface Clock {
  now(): Date;
  /** Runs `fn` after `ms` milliseconds of this clock's time. */
  setTimer(fn: () => void, ms: number): TimerHandle;
}

export const systemClock: Clock = {
  now: () => new Date(),
  setTimer(fn, ms) {
    const t = setTimeout(fn, Math.max(0, Math.min(ms, 2_147_483_647)));
    t.unref?.();
    return { cancel: () => clearTimeout(t) };
  },
};
