import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from './manual-clock.js';

const T0 = new Date('2030-01-01T00:00:00Z');

describe('ManualClock', () => {
  it('stands still until advanced', () => {
    const clock = new ManualClock(T0);
    assert.equal(clock.now().toISOString(), T0.toISOString());
    clock.advance(1500);
    assert.equal(clock.now().toISOString(), '2030-01-01T00:00:01.500Z');
    const d = clock.now();
    d.setTime(0);
    assert.equal(clock.now().toISOString(), '2030-01-01T00:00:01.500Z', 'now() returns a copy');
  });

  it('fires due timers in order of due time, then creation, with now() at each due time', () => {
    const clock = new ManualClock(T0);
    const fired: string[] = [];
    const log = (name: string) => () => fired.push(`${name}@${clock.now().getTime() - T0.getTime()}`);
    clock.setTimer(log('c'), 300);
    clock.setTimer(log('a'), 100);
    clock.setTimer(log('b'), 100);
    clock.setTimer(log('late'), 1000);
    clock.advance(500);
    assert.deepEqual(fired, ['a@100', 'b@100', 'c@300']);
    assert.equal(clock.now().getTime() - T0.getTime(), 500);
    assert.equal(clock.pendingTimers, 1);
  });

  it('fires timers set by timers when they fall due within the same advance', () => {
    const clock = new ManualClock(T0);
    const fired: number[] = [];
    const tick = () => {
      fired.push(clock.now().getTime() - T0.getTime());
      if (fired.length < 10) clock.setTimer(tick, 100);
    };
    clock.setTimer(tick, 100);
    clock.advance(350);
    assert.deepEqual(fired, [100, 200, 300]);
    clock.advance(1000);
    assert.deepEqual(fired, [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]);
  });

  it('cancelled timers never fire; cancelling twice or after firing is harmless', () => {
    const clock = new ManualClock(T0);
    let n = 0;
    const t = clock.setTimer(() => n++, 10);
    t.cancel();
    t.cancel();
    clock.advance(100);
    assert.equal(n, 0);
    const u = clock.setTimer(() => n++, 10);
    clock.advance(10);
    u.cancel();
    assert.equal(n, 1);
  });

  it('zero and negative delays fire at the next advance, not synchronously', () => {
    const clock = new ManualClock(T0);
    let n = 0;
    clock.setTimer(() => n++, 0);
    clock.setTimer(() => n++, -5);
    assert.equal(n, 0);
    clock.advance(0);
    assert.equal(n, 2);
  });

  it('set() jumps forward firing due timers, or back without firing', () => {
    const clock = new ManualClock(T0);
    let n = 0;
    clock.setTimer(() => n++, 60_000);
    clock.set(new Date('2029-12-31T00:00:00Z'));
    assert.equal(n, 0);
    assert.equal(clock.now().toISOString(), '2029-12-31T00:00:00.000Z');
    clock.set(new Date('2030-01-02T00:00:00Z'));
    assert.equal(n, 1);
    assert.equal(clock.now().toISOString(), '2030-01-02T00:00:00.000Z');
  });

  it('rejects nonsense', () => {
    const clock = new ManualClock(T0);
    assert.throws(() => clock.advance(-1), RangeError);
    assert.throws(() => clock.advance(Number.NaN), RangeError);
    assert.throws(() => clock.set(new Date(Number.NaN)), TypeError);
    assert.throws(() => new ManualClock(new Date('nope')), TypeError);
  });

  it('stops a timer that re-arms itself at 0 ms instead of hanging', () => {
    const clock = new ManualClock(T0);
    const spin = () => {
      clock.setTimer(spin, 0);
    };
    clock.setTimer(spin, 0);
    assert.throws(() => clock.advance(1), /re-arms itself/);
  });
});
