import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { datastoreContract } from './datastore.contract.js';
import { openDatastore } from './datastore.js';
import { DatastoreError } from './datastore-error.js';

datastoreContract('SQLite', {
  async fresh() {
    const dir = mkdtempSync(join(tmpdir(), 'steeple-ds-'));
    const path = join(dir, 'datastore.sqlite3');
    return {
      open: (options) => openDatastore({ type: 'sqlite', path }, options),
      exec: async (sqlText) => {
        const db = new BetterSqlite3(path);
        try {
          db.exec(sqlText);
        } finally {
          db.close();
        }
      },
      dispose: async () => rmSync(dir, { recursive: true, force: true }),
    };
  },
});

describe('SQLite datastore specifics', () => {
  it('creates the file 0600 in WAL mode with synchronous=FULL by default', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'steeple-ds-'));
    try {
      const path = join(dir, 'nested', 'datastore.sqlite3');
      const ds = await openDatastore({ type: 'sqlite', path });
      await ds.entries.create({
        spiffeId: 'spiffe://td/w',
        parentId: 'spiffe://td/a',
        selectors: [{ type: 'u', value: '1' }],
      });
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.equal(statSync(join(dir, 'nested')).mode & 0o777, 0o700);
      const peek = new BetterSqlite3(path, { readonly: true });
      assert.equal(peek.pragma('journal_mode', { simple: true }), 'wal');
      peek.close();
      await ds.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fails with ERR_DATASTORE_UNAVAILABLE naming the path when the file cannot be opened', async () => {
    // A regular file where a directory should be. (Not /proc: Node 20's recursive mkdir loops there.)
    const dir = mkdtempSync(join(tmpdir(), 'steeple-ds-'));
    try {
      writeFileSync(join(dir, 'file'), '');
      const path = join(dir, 'file', 'datastore.sqlite3');
      await assert.rejects(openDatastore({ type: 'sqlite', path }), (err: unknown) => {
        return err instanceof DatastoreError && err.code === 'ERR_DATASTORE_UNAVAILABLE' && err.message.includes(path);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('works in memory for tests', async () => {
    const ds = await openDatastore({ type: 'sqlite', path: ':memory:' });
    await ds.entries.create({
      spiffeId: 'spiffe://td/w',
      parentId: 'spiffe://td/a',
      selectors: [{ type: 'u', value: '1' }],
    });
    assert.equal(await ds.entries.count(), 1);
    await ds.close();
  });
});
