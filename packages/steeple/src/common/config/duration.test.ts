import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as z from 'zod/mini';
import { ConfigError } from '../errors.js';
import { durationSchema, formatDuration, parseDuration, tryParseDuration } from './duration.js';

describe('tryParseDuration', () => {
  it('reads single units', () => {
    assert.equal(tryParseDuration('90s'), 90);
    assert.equal(tryParseDuration('15m'), 900);
    assert.equal(tryParseDuration('1h'), 3600);
    assert.equal(tryParseDuration('30d'), 30 * 86_400);
  });

  it('reads compounds written largest unit first', () => {
    assert.equal(tryParseDuration('1h30m'), 5400);
    assert.equal(tryParseDuration('1d2h3m4s'), 86_400 + 7200 + 180 + 4);
    assert.equal(tryParseDuration('1h0m0s'), 3600, 'Go prints durations this way');
  });

  it('reads plain integer seconds, as a number or a string', () => {
    assert.equal(tryParseDuration(3600), 3600);
    assert.equal(tryParseDuration('3600'), 3600);
    assert.equal(tryParseDuration(0), 0);
  });

  it('rejects what is not a duration', () => {
    for (const bad of ['', '1x', 'h', '1.5h', '-1h', '1 h', '30m1h', '1h1h', ' 1h', '1H', '1ms']) {
      assert.equal(tryParseDuration(bad), undefined, JSON.stringify(bad));
    }
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60]) {
      assert.equal(tryParseDuration(bad), undefined, String(bad));
    }
    assert.equal(tryParseDuration('99999999999999999999d'), undefined, 'beyond safe integers');
  });
});

describe('parseDuration', () => {
  it('names the key and the value in its error', () => {
    assert.equal(parseDuration('2h', 'ttl'), 7200);
    assert.throws(
      () => parseDuration('1x', 'ca_ttl'),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.code === 'ERR_CONFIG_INVALID' &&
        err.issues[0]?.path === 'ca_ttl' &&
        err.message.includes('ca_ttl: "1x" is not a duration such as "90s", "15m", "1h" or "30d"'),
    );
  });
});

describe('formatDuration', () => {
  it('writes what tryParseDuration reads', () => {
    assert.equal(formatDuration(5400), '1h30m');
    assert.equal(formatDuration(0), '0s');
    assert.equal(formatDuration(86_401), '1d1s');
    for (const s of [1, 59, 60, 3599, 3600, 86_399, 123_456_789]) assert.equal(tryParseDuration(formatDuration(s)), s);
  });
});

describe('durationSchema', () => {
  const schema = z.strictObject({ ttl: z.prefault(durationSchema({ min: 60, max: 86_400 }), '1h') });

  it('outputs seconds, and parses its raw default (prefault)', () => {
    assert.deepEqual(schema.parse({ ttl: '15m' }), { ttl: 900 });
    assert.deepEqual(schema.parse({}), { ttl: 3600 });
  });

  it('reports values that are not durations, or out of bounds, with the value', () => {
    const message = (input: unknown) => schema.safeParse({ ttl: input }).error?.issues[0]?.message;
    assert.equal(message('1x'), '"1x" is not a duration such as "90s", "15m", "1h" or "30d"');
    assert.equal(message('30s'), '"30s" is shorter than the minimum of 1m');
    assert.equal(message('2d'), '"2d" is longer than the maximum of 1d');
  });
});
