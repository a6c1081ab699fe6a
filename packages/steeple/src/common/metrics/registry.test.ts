import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Counter, Gauge, Histogram, PROMETHEUS_CONTENT_TYPE, Registry, type Sample } from './registry.js';

/** A registry holding `metrics`, rendered. */
async function render(options: ConstructorParameters<typeof Registry>[0], ...metrics: Counter<string>[]) {
  const registry = new Registry(options);
  for (const m of metrics) registry.register(m);
  return registry.metrics();
}

describe('Registry: the text exposition format 0.0.4', () => {
  it('writes HELP and TYPE, then one line per series in label-name order, ending with a line feed', async () => {
    const registry = new Registry();
    const calls = new Counter({
      name: 'calls_total',
      help: 'Calls by method and code',
      labelNames: ['method', 'code'],
    });
    const up = new Gauge({ name: 'up', help: 'Up' });
    registry.register(calls);
    registry.register(up);
    calls.inc({ code: 'ok', method: 'Get' });
    calls.inc({ method: 'Get', code: 'ok' }, 2);
    calls.labels('Put', 'denied').inc();
    up.set(1);
    assert.equal(registry.contentType, 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal(registry.contentType, PROMETHEUS_CONTENT_TYPE);
    assert.equal(
      await registry.metrics(),
      [
        '# HELP calls_total Calls by method and code',
        '# TYPE calls_total counter',
        'calls_total{method="Get",code="ok"} 3',
        'calls_total{method="Put",code="denied"} 1',
        '# HELP up Up',
        '# TYPE up gauge',
        'up 1',
        '',
      ].join('\n'),
    );
  });

  it('escapes backslash, double quote and line feed in label values, and backslash and line feed in HELP', async () => {
    const c = new Counter({ name: 'odd_total', help: 'a \\ b\nc "quoted"', labelNames: ['v'] });
    c.inc({ v: 'back\\slash "quote"\nnext' });
    c.inc({ v: 'plain' });
    assert.equal(
      await render({}, c),
      [
        '# HELP odd_total a \\\\ b\\nc "quoted"',
        '# TYPE odd_total counter',
        'odd_total{v="back\\\\slash \\"quote\\"\\nnext"} 1',
        'odd_total{v="plain"} 1',
        '',
      ].join('\n'),
    );
  });

  it('writes histogram buckets cumulatively with +Inf, then _sum and _count, le last', async () => {
    const registry = new Registry();
    const h = new Histogram({ name: 'lat_seconds', help: 'Latency', labelNames: ['op'], buckets: [0.1, 0.5, 1] });
    registry.register(h);
    for (const v of [0.0625, 0.1, 0.25, 0.75, 3, 0.125]) h.observe({ op: 'read' }, v);
    h.labels('write').observe(2);
    assert.equal(
      await registry.metrics(),
      [
        '# HELP lat_seconds Latency',
        '# TYPE lat_seconds histogram',
        'lat_seconds_bucket{op="read",le="0.1"} 2',
        'lat_seconds_bucket{op="read",le="0.5"} 4',
        'lat_seconds_bucket{op="read",le="1"} 5',
        'lat_seconds_bucket{op="read",le="+Inf"} 6',
        'lat_seconds_sum{op="read"} 4.2875',
        'lat_seconds_count{op="read"} 6',
        'lat_seconds_bucket{op="write",le="0.1"} 0',
        'lat_seconds_bucket{op="write",le="0.5"} 0',
        'lat_seconds_bucket{op="write",le="1"} 0',
        'lat_seconds_bucket{op="write",le="+Inf"} 1',
        'lat_seconds_sum{op="write"} 2',
        'lat_seconds_count{op="write"} 1',
        '',
      ].join('\n'),
    );
  });

  it('shows a metric without labels at zero before its first update; a histogram with all its buckets', async () => {
    const registry = new Registry();
    registry.register(new Counter({ name: 'c_total', help: 'c' }));
    registry.register(new Histogram({ name: 'h', help: 'h', buckets: [1] }));
    registry.register(new Gauge({ name: 'g', help: 'g', labelNames: ['x'] }));
    assert.equal(
      await registry.metrics(),
      '# HELP c_total c\n# TYPE c_total counter\nc_total 0\n' +
        '# HELP h h\n# TYPE h histogram\nh_bucket{le="1"} 0\nh_bucket{le="+Inf"} 0\nh_sum 0\nh_count 0\n' +
        '# HELP g g\n# TYPE g gauge\n',
    );
  });

  it('adds default labels after the series labels; a series label of the same name wins', async () => {
    const c = new Counter({ name: 'x_total', help: 'x', labelNames: ['zone', 'code'] });
    c.inc({ zone: 'b', code: '200' });
    const h = new Histogram({ name: 'h', help: 'h', buckets: [1] });
    h.observe(0.5);
    const registry = new Registry({ defaultLabels: { zone: 'a', trust_domain: 'example.org' } });
    registry.register(c);
    registry.register(h);
    const text = await registry.metrics();
    assert.match(text, /^x_total\{zone="b",code="200",trust_domain="example.org"\} 1$/m);
    assert.match(text, /^h_bucket\{zone="a",trust_domain="example.org",le="1"\} 1$/m);
    assert.match(text, /^h_count\{zone="a",trust_domain="example.org"\} 1$/m);
  });

  it('writes NaN, +Inf, -Inf, negative and tiny values as Prometheus parses them', async () => {
    const g = new Gauge({ name: 'g', help: 'g', labelNames: ['k'] });
    g.set({ k: 'nan' }, Number.NaN);
    g.set({ k: 'inf' }, Number.POSITIVE_INFINITY);
    g.set({ k: 'ninf' }, Number.NEGATIVE_INFINITY);
    g.set({ k: 'neg' }, -2.5);
    g.set({ k: 'tiny' }, 1e-7);
    g.set({ k: 'huge' }, 2 ** 70);
    const registry = new Registry();
    registry.register(g);
    const lines = (await registry.metrics()).split('\n').slice(2, -1);
    assert.deepEqual(lines, [
      'g{k="nan"} NaN',
      'g{k="inf"} +Inf',
      'g{k="ninf"} -Inf',
      'g{k="neg"} -2.5',
      'g{k="tiny"} 1e-7',
      'g{k="huge"} 1.1805916207174113e+21',
    ]);
  });

  it('asks custom collectors for their samples at every scrape, sync or async, in registration order', async () => {
    let decisions = 1;
    const registry = new Registry({ defaultLabels: { td: 'x' } });
    registry.register({
      name: 'computed_total',
      help: 'Computed at scrape time',
      type: 'counter',
      collect: () => [{ labels: { policy: 'p', action: 'ALLOW' }, value: decisions }],
    });
    registry.register({
      name: 'lat',
      help: 'A histogram from plain numbers',
      type: 'histogram',
      collect: async (): Promise<Sample[]> => [
        { metricName: 'lat_bucket', labels: { le: '1', listener: 'web' }, value: 2 },
        { metricName: 'lat_bucket', labels: { le: '+Inf', listener: 'web' }, value: 3 },
        { metricName: 'lat_sum', labels: { listener: 'web' }, value: 4 },
        { metricName: 'lat_count', labels: { listener: 'web' }, value: 3 },
      ],
    });
    assert.match(await registry.metrics(), /^computed_total\{policy="p",action="ALLOW",td="x"\} 1$/m);
    decisions = 7;
    const text = await registry.metrics();
    assert.match(text, /^computed_total\{policy="p",action="ALLOW",td="x"\} 7$/m);
    assert.match(text, /^lat_bucket\{listener="web",td="x",le="1"\} 2$/m);
    assert.ok(text.indexOf('# TYPE computed_total') < text.indexOf('# TYPE lat '));
  });

  it('runs a metric’s collect hook before reading it, so gauges can be computed at scrape time', async () => {
    let peers = ['a', 'b'];
    const age = new Gauge({
      name: 'age_seconds',
      help: 'age',
      labelNames: ['peer'],
      collect: (g) => {
        g.reset();
        for (const p of peers) g.set({ peer: p }, p.length);
      },
    });
    const registry = new Registry();
    registry.register(age);
    assert.match(await registry.metrics(), /age_seconds\{peer="b"\} 1/);
    peers = ['cc'];
    const text = await registry.metrics();
    assert.doesNotMatch(text, /peer="b"/);
    assert.match(text, /^age_seconds\{peer="cc"\} 2$/m);
  });

  it('refuses a sample name that does not belong to its family, and invalid label names from a collector', async () => {
    const registry = new Registry();
    registry.register({ name: 'g', help: 'g', type: 'gauge', collect: () => [{ metricName: 'g_sum', value: 1 }] });
    await assert.rejects(registry.metrics(), { name: 'TypeError', message: /sample g_sum does not belong to gauge g/ });
    const other = new Registry();
    other.register({ name: 'g', help: 'g', type: 'gauge', collect: () => [{ labels: { 'bad-name': 'x' }, value: 1 }] });
    await assert.rejects(other.metrics(), { name: 'TypeError', message: /invalid label name "bad-name" of metric g/ });
  });
});

describe('metric names, labels and values', () => {
  it('refuses invalid metric names, label names, reserved labels and a second family of one name', () => {
    assert.throws(() => new Counter({ name: 'steeple-calls', help: 'x' }), {
      name: 'TypeError',
      message: 'invalid metric name "steeple-calls": must match [a-zA-Z_:][a-zA-Z0-9_:]*',
    });
    assert.throws(() => new Counter({ name: '1x', help: 'x' }), TypeError);
    assert.throws(
      () => new Gauge({ name: 'g', help: 'x', labelNames: ['a-b'] }),
      /invalid label name "a-b" of metric g/,
    );
    assert.throws(() => new Gauge({ name: 'g', help: 'x', labelNames: ['__name'] }), /not start with "__"/);
    assert.throws(() => new Gauge({ name: 'g', help: 'x', labelNames: ['a', 'a'] }), /lists a label name twice/);
    assert.throws(() => new Histogram({ name: 'h', help: 'x', labelNames: ['le'], buckets: [1] }), /"le" is reserved/);
    assert.throws(() => new Histogram({ name: 'h', help: 'x', buckets: [1, 1] }), /strictly increasing/);
    assert.throws(() => new Gauge({ name: 'g', help: '' }), /needs a help text/);
    assert.throws(() => new Registry({ defaultLabels: { 'x y': 'z' } }), TypeError);
    const registry = new Registry();
    registry.register(new Gauge({ name: 'g', help: 'x' }));
    assert.throws(() => registry.register(new Counter({ name: 'g', help: 'x' })), {
      name: 'TypeError',
      message: 'metric g is already registered',
    });
    assert.throws(
      () => registry.register({ name: 'bad name', help: 'x', type: 'gauge', collect: () => [] }),
      TypeError,
    );
  });

  it('refuses unknown and missing labels when a series is made, and a counter going down', () => {
    const c = new Counter({ name: 'c_total', help: 'x', labelNames: ['code'] });
    assert.throws(() => c.inc({ code: 'ok', extra: 'x' } as never), {
      name: 'TypeError',
      message: 'metric c_total has no label "extra" (its labels: code)',
    });
    assert.throws(() => c.inc({} as never), /needs a string value for label "code", got undefined/);
    assert.throws(() => c.inc({ code: 'ok' }, -1), /can only go up by a finite amount ≥ 0, got -1/);
    assert.throws(() => c.inc(Number.NaN), TypeError);
    assert.throws(() => c.labels('a', 'b'), /has 1 labels \(code\), got 2 values/);
    assert.throws(() => new Counter({ name: 'd_total', help: 'x' }).inc({ code: 'x' } as never), /has no label "code"/);
    assert.throws(() => new Histogram({ name: 'h', help: 'x', buckets: [1] }).observe(Number.NaN), TypeError);
  });

  it('takes numbers as label values; label children survive reset and remove', async () => {
    const g = new Gauge({ name: 'g', help: 'x', labelNames: ['port'] });
    const child = g.labels(8080);
    child.set(3);
    g.inc({ port: '8080' });
    const registry = new Registry();
    registry.register(g);
    assert.match(await registry.metrics(), /^g\{port="8080"\} 4$/m);
    g.remove({ port: 8080 });
    assert.doesNotMatch(await registry.metrics(), /port="8080"/);
    child.dec(2);
    assert.match(await registry.metrics(), /^g\{port="8080"\} -2$/m);
    g.reset();
    child.inc();
    assert.match(await registry.metrics(), /^g\{port="8080"\} 1$/m);
  });

  it('times with startTimer, merging the labels given at the end', async () => {
    const h = new Histogram({ name: 'call_seconds', help: 'x', labelNames: ['method', 'code'], buckets: [60] });
    const end = h.startTimer({ method: 'Get' });
    const seconds = end({ code: 'ok' });
    assert.ok(seconds >= 0 && seconds < 60);
    const registry = new Registry();
    registry.register(h);
    assert.match(await registry.metrics(), /^call_seconds_count\{method="Get",code="ok"\} 1$/m);
  });
});
