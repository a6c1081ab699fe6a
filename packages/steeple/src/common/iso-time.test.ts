import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isoTime } from './iso-time.js';

describe('isoTime', () => {
  it('writes what Date#toISOString writes, at the edges of days, months, leap years and centuries', () => {
    const edges = [
      '1970-01-01T00:00:00.000Z',
      '1969-12-31T23:59:59.999Z',
      '0000-01-01T00:00:00.000Z',
      '0000-02-29T12:00:00.000Z',
      '0099-12-31T23:59:59.999Z',
      '0999-03-01T00:00:00.001Z',
      '1600-02-29T00:00:00.000Z',
      '1900-02-28T23:59:59.999Z',
      '1900-03-01T00:00:00.000Z',
      '2000-02-29T23:59:59.999Z',
      '2000-03-01T00:00:00.000Z',
      '2024-12-31T23:59:59.999Z',
      '2026-11-24T22:26:56.010Z',
      '2100-02-28T00:00:00.000Z',
      '2100-03-01T00:00:00.000Z',
      '9999-12-31T23:59:59.999Z',
    ];
    for (const text of edges) {
      const ms = Date.parse(text);
      assert.equal(isoTime(ms), text, text);
      assert.equal(isoTime(ms), new Date(ms).toISOString(), text);
    }
  });

  it('matches Date#toISOString on 200,000 random times across years 0–9999', () => {
    let seed = 0x2545f491;
    const next = () => {
      // xorshift32: reproducible, so a failure names a time that fails again
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 2 ** 32;
    };
    const min = Date.parse('0000-01-01T00:00:00.000Z');
    const max = Date.parse('9999-12-31T23:59:59.999Z');
    for (let i = 0; i < 200_000; i++) {
      const ms = Math.floor(min + next() * (max - min + 1));
      const expected = new Date(ms).toISOString();
      if (isoTime(ms) !== expected) assert.equal(isoTime(ms), expected, `ms ${ms}`);
    }
  });

  it('leaves times outside years 0–9999, fractions and non-numbers to Date (sign, six digits, or RangeError)', () => {
    const before = Date.parse('0000-01-01T00:00:00.000Z') - 1;
    assert.equal(isoTime(before), '-000001-12-31T23:59:59.999Z');
    assert.equal(isoTime(Date.parse('9999-12-31T23:59:59.999Z') + 1), '+010000-01-01T00:00:00.000Z');
    assert.equal(isoTime(1.5), new Date(1.5).toISOString());
    assert.throws(() => isoTime(Number.NaN), RangeError);
  });
});
