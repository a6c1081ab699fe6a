// The real `steeple` binary in its own process against an admin server on a temp socket:
// SPIRE's single-dash flags, -output json, exit codes and the one-line error on stderr.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type AdminFixture, startAdminFixture } from '../server/api/admin/testing/admin-fixture.js';

const BIN = resolve(import.meta.dirname, '../../bin/steeple');

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the binary without blocking this process, which serves the admin socket. */
function steeple(...args: string[]): Promise<Run> {
  return new Promise((done) => {
    execFile(BIN, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      done({ code, stdout, stderr });
    });
  });
}

describe('steeple binary against a live admin socket', () => {
  let f: AdminFixture;
  before(async () => {
    f = await startAdminFixture();
  });
  after(async () => {
    await f.close();
  });

  it('creates an entry with SPIRE flags (exit 0, JSON out), then refuses the duplicate (exit 1, one line)', async () => {
    const args = [
      'server',
      'entry',
      'create',
      '-socketPath',
      f.socketPath,
      '-spiffeID',
      'spiffe://example.org/web',
      '-parentID',
      'spiffe://example.org/spire/agent/x509pop/node1',
      '-selector',
      'unix:uid:1000',
      '-output',
      'json',
    ];
    const [created, missing] = await Promise.all([
      steeple(...args),
      steeple('server', 'healthcheck', '-socketPath', join(f.dir, 'absent.sock')),
    ]);
    assert.equal(created.code, 0, created.stderr);
    assert.equal(created.stderr, '');
    const doc = JSON.parse(created.stdout);
    assert.equal(doc.results[0].status.code, 0);
    assert.equal(doc.results[0].entry.spiffe_id, 'spiffe://example.org/web');
    assert.deepEqual(doc.results[0].entry.selectors, [{ type: 'unix', value: 'uid:1000' }]);
    const stored = await f.client.entries.getEntry({ id: doc.results[0].entry.id });
    assert.equal(stored.entry?.parentId, 'spiffe://example.org/spire/agent/x509pop/node1');

    assert.equal(missing.code, 1);
    assert.equal(
      missing.stderr,
      `steeple: cannot reach the Steeple server admin socket at ${join(f.dir, 'absent.sock')}: is "steeple server run" running? (ENOENT)\n`,
    );

    const duplicate = await steeple(...args);
    assert.equal(duplicate.code, 1);
    const lines = duplicate.stderr.split('\n').filter(Boolean);
    assert.equal(lines.length, 1, duplicate.stderr);
    assert.match(lines[0] ?? '', /^steeple: 1 of 1 entry not created: .*already exists.*\(AlreadyExists\)$/);
  });
});
