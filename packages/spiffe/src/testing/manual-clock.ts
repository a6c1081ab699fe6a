import type { Clock, TimerHandle } from '../clock.js';

interface PendingTimer {
  readonly due: number;
  readonly seq: number;
  readonly fn: () => void;
}

/**
 * A {@link Clock} that only moves when told to, so expiry and rotation are tested
 * without sleeping. Timers fire inside {@link ManualClock.advance} / {@link ManualClock.set},
 * in order of due time (then creation order), with `now()` equal to each timer's due
 * time while it runs. A timer set for 0 ms or less fires at the next advance, even
 * `advance(0)`, never synchronously — as with `setTimeout`.
 *
 * @example
 * const clock = new ManualClock(new Date('2030-01-01T00:00:00Z'));
 * clock.setTimer(() => console.log('tick'), 1000);
 * clock.advance(1000); // prints "tick"
 */
export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  #timers: PendingTimer[] = [];

  constructor(start: Date) {
    this.#now = start.getTime();
    if (Number.isNaN(this.#now)) throw new TypeError('ManualClock: start is an invalid Date');
  }

  now(): Date {
    return new Date(this.#now);
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const timer: PendingTimer = { due: this.#now + Math.max(0, ms), seq: this.#seq++, fn };
    this.#timers.push(timer);
    return {
      cancel: () => {
        const i = this.#timers.indexOf(timer);
        if (i !== -1) this.#timers.splice(i, 1);
      },
    };
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way (including ones those timers set). */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`ManualClock.advance: ms must be a non-negative number, got ${ms}`);
    this.#runUntil(this.#now + ms);
  }

  /** Jumps to `date`. Moving forward fires due timers as {@link advance} does; moving back fires nothing. */
  set(date: Date): void {
    const target = date.getTime();
    if (Number.isNaN(target)) throw new TypeError('ManualClock.set: invalid Date');
    if (target >= this.#now) this.#runUntil(target);
    else this.#now = target;
  }

  /** How many timers are waiting to fire. */
  get pendingTimers(): number {
    return this.#timers.length;
  }

  #runUntil(target: number): void {
    // A timer that keeps re-arming itself at 0 ms would otherwise spin forever.
    for (let fired = 0; ; fired++) {
      if (fired > 100_000) {
        throw new Error('ManualClock: more than 100000 timers fired in one advance; a timer re-arms itself at 0 ms?');
      }
      let next: PendingTimer | undefined;
      for (const t of this.#timers) {
        if (t.due <= target && (!next || t.due < next.due || (t.due === next.due && t.seq < next.seq))) next = t;
      }
      if (!next) break;
      this.#timers.splice(this.#timers.indexOf(next), 1);
      this.#now = Math.max(this.#now, next.due);
      next.fn();
    }
    this.#now = Math.max(this.#now, target);
  }
}
