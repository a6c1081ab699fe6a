import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  AuditLog,
  type AuditRecord,
  encodeRequestParts,
  jsonMillis,
  serializeAuditFields,
  serializeDecisionFields,
  serializeExchange,
  serializePartyFields,
  serializeTlsFields,
} from './audit-log.js';

const record = (n: number): AuditRecord => ({
  type: 'request',
  listener: 'web',
  direction: 'inbound',
  source_id: 'spiffe://example.org/a',
  destination_id: 'spiffe://example.org/b',
  peer_address: '127.0.0.1:5000',
  decision: 'allow',
  method: 'GET',
  path: `/item/${n}`,
  status: 200,
  bytes_received: 10,
  bytes_sent: 20,
  duration_ms: 1.5,
});

describe('AuditLog', () => {
  it('writes one JSON line per record, time first, in batches', () => {
    const dir = mkdtempSync(join(tmpdir(), 'audit-'));
    const path = join(dir, 'audit.log');
    const log = new AuditLog({ output: { path, maxSizeBytes: 1 << 20, maxFiles: 2 }, flushIntervalMs: 10_000 });
    log.write(record(1));
    log.write(record(2));
    assert.equal(readFileSync(path, 'utf8'), '', 'nothing is written before the batch is flushed');
    log.flush();
    const lines = readFileSync(path, 'utf8').trim().split('\n');
    assert.equal(lines.length, 2);
    const first = JSON.parse(lines[0] as string);
    assert.equal(Object.keys(first)[0], 'time');
    assert.match(first.time, /^\d{4}-\d\d-\d\dT/);
    assert.equal(first.path, '/item/1');
    log.close();
  });

  it('rotates by size, keeps max_files old files and leaves no other file behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'audit-'));
    const path = join(dir, 'audit.log');
    const log = new AuditLog({ output: { path, maxSizeBytes: 4096, maxFiles: 2 }, flushIntervalMs: 10_000 });
    for (let i = 0; i < 200; i++) {
      log.write(record(i));
      if (i % 5 === 4) log.flush();
    }
    log.close();
    assert.ok(existsSync(`${path}.1`));
    assert.ok(existsSync(`${path}.2`));
    assert.ok(!existsSync(`${path}.3`));
    for (const f of [path, `${path}.1`, `${path}.2`]) {
      assert.ok(readFileSync(f).length <= 4096, `${f} is within the size limit`);
    }
    const last = readFileSync(path, 'utf8').trim().split('\n').pop() as string;
    assert.equal(JSON.parse(last).path, '/item/199');
    // The oldest files are unlinked in the thread pool: soon nothing else is left.
    for (let i = 0; i < 100 && readdirSync(dir).length > 3; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(readdirSync(dir).sort(), ['audit.log', 'audit.log.1', 'audit.log.2']);
  });
});

