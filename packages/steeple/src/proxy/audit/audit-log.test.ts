import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AuditLog, type AuditRecord, jsonMillis, serializeAuditFields } from './audit-log.js';

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

  it('rotates by size and keeps max_files old files', () => {
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
});
