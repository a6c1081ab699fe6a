import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../testing/manual-clock.js';
import { createBackoff, sleep } from './backoff.js';

describe('createBackoff', () => {
  it('starts at 1 s and doubles up to 30 s by default (no jitter)', () => {
    const b = createBackoff({ jitter: 0 });
    const delays = Array.from({ length: 8 }, () => b.next());
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  });

  it('reset() starts again from the initial delay', () => {
    const b = createBackoff({ jitter: 0, initialDelayMs: 10, maxDelayMs: 100 });
    b.next();
    b.next();
    b.reset();
    assert.equal(b.next(), 10);
  });

  it('jitter takes up to that fraction off each delay, so clients spread out', () => {
    const low = createBackoff({ jitter: 0.2, random: () => 0.999999 });
    const high = createBackoff({ jitter: 0.2, random: () => 0 });
    assert.equal(high.next(), 1000);
    assert.equal(low.next(), 800);
    const spread = new Set(Array.from({ length: 20 }, () => createBackoff().next()));
    assert.ok(spread.size > 1, 'different clients wait different times');
    for (const d of spread) assert.ok(d >= 800 && d <= 1000, String(d));
  });

  it('refuses nonsense options with a TypeError', () => {
    assert.throws(() => createBackoff({ initialDelayMs: -1 }), TypeError);
    assert.throws(() => createBackoff({ initialDelayMs: 10, maxDelayMs: 5 }), TypeError);
    assert.throws(() => createBackoff({ jitter: 2 }), TypeError);
    assert.throws(() => createBackoff({ multiplier: 0.5 }), TypeError);
  });
});

describe('sleep', () => {
  it('waits on the injected clock', async () => {
    const clock = new ManualClock(new Date('2030-01-01T00:00:00Z'));
    let done = false;
    const p = sleep(clock, 5000, new AbortController().signal).then(() => {
      done = true;
    });
    clock.advance(4999);
    await Promise.resolve();
    assert.equal(done, false);
    clock.advance(1);
    await p;
    assert.equal(done, true);
  });

  it('ends early when the signal aborts, and cancels its timer', async () => {
    const clock = new ManualClock(new Date('2030-01-01T00:00:00Z'));
    const ac = new AbortController();
    const p = sleep(clock, 60_000, ac.signal);
    assert.equal(clock.pendingTimers, 1);
    ac.abort();
    await p;
    assert.equal(clock.pendingTimers, 0);
  });
});
