import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AuditLog, type AuditRecord } from './audit-log.js';

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
