import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyFlagOverrides } from './apply-flag-overrides.js';

describe('applyFlagOverrides', () => {
  it('sets nested keys from flags without touching the original', () => {
    const raw = { trust_domain: 'a.org', health_checks: { bind_port: 80, live_path: '/live' } };
    const { raw: out, flags } = applyFlagOverrides(raw, [
      { key: 'trust_domain', flag: 'trustDomain', value: 'b.org' },
      { key: 'health_checks.bind_port', flag: 'healthPort', value: 8080 },
      { key: 'telemetry.prometheus.port', flag: 'metricsPort', value: 9988 },
    ]);
    assert.deepEqual(out, {
      trust_domain: 'b.org',
      health_checks: { bind_port: 8080, live_path: '/live' },
      telemetry: { prometheus: { port: 9988 } },
    });
    assert.deepEqual(raw, { trust_domain: 'a.org', health_checks: { bind_port: 80, live_path: '/live' } });
    assert.deepEqual(
      [...flags],
      [
        ['trust_domain', 'trustDomain'],
        ['health_checks.bind_port', 'healthPort'],
        ['telemetry.prometheus.port', 'metricsPort'],
      ],
    );
  });

  it('ignores flags that were not given', () => {
    const raw = { log_level: 'debug' };
    const result = applyFlagOverrides(raw, [{ key: 'log_level', flag: 'logLevel', value: undefined }]);
    assert.equal(result.raw, raw);
    assert.equal(result.flags.size, 0);
  });

  it('starts from an empty mapping for an empty file, and leaves a non-mapping for validation to report', () => {
    assert.deepEqual(applyFlagOverrides(null, [{ key: 'a', flag: 'a', value: 1 }]).raw, { a: 1 });
    const list = ['x'];
    assert.equal(applyFlagOverrides(list, [{ key: 'a', flag: 'a', value: 1 }]).raw, list);
  });

  it('treats a malformed key path as a programming error', () => {
    assert.throws(() => applyFlagOverrides({}, [{ key: 'a..b', flag: 'x', value: 1 }]), TypeError);
  });
});
