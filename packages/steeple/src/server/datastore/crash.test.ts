// Nothing acknowledged is lost when the server is killed with SIGKILL during a burst of entry
// writes: a child process writes and prints each acknowledged id; we kill it mid-burst, reopen
// the datastore and look for every printed id.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type DatastoreConfig, openDatastore } from './datastore.js';
import { createScratchSchema } from './testing/postgres-scratch-schema.js';

const writer = join(import.meta.dirname, 'crash-writer.ts');

/** Runs the writer until it has acknowledged `atLeast` ids, SIGKILLs it, and returns every id it printed. */
async function killMidBurst(config: object, atLeast: number): Promise<string[]> {
  const child = spawn(
    process.execPath,
    ['--conditions=steeple-source', '--import', 'tsx', writer, JSON.stringify(config)],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_code, signal) => resolve(signal)));
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    const acked = out.split('\n').length - 2; // minus 'ready' and the unterminated tail
    if (acked >= atLeast && child.exitCode === null && !child.killed) child.kill('SIGKILL');
  });
  const signal = await exited;
  assert.equal(signal, 'SIGKILL', `the writer should have been killed, it exited instead: ${err}`);
  const lines = out.split('\n');
  lines.pop(); // a line cut by the kill was never fully acknowledged to us
  assert.equal(lines.shift(), 'ready');
  return lines;
}

async function assertAllPresent(config: DatastoreConfig, acked: string[]): Promise<void> {
  const ds = await openDatastore(config);
  try {
    const found = await ds.entries.getMany(acked);
    const missing = acked.filter((id) => !found.some((e) => e.id === id));
    assert.deepEqual(missing, [], `${missing.length} acknowledged entries lost after SIGKILL`);
    // The event log is as durable as the rows it describes.
    const events = await ds.entries.listEventsSince(0, 1_000_000);
    assert.equal(events.length, await ds.entries.count());
    assert.equal(await ds.entries.currentRevision(), events.length);
  } finally {
    await ds.close();
  }
}

describe('durability under SIGKILL', () => {
  for (const synchronous of ['full', 'normal'] as const) {
    it(`keeps every acknowledged entry on SQLite (WAL, synchronous=${synchronous})`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'steeple-crash-'));
      try {
        const config = { type: 'sqlite', path: join(dir, 'datastore.sqlite3') } as const;
        const acked = await killMidBurst({ ...config, synchronous }, 300);
        assert.ok(acked.length >= 300);
        await assertAllPresent(config, acked);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('keeps every acknowledged entry on PostgreSQL', async () => {
    const scratch = await createScratchSchema();
    try {
      const config = { type: 'postgres', connection_string: scratch.connectionString } as const;
      const acked = await killMidBurst(config, 300);
      await assertAllPresent(config, acked);
    } finally {
      await scratch.drop();
    }
  });
});
