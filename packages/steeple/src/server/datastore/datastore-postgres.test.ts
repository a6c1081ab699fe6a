// Runs the datastore contract on PostgreSQL (127.0.0.1:5432, database `test`, trust auth, or
// STEEPLE_TEST_POSTGRES_URL). Every test gets its own schema, dropped afterwards, so parallel
// runs do not collide. An unreachable server FAILS the suite (it never skips silently).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { datastoreContract } from './datastore.contract.js';
import { openDatastore } from './datastore.js';
import { DatastoreError } from './datastore-error.js';
import { createScratchSchema } from './testing/postgres-scratch-schema.js';

datastoreContract('PostgreSQL', {
  async fresh() {
    const scratch = await createScratchSchema();
    return {
      open: (options) => openDatastore({ type: 'postgres', connection_string: scratch.connectionString }, options),
      exec: (sqlText) => scratch.exec(sqlText),
      dispose: () => scratch.drop(),
    };
  },
});

describe('PostgreSQL datastore specifics', () => {
  it('is reachable for these tests (otherwise start it as the message says)', async () => {
    const scratch = await createScratchSchema();
    await scratch.drop();
  });

  it('fails with ERR_DATASTORE_UNAVAILABLE, without the password, when the server is unreachable', async () => {
    const url = 'postgres://steeple:hunter2@127.0.0.1:1/test';
    await assert.rejects(openDatastore({ type: 'postgres', connection_string: url }), (err: unknown) => {
      return (
        err instanceof DatastoreError &&
        err.code === 'ERR_DATASTORE_UNAVAILABLE' &&
        err.message.includes('127.0.0.1:1') &&
        !err.message.includes('hunter2')
      );
    });
  });

  it('keeps its tables in the schema named by search_path', async () => {
    const scratch = await createScratchSchema();
    try {
      const ds = await openDatastore({ type: 'postgres', connection_string: scratch.connectionString });
      await ds.close();
      await scratch.exec(`select 1 from ${scratch.schema}.registration_entries`);
      await scratch.exec(`select 1 from ${scratch.schema}.schema_migrations`);
    } finally {
      await scratch.drop();
    }
  });
});
