/**
 * The /metrics page of a proxy run as its own process, read line by line against the
 * Prometheus text format grammar after real traffic (allowed and denied requests, a refused
 * handshake): every family, every series, process metrics with sane values.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { authorizeId, BundleSet } from '@steeple/spiffe';
import { createTestCa } from '@steeple/spiffe/testing';
import { type ParsedFamily, parsePrometheusText } from './support/prometheus-text.js';
import {
  type App,
  connectMtls,
  connectPlain,
  eventually,
  startHttpApp,
  tempDir,
  writeIdentity,
} from './support/proxy-fixtures.js';

const ca = createTestCa({ trustDomain: 'example.org' });
const bundles = BundleSet.of(ca.x509Bundle());
const ID_A = 'spiffe://example.org/ns/shop/sa/frontend';
const ID_B = 'spiffe://example.org/ns/shop/sa/backend';

const freePort = () =>
  new Promise<number>((r) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => r(p));
    });
  });

describe('the text-format reader used below', () => {
  it('rejects what a Prometheus scraper would reject', () => {
    const bad: [string, RegExp][] = [
      ['x 1', /end with a line feed/],
      ['x{a="b} 1\n', /unterminated label value/],
      ['x{a="\\t"} 1\n', /invalid escape/],
      ['x{1a="b"} 1\n', /invalid label name/],
      ['x  1\n', /invalid value/],
      ['x 1,5\n', /invalid value/],
      ['# TYPE x counter\n# TYPE x counter\nx 1\n', /second TYPE/],
      ['# TYPE x counter\nx 1\n# HELP x late\n', /HELP of x after its samples/],
      ['# TYPE h histogram\nh 1\n', /does not fit histogram h/],
      ['x 1\ny 1\nx{a="1"} 2\n', /appears again/],
      ['x{a="1",b="2"} 1\nx{b="2",a="1"} 1\n', /appears twice/],
      ['# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', /not cumulative/],
      ['# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 2\n', /\+Inf bucket ≠ _count/],
      ['# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n', /le="\+Inf"/],
    ];
    for (const [text, rule] of bad) assert.throws(() => parsePrometheusText(text), rule, JSON.stringify(text));
    const ok = parsePrometheusText(
      '# HELP x a \\\\ b\\n\n# TYPE x gauge\nx{a="q\\"\\\\\\n"} -Inf\nx{a="2"} 1e-07 1700\n',
    );
    assert.equal(ok.get('x')?.help, 'a \\ b\n');
    assert.deepEqual(ok.get('x')?.samples[0]?.labels, { a: 'q"\\\n' });
  });
});

describe('proxy: /metrics of a running proxy process', () => {
  const root = resolve(import.meta.dirname, '../../..');
  const script = resolve(import.meta.dirname, 'support/proxy-main.ts');
  const dir = tempDir();
  let app: App;
  let child: ReturnType<typeof spawn>;
  let port: number;
  let metricsUrl: string;
  let stderr = '';

  before(async () => {
    app = await startHttpApp();
    const files = writeIdentity(dir, 'b', ca.issueX509Svid(ID_B), bundles);
    port = await freePort();
    const promPort = await freePort();
    metricsUrl = `http://127.0.0.1:${promPort}/metrics`;
    writeFileSync(
      join(dir, 'policy.yaml'),
      `policies:
  - name: frontend-only
    action: ALLOW
    rules:
      - from: [{ source: { principals: ["${ID_A}"] } }]
  - name: no-admin
    action: DENY
    rules:
      - to: [{ operation: { paths: ["/admin*"] } }]
`,
    );
    writeFileSync(
      join(dir, 'proxy.yaml'),
      `identity:
  files: { cert: ${files.cert}, key: ${files.key}, bundle: ${files.bundle}, poll_interval: 1s }
inbound:
  - { name: web, listen: "127.0.0.1:${port}", target: "127.0.0.1:${app.port}", protocol: http, mode: STRICT }
policy: { file: ${join(dir, 'policy.yaml')} }
audit: { output: none }
telemetry: { prometheus: { host: 127.0.0.1, port: ${promPort} } }
log_level: warn
`,
    );
    child = spawn(
      process.execPath,
      ['--conditions=steeple-source', '--import', 'tsx', script, 'proxy', 'run', '-config', join(dir, 'proxy.yaml')],
      { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child.stderr?.on('data', (d) => {
      stderr += d;
    });
    await eventually(
      () =>
        fetch(metricsUrl).then(
          (r) => (r.ok ? true : undefined),
          () => undefined,
        ),
      30_000,
    );
  });

  after(async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.on('close', r));
    }
    await app?.close();
  });

  it('serves the whole page in the text format 0.0.4 after real traffic, with sane process metrics', async () => {
    const conn = await connectMtls(port, ca.issueX509Svid(ID_A), bundles, authorizeId(ID_B));
    assert.equal((await conn.request('/hello'))?.status, 200);
    assert.equal((await conn.request('/admin/x'))?.status, 403);
    conn.close();
    const plain = await connectPlain(port);
    plain.socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    assert.equal(await plain.readResponse(), undefined, 'STRICT refuses plaintext');

    const res = await eventually(async () => {
      const r = await fetch(metricsUrl);
      const text = await r.text();
      return /handshake_failures_total\{[^}]*reason="not_tls"\} [1-9]/.test(text) ? { r, text } : undefined;
    });
    assert.equal(res.r.status, 200);
    assert.equal(res.r.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    const families = parsePrometheusText(res.text);
    const family = (name: string): ParsedFamily => {
      const f = families.get(`steeple_${name}`);
      assert.ok(f, `steeple_${name} in\n${res.text}`);
      assert.ok(f.help !== undefined && f.help !== '', `${name} has HELP`);
      return f;
    };
    const value = (name: string, labels: Record<string, string> = {}): number => {
      const f = family(name.replace(/_(bucket|sum|count)$/, ''));
      const s = f.samples.find(
        (x) => x.name === `steeple_${name}` && Object.entries(labels).every(([k, v]) => x.labels[k] === v),
      );
      assert.ok(s, `steeple_${name} ${JSON.stringify(labels)} in\n${res.text}`);
      return s.value;
    };

    // The proxy's own series.
    assert.equal(family('proxy_connections_total').type, 'counter');
    assert.ok(value('proxy_connections_total', { listener: 'web', direction: 'inbound', transport: 'mtls' }) >= 1);
    assert.ok(value('proxy_handshake_failures_total', { listener: 'web', reason: 'not_tls' }) >= 1);
    assert.equal(family('proxy_active_connections').type, 'gauge');
    assert.equal(
      value('proxy_authorization_decisions_total', { policy: 'frontend-only', action: 'ALLOW', decision: 'allow' }),
      1,
    );
    assert.equal(
      value('proxy_authorization_decisions_total', { policy: 'no-admin', action: 'DENY', decision: 'deny' }),
      1,
    );
    assert.equal(family('proxy_request_duration_seconds').type, 'histogram');
    assert.equal(value('proxy_request_duration_seconds_count', { listener: 'web', direction: 'inbound' }), 2);
    assert.ok(value('proxy_bytes_total', { listener: 'web', flow: 'sent' }) > 0);

    // Process metrics under prom-client's names, with values that make sense for this child.
    const now = Date.now() / 1000;
    const start = value('process_start_time_seconds');
    assert.ok(start > now - 600 && start <= now + 1, `start time ${start}`);
    assert.ok(value('process_cpu_seconds_total') > 0);
    assert.ok(
      Math.abs(
        value('process_cpu_seconds_total') -
          value('process_cpu_user_seconds_total') -
          value('process_cpu_system_seconds_total'),
      ) < 1e-6,
    );
    const rss = value('process_resident_memory_bytes');
    assert.ok(rss > 10 * 2 ** 20 && rss < 4 * 2 ** 30, `rss ${rss}`);
    if (process.platform === 'linux') {
      assert.ok(value('process_virtual_memory_bytes') >= rss);
      assert.ok(value('process_heap_bytes') > 0);
      const fds = value('process_open_fds');
      assert.ok(fds >= 3 && fds <= value('process_max_fds'), `open fds ${fds}`);
    }
    assert.ok(value('nodejs_heap_size_used_bytes') <= value('nodejs_heap_size_total_bytes'));
    assert.ok(value('nodejs_external_memory_bytes') > 0);
    assert.ok(value('nodejs_heap_space_size_used_bytes', { space: 'old' }) > 0);
    assert.ok(value('nodejs_active_handles_total') >= 2, 'at least the two listeners');
    assert.equal(family('nodejs_active_requests_total').type, 'gauge');
    assert.equal(value('nodejs_version_info', { version: process.version }), 1);
    const lag = value('nodejs_eventloop_lag_seconds');
    assert.ok(lag >= 0 && lag < 5, `lag ${lag}`);
    for (const s of ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99']) {
      assert.ok(value(`nodejs_eventloop_lag_${s}_seconds`) >= 0);
    }
    assert.equal(family('nodejs_gc_duration_seconds').type, 'histogram');
    assert.ok(value('nodejs_gc_duration_seconds_count', { kind: 'minor' }) >= 0);
    assert.equal(stderr, '', 'no warnings (such as the DEP0152 deprecation) on stderr');
  });
});
