import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMetrics } from './metrics.js';

describe('createMetrics', () => {
  it('prefixes names with steeple_ and exposes them in the text format', async () => {
    const metrics = createMetrics();
    const signed = metrics.counter({ name: 'svids_signed_total', help: 'SVIDs signed', labelNames: ['type'] });
    signed.inc({ type: 'x509' });
    signed.inc({ type: 'x509' });
    signed.inc({ type: 'jwt' });
    metrics.histogram({ name: 'sign_seconds', help: 'Signing latency' }).observe(0.0002);
    metrics.gauge({ name: 'entries', help: 'Registration entries' }).set(42);
    const text = await metrics.render();
    assert.match(text, /^steeple_svids_signed_total\{type="x509"\} 2$/m);
    assert.match(text, /^steeple_svids_signed_total\{type="jwt"\} 1$/m);
    assert.match(text, /^steeple_sign_seconds_bucket\{le="0.00025"\} 1$/m);
    assert.match(text, /^steeple_entries 42$/m);
  });

  it('keeps each instance separate, so several servers share a process', async () => {
    const a = createMetrics();
    const b = createMetrics();
    a.counter({ name: 'api_calls_total', help: 'calls' }).inc(5);
    b.counter({ name: 'api_calls_total', help: 'calls' }).inc(1);
    assert.match(await a.render(), /^steeple_api_calls_total 5$/m);
    assert.match(await b.render(), /^steeple_api_calls_total 1$/m);
  });

  it('returns the same metric when asked twice, and refuses a clash of kinds or labels', () => {
    const metrics = createMetrics();
    const first = metrics.counter({ name: 'x_total', help: 'x', labelNames: ['code'] });
    assert.equal(metrics.counter({ name: 'x_total', help: 'x', labelNames: ['code'] }), first);
    assert.throws(() => metrics.gauge({ name: 'x_total', help: 'x', labelNames: ['code'] }), TypeError);
    assert.throws(() => metrics.counter({ name: 'x_total', help: 'x', labelNames: ['other'] }), TypeError);
  });

  it('applies default labels and an own prefix, and can add process metrics', async () => {
    const metrics = createMetrics({
      prefix: 'steeple_agent_',
      defaultLabels: { trust_domain: 'example.org' },
      collectProcessMetrics: true,
    });
    metrics.counter({ name: 'syncs_total', help: 'syncs' }).inc();
    const text = await metrics.render();
    assert.match(text, /^steeple_agent_syncs_total\{trust_domain="example.org"\} 1$/m);
    assert.match(text, /^steeple_agent_process_cpu_seconds_total\{trust_domain="example.org"\} /m);
    assert.match(text, /^steeple_agent_nodejs_gc_duration_seconds_count\{kind="major",trust_domain="example.org"\} /m);
  });

  it('runs a collect hook at scrape time, keeps the first one when asked twice, and refuses a bad prefix', async () => {
    const metrics = createMetrics();
    let peers = 2;
    const g = metrics.gauge({ name: 'peers', help: 'Peers', collect: (gauge) => gauge.set(peers) });
    assert.equal(metrics.gauge({ name: 'peers', help: 'Peers', collect: (gauge) => gauge.set(-1) }), g);
    assert.match(await metrics.render(), /^steeple_peers 2$/m);
    peers = 3;
    assert.match(await metrics.render(), /^steeple_peers 3$/m);
    assert.throws(() => createMetrics({ prefix: 'steeple-' }), /invalid metric prefix "steeple-"/);
  });

  it('leaves the GC histogram out when asked to (no gc observer at all)', async () => {
    const text = await createMetrics({ collectProcessMetrics: true, collectGcMetrics: false }).render();
    assert.match(text, /^steeple_process_cpu_seconds_total /m);
    assert.doesNotMatch(text, /nodejs_gc_duration_seconds/);
  });
});
