import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { healthChecksSchema } from './health-checks-schema.js';
import { telemetrySchema } from './telemetry-schema.js';

describe('healthChecksSchema', () => {
  it("defaults to SPIRE's values, listener off", () => {
    assert.deepEqual(healthChecksSchema.parse(undefined), {
      listener_enabled: false,
      bind_address: 'localhost',
      bind_port: 80,
      live_path: '/live',
      ready_path: '/ready',
    });
  });

  it('rejects paths without a leading slash and ports out of range', () => {
    assert.equal(healthChecksSchema.safeParse({ live_path: 'live' }).success, false);
    assert.equal(healthChecksSchema.safeParse({ bind_port: 65_536 }).success, false);
  });
});

describe('telemetrySchema', () => {
  it('has no Prometheus listener unless configured', () => {
    assert.deepEqual(telemetrySchema.parse(undefined), {});
    assert.deepEqual(telemetrySchema.parse({ prometheus: { port: 9988 } }), {
      prometheus: { host: 'localhost', port: 9988 },
    });
  });
});
