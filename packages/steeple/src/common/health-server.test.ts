import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, it } from 'node:test';
import { startHealthServer } from './health-server.js';
import { createMetrics } from './metrics.js';

/** GET (or another method) without keep-alive; returns status, content type and body. */
function get(url: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('startHealthServer', () => {
  it('binds port 0 to a free port and answers /live and /ready as JSON', async () => {
    const health = await startHealthServer({ port: 0, readiness: () => ({ ready: true }) });
    try {
      assert.ok(health.port > 0);
      assert.equal(health.url, `http://127.0.0.1:${health.port}`);
      const live = await get(`${health.url}/live`);
      assert.deepEqual([live.status, live.type, JSON.parse(live.body)], [200, 'application/json', { live: true }]);
      const ready = await get(`${health.url}/ready`);
      assert.deepEqual([ready.status, JSON.parse(ready.body)], [200, { ready: true }]);
    } finally {
      await health.close();
    }
  });

  it('answers 503 with the reason while not ready, and follows the callback as it changes', async () => {
    let state: { ready: boolean; reason?: string } = { ready: false, reason: 'no agent SVID yet' };
    const health = await startHealthServer({ port: 0, readiness: async () => state });
    try {
      const before = await get(`${health.url}/ready`);
      assert.deepEqual([before.status, JSON.parse(before.body)], [503, { ready: false, reason: 'no agent SVID yet' }]);
      state = { ready: true };
      assert.equal((await get(`${health.url}/ready`)).status, 200);
    } finally {
      await health.close();
    }
  });

  it('turns a throwing check into 503 with the reason, and a failing liveness into 503', async () => {
    const health = await startHealthServer({
      port: 0,
      readiness: () => {
        throw new Error('datastore closed');
      },
      liveness: () => ({ live: false, reason: 'event loop stuck' }),
    });
    try {
      const ready = await get(`${health.url}/ready`);
      assert.deepEqual(
        [ready.status, JSON.parse(ready.body)],
        [503, { ready: false, reason: 'check failed: datastore closed' }],
      );
      const live = await get(`${health.url}/live`);
      assert.deepEqual([live.status, JSON.parse(live.body)], [503, { live: false, reason: 'event loop stuck' }]);
    } finally {
      await health.close();
    }
  });

  it('answers 503 instead of hanging when a check never answers', async () => {
    const health = await startHealthServer({ port: 0, readiness: () => new Promise(() => {}), checkTimeoutMs: 20 });
    try {
      const ready = await get(`${health.url}/ready`);
      assert.deepEqual(
        [ready.status, JSON.parse(ready.body)],
        [503, { ready: false, reason: 'check did not answer within 20 ms' }],
      );
    } finally {
      await health.close();
    }
  });

  it('serves /metrics only when given a registry, on custom paths too', async () => {
    const metrics = createMetrics();
    metrics.counter({ name: 'probes_total', help: 'probes' }).inc(3);
    const withMetrics = await startHealthServer({
      port: 0,
      readiness: () => ({ ready: true }),
      registry: metrics.registry,
      readyPath: '/healthz',
    });
    const without = await startHealthServer({ port: 0, readiness: () => ({ ready: true }) });
    try {
      const scraped = await get(`${withMetrics.url}/metrics`);
      assert.equal(scraped.status, 200);
      assert.match(scraped.type, /^text\/plain/);
      assert.match(scraped.body, /^steeple_probes_total 3$/m);
      assert.equal((await get(`${withMetrics.url}/healthz`)).status, 200);
      assert.equal((await get(`${withMetrics.url}/ready`)).status, 404);
      assert.equal((await get(`${without.url}/metrics`)).status, 404);
    } finally {
      await withMetrics.close();
      await without.close();
    }
  });

  it('refuses methods other than GET and HEAD', async () => {
    const health = await startHealthServer({ port: 0, readiness: () => ({ ready: true }) });
    try {
      assert.equal((await get(`${health.url}/ready`, 'POST')).status, 405);
      const head = await get(`${health.url}/ready`, 'HEAD');
      assert.deepEqual([head.status, head.body], [200, '']);
    } finally {
      await health.close();
    }
  });

  it('rejects when the port is taken', async () => {
    const first = await startHealthServer({ port: 0, readiness: () => ({ ready: true }) });
    try {
      await assert.rejects(startHealthServer({ port: first.port, readiness: () => ({ ready: true }) }), {
        code: 'EADDRINUSE',
      });
    } finally {
      await first.close();
    }
  });
});
