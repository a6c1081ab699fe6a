import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { registerProcessMetrics } from './process-metrics.js';
import { Registry } from './registry.js';

/** Sample lines of `text` by name (with labels) → value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    out.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return out;
}

function scrape(registry: Registry): Promise<Map<string, number>> {
  return registry.metrics().then(samples);
}

const FAMILIES = [
  'process_cpu_user_seconds_total counter',
  'process_cpu_system_seconds_total counter',
  'process_cpu_seconds_total counter',
  'process_start_time_seconds gauge',
  'process_resident_memory_bytes gauge',
  'nodejs_eventloop_lag_seconds gauge',
  'nodejs_eventloop_lag_min_seconds gauge',
  'nodejs_eventloop_lag_max_seconds gauge',
  'nodejs_eventloop_lag_mean_seconds gauge',
  'nodejs_eventloop_lag_stddev_seconds gauge',
  'nodejs_eventloop_lag_p50_seconds gauge',
  'nodejs_eventloop_lag_p90_seconds gauge',
  'nodejs_eventloop_lag_p99_seconds gauge',
  'nodejs_active_handles gauge',
  'nodejs_active_handles_total gauge',
  'nodejs_active_requests gauge',
  'nodejs_active_requests_total gauge',
  'nodejs_active_resources gauge',
  'nodejs_active_resources_total gauge',
  'nodejs_heap_size_total_bytes gauge',
  'nodejs_heap_size_used_bytes gauge',
  'nodejs_external_memory_bytes gauge',
  'nodejs_heap_space_size_total_bytes gauge',
  'nodejs_heap_space_size_used_bytes gauge',
  'nodejs_heap_space_size_available_bytes gauge',
  'nodejs_version_info gauge',
  'nodejs_gc_duration_seconds histogram',
];
const LINUX_FAMILIES = [
  'process_virtual_memory_bytes gauge',
  'process_heap_bytes gauge',
  'process_open_fds gauge',
  'process_max_fds gauge',
];

describe('registerProcessMetrics', () => {
  it("registers prom-client's process and Node.js families under the prefix", async () => {
    const registry = new Registry();
    registerProcessMetrics(registry, 'steeple_');
    const types = [...(await registry.metrics()).matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => `${m[1]} ${m[2]}`);
    const expected = [...FAMILIES, ...(process.platform === 'linux' ? LINUX_FAMILIES : [])];
    assert.deepEqual([...types].sort(), expected.map((f) => `steeple_${f}`).sort());
  });

  it('reads sane values at scrape time', async () => {
    const registry = new Registry();
    registerProcessMetrics(registry, '');
    const before = await scrape(registry);
    const burn = Date.now();
    while (Date.now() - burn < 30) Math.sqrt(burn);
    const s = await scrape(registry);
    const get = (name: string) => {
      const v = s.get(name);
      assert.ok(v !== undefined, `${name} in ${[...s.keys()].join(' ')}`);
      return v;
    };
    assert.ok(get('process_cpu_seconds_total') > (before.get('process_cpu_seconds_total') as number), 'CPU grows');
    assert.ok(
      Math.abs(
        get('process_cpu_seconds_total') -
          get('process_cpu_user_seconds_total') -
          get('process_cpu_system_seconds_total'),
      ) < 1e-9,
    );
    const now = Date.now() / 1000;
    assert.ok(Math.abs(get('process_start_time_seconds') - (now - process.uptime())) <= 1);
    const rss = get('process_resident_memory_bytes');
    assert.ok(Math.abs(rss - process.memoryUsage.rss()) < 64 * 2 ** 20, `rss ${rss}`);
    if (process.platform === 'linux') {
      assert.ok(get('process_virtual_memory_bytes') > rss);
      assert.ok(get('process_heap_bytes') > 0);
      const open = get('process_open_fds');
      assert.ok(open >= 3 && open < get('process_max_fds'), `open fds ${open}`);
    }
    assert.ok(get('nodejs_heap_size_used_bytes') <= get('nodejs_heap_size_total_bytes'));
    assert.ok(get('nodejs_heap_space_size_used_bytes{space="old"}') > 0);
    assert.ok(get('nodejs_eventloop_lag_seconds') >= 0);
    const [major, minor, patch] = process.version.slice(1).split('.');
    assert.equal(
      get(`nodejs_version_info{version="${process.version}",major="${major}",minor="${minor}",patch="${patch}"}`),
      1,
    );
    // Timers and handles come and go between the scrape and this look: close, not equal.
    const resources = get('nodejs_active_resources_total');
    assert.ok(Number.isInteger(resources) && Math.abs(resources - process.getActiveResourcesInfo().length) <= 3);
  });

  it('reports the event-loop delay since the previous scrape', async () => {
    const registry = new Registry();
    registerProcessMetrics(registry, '', { gc: false });
    await new Promise((r) => setTimeout(r, 30));
    const blocked = Date.now();
    while (Date.now() - blocked < 80) Math.sqrt(blocked);
    await new Promise((r) => setTimeout(r, 30));
    const s = await scrape(registry);
    const max = s.get('nodejs_eventloop_lag_max_seconds') as number;
    assert.ok(max >= 0.075, `an 80 ms block shows in the max delay (${max})`);
    assert.ok((s.get('nodejs_eventloop_lag_min_seconds') as number) <= max);
    assert.ok(
      (s.get('nodejs_eventloop_lag_p50_seconds') as number) <= (s.get('nodejs_eventloop_lag_p99_seconds') as number),
    );
  });

  it('observes GC pauses by kind from entry.detail, without a deprecation warning', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const registry = new Registry();
      registerProcessMetrics(registry, 'p_');
      const count = async () => (await scrape(registry)).get('p_nodejs_gc_duration_seconds_count{kind="major"}');
      assert.equal(await count(), 0);
      gc();
      let seen = 0;
      for (let i = 0; i < 100 && seen === 0; i++) {
        await new Promise((r) => setImmediate(r));
        seen = (await count()) as number;
      }
      assert.ok(seen >= 1, 'a forced full GC is counted as major');
      const s = await scrape(registry);
      assert.equal(
        s.get('p_nodejs_gc_duration_seconds_bucket{kind="major",le="+Inf"}'),
        s.get('p_nodejs_gc_duration_seconds_count{kind="major"}'),
      );
      assert.ok((s.get('p_nodejs_gc_duration_seconds_sum{kind="major"}') as number) > 0);
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(
        warnings.map((w) => w.message),
        [],
      );
    } finally {
      process.off('warning', onWarning);
    }
  });
});