describe('audit record serialization', () => {
  const base: AuditRecord = record(7);
  const variants: AuditRecord[] = [
    base,
    { ...base, destination_id: undefined, status: undefined, method: undefined, path: undefined },
    { ...base, path: '/a"b\\c\u0001d', host: 'h\u00e9st:8443', reason: 'tab\there', policy: 'p', rule: 0 },
    { ...base, path: '/\ud83d\ude00/\ud800', audit_policy: 'audit-all' },
    { ...base, decision: 'deny', dry_run: { decision: 'deny', policy: 'dry', rule: 2 } },
    { ...base, dry_run: { decision: 'allow' }, tls_version: 'TLSv1.3', tls_cipher: 'TLS_AES_128_GCM_SHA256' },
    { ...base, tls_version: 'TLSv1.3', tls_cipher: 'TLS_AES_256_GCM_SHA384', tls_resumed: true },
    { ...base, duration_ms: 1.23456789, bytes_received: 0, bytes_sent: 1e21 },
    { ...base, duration_ms: Number.NaN },
  ];

  // The record's fields in declaration order, as auditRecord() builds them.
  const ORDER = [
    'type',
    'listener',
    'direction',
    'source_id',
    'destination_id',
    'peer_address',
    'decision',
    'reason',
    'policy',
    'rule',
    'audit_policy',
    'dry_run',
    'method',
    'path',
    'host',
    'status',
    'bytes_received',
    'bytes_sent',
    'duration_ms',
    'tls_version',
    'tls_cipher',
    'tls_resumed',
  ] as const;
  const inOrder = (r: AuditRecord) => Object.fromEntries(ORDER.map((k) => [k, r[k]]));

  it('writes the same JSON as JSON.stringify, field for field and in order', () => {
    for (const r of variants) assert.equal(`{${serializeAuditFields(r)}}`, JSON.stringify(inOrder(r)));
  });

  it('formats rounded milliseconds as JSON.stringify does', () => {
    const values = [0, 0.0004, 0.0005, 0.001, 0.01, 0.1, 0.12, 1, 1.5, 12.345, 999.9999, 1234.5678, 86_400_000.001];
    for (let i = 0; i < 2000; i++) values.push(Math.random() * 10 ** (i % 7));
    for (const ms of values) assert.equal(jsonMillis(ms), JSON.stringify(Math.round(ms * 1000) / 1000), String(ms));
  });

  it('writeFields writes a record given as serialized fields', () => {
    const dir = mkdtempSync(join(tmpdir(), 'audit-'));
    const path = join(dir, 'audit.log');
    const log = new AuditLog({ output: { path, maxSizeBytes: 1 << 20, maxFiles: 2 }, flushIntervalMs: 10_000 });
    log.writeFields(serializeAuditFields(base));
    log.write(base);
    log.close();
    const [a, b] = readFileSync(path, 'utf8').trim().split('\n') as [string, string];
    const { time: _t1, ...ra } = JSON.parse(a);
    const { time: _t2, ...rb } = JSON.parse(b);
    assert.deepEqual(ra, rb);
    assert.deepEqual(ra, JSON.parse(JSON.stringify(base)));
  });

  it('writeRequest encodes the same line, byte for byte, as writeFields of the serialized parts', () => {
    const dir = mkdtempSync(join(tmpdir(), 'audit-'));
    const viaFields = join(dir, 'fields.log');
    const viaParts = join(dir, 'parts.log');
    const a = new AuditLog({
      output: { path: viaFields, maxSizeBytes: 1 << 24, maxFiles: 1 },
      flushIntervalMs: 10_000,
    });
    const b = new AuditLog({ output: { path: viaParts, maxSizeBytes: 1 << 24, maxFiles: 1 }, flushIntervalMs: 10_000 });
    const cases: { r: AuditRecord; method: string; path: string; host: string; status: number }[] = [];
    const strings = [
      'GET',
      '/a"b\\c\u0001d',
      'h\u00e9st:8443',
      '/\ud83d\ude00/\ud800',
      '',
      '/x'.repeat(20_000),
      '\u007f~ ',
      'plain',
    ];
    const numbers = [0, 7, 10, 99, 100, 65_535, 2 ** 53 - 1, 2 ** 53, 1e21, -1, 1.5];
    const millis = [
      0,
      0.0004,
      0.0005,
      0.001,
      0.01,
      0.1,
      0.12,
      1,
      1.5,
      12.345,
      999.9999,
      86_400_000.001,
      -1,
      Number.NaN,
      1e16,
    ];
    for (let i = 0; i < 400; i++) {
      const pick = <T>(xs: readonly T[], k: number) => xs[k % xs.length] as T;
      cases.push({
        r: {
          ...base,
          source_id: i % 3 === 0 ? 'unauthenticated' : 'spiffe://example.org/caf\u00e9',
          bytes_received: pick(numbers, i),
          bytes_sent: pick(numbers, i * 7 + 3),
          duration_ms: i < millis.length ? (millis[i] as number) : Math.random() * 10 ** (i % 6),
          tls_version: i % 2 === 0 ? 'TLSv1.3' : undefined,
          reason: i % 5 === 0 ? 'denied by policy "x"' : undefined,
          policy: i % 5 === 0 ? 'x' : undefined,
          rule: i % 5 === 0 ? 0 : undefined,
        },
        method: pick(strings, i),
        path: pick(strings, i + 1),
        host: pick(strings, i + 2),
        status: pick(numbers, i + 5),
      });
    }
    // Every case twice in a row, and the parts shared by cases that serialize alike, as a
    // connection does: a repeat copies the memoised method/path/host run, a change re-encodes
    // it (also for equal strings that are other objects).
    const shared = new Map<string, ReturnType<typeof encodeRequestParts>>();
    const again = cases.flatMap((c) => [c, { ...c, path: [...c.path].join(''), host: `${c.host}` }]);
    for (const { r, method, path, host, status } of again) {
      const head = serializePartyFields(r);
      const decision = serializeDecisionFields(r);
      const tail = serializeTlsFields(r);
      const key = `${head}\u0000${decision}\u0000${tail}`;
      let parts = shared.get(key);
      if (parts === undefined) {
        parts = encodeRequestParts(head, decision, tail);
        shared.set(key, parts);
      }
      a.writeFields(
        head +
          decision +
          serializeExchange(method, path, host, status, r.bytes_received, r.bytes_sent, jsonMillis(r.duration_ms)) +
          tail,
      );
      b.writeRequest(parts, method, path, host, status, r.bytes_received, r.bytes_sent, r.duration_ms);
    }
    a.close();
    b.close();
    const strip = (line: string) => line.replace(/^\{"time":"[^"]*",/, '');
    const la = readFileSync(viaFields, 'utf8').split('\n');
    const lb = readFileSync(viaParts, 'utf8').split('\n');
    assert.equal(lb.length, la.length);
    for (let i = 0; i < la.length; i++) assert.equal(strip(lb[i] as string), strip(la[i] as string), `line ${i}`);
    for (const line of lb.filter((l) => l !== '')) {
      assert.match(JSON.parse(line).time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    }
  });
});

describe('AuditLog.writeRequest on one connection', () => {
  it('re-encodes method, path, host and status whenever any of them changes, and copies a repeat', () => {
    const dir = mkdtempSync(join(tmpdir(), 'steeple-audit-memo-'));
    const path = join(dir, 'audit.log');
    const log = new AuditLog({ output: { path, maxSizeBytes: 1e9, maxFiles: 1 }, flushIntervalMs: 1000 });
    const parts = encodeRequestParts('"type":"request"', ',"decision":"allow"', '');
    const requests: [string, string, string, number][] = [
      ['GET', '/a', 'h1', 200],
      ['GET', '/a', 'h1', 200],
      ['GET', '/a', 'h1', 404],
      ['GET', '/a', 'h1', 404],
      ['GET', '/a', 'h1', 200],
      ['POST', '/a', 'h1', 200],
      ['POST', '/a', 'h2', 200],
      ['POST', '/b', 'h2', 200],
      ['POST', '/b', 'h2', 200],
      ['POST', '/"q"\u00e9', 'h2', 503],
      ['POST', '/"q"\u00e9', 'h2', 503],
      ['GET', '/a', 'h1', 200],
    ];
    requests.forEach(([m, p, h, status], i) => {
      log.writeRequest(parts, m, p, h, status, i, 2 * i, 0.5);
    });
    log.close();
    const got = readFileSync(path, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(
      got.map((r) => [r.method, r.path, r.host, r.status]),
      requests,
    );
    assert.deepEqual(
      got.map((r) => [r.bytes_received, r.bytes_sent]),
      requests.map((_, i) => [i, 2 * i]),
    );
  });
});

describe('AuditLog.writeRequest time from the caller’s performance clock reading', () => {
  it('stamps the wall-clock time of that reading, measured against Date.now at least once a second', () => {
    const dir = mkdtempSync(join(tmpdir(), 'steeple-audit-clock-'));
    const path = join(dir, 'audit.log');
    const log = new AuditLog({ output: { path, maxSizeBytes: 1e9, maxFiles: 1 }, flushIntervalMs: 1000 });
    const parts = encodeRequestParts('"type":"request"', ',"decision":"allow"', '');
    const t0 = performance.now();
    const wall0 = Date.now();
    // Readings as the relay makes them: now, and older ones (an exchange that ended a
    // while before its record is written), before and after a calibration.
    const readings = [t0, t0 - 3000.4, t0 + 1, t0 - 10_000];
    for (const at of readings) log.writeRequest(parts, 'GET', '/', 'a', 200, 1, 2, 0.5, at);
    log.writeRequest(parts, 'GET', '/', 'a', 200, 1, 2, 0.5); // no reading: Date.now()
    log.close();
    const times = readFileSync(path, 'utf8')
      .trim()
      .split('\n')
      .map((l) => Date.parse(JSON.parse(l).time as string));
    const expected = [...readings.map((at) => wall0 + (at - t0)), Date.now()];
    for (let i = 0; i < times.length; i++) {
      assert.ok(
        Math.abs((times[i] as number) - (expected[i] as number)) <= 25,
        `record ${i}: ${times[i]} vs ${expected[i]}`,
      );
    }
  });
});
