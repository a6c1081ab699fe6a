// Runs the datastore contract on PostgreSQL (127.0.0.1:5432, database `test`, trust auth, or
// STEEPLE_TEST_POSTGRES_URL). Every test gets its own schema, dropped afterwards, so parallel
// runs do not collide. An unreachable server FAILS the suite (it never skips silently).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sql } from 'kysely';
import { datastoreContract } from './datastore.contract.js';
import { openDatastore } from './datastore.js';
import { DatastoreError } from './datastore-error.js';
import { isPostgresUnavailable, openPostgresEngine } from './sql/postgres.js';
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

  it('survives PostgreSQL dropping its connections: the failure is ERR_DATASTORE_UNAVAILABLE, then it reconnects', async () => {
    const scratch = await createScratchSchema();
    const url = new URL(scratch.connectionString);
    const appName = `steeple_${scratch.schema}`;
    url.searchParams.set('application_name', appName);
    const ds = await openDatastore({ type: 'postgres', connection_string: url.toString() });
    try {
      await ds.healthCheck();
      // As a PostgreSQL restart would. Without a pool 'error' handler this crashes the process.
      // The timeout makes each call wait until its backend has really exited; without it the
      // checks below could still reach a backend that is about to go.
      await scratch.exec(
        `select pg_terminate_backend(pid, 5000) from pg_stat_activity where application_name = '${appName}'`,
      );
      // Each pooled connection that was open can fail one query (at most the pool's size of 10),
      // and each such failure must be ERR_DATASTORE_UNAVAILABLE; then the pool reconnects.
      let recovered = false;
      for (let attempt = 0; attempt <= 10 && !recovered; attempt++) {
        const failure = await ds.healthCheck().then(
          () => undefined,
          (err: unknown) => err,
        );
        if (failure === undefined) recovered = true;
        else
          assert.ok(failure instanceof DatastoreError && failure.code === 'ERR_DATASTORE_UNAVAILABLE', String(failure));
      }
      assert.ok(recovered, 'the datastore did not reconnect after PostgreSQL ended its connections');
      await ds.entries.create({
        spiffeId: 'spiffe://td/w',
        parentId: 'spiffe://td/a',
        selectors: [{ type: 'u', value: '1' }],
      });
    } finally {
      await ds.close();
      await scratch.drop();
    }
  });

  it('survives its connections being terminated in the middle of queries (no uncaught client error)', async () => {
    const scratch = await createScratchSchema();
    const url = new URL(scratch.connectionString);
    const appName = `steeple_busy_${scratch.schema}`;
    url.searchParams.set('application_name', appName);
    const engine = await openPostgresEngine({ connectionString: url.toString(), maxConnections: 4 });
    try {
      for (let round = 0; round < 5; round++) {
        // Four queries hold all four connections while the server ends their backends.
        const busy = Array.from({ length: 4 }, () =>
          sql`select pg_sleep(2)`.execute(engine.db).then(
            () => undefined,
            (err: unknown) => err,
          ),
        );
        await new Promise((r) => setTimeout(r, 150));
        await scratch.exec(
          `select pg_terminate_backend(pid) from pg_stat_activity where application_name = '${appName}'`,
        );
        for (const err of await Promise.all(busy)) {
          assert.ok(err === undefined || engine.isUnavailable(err), `an outage, not a crash: ${String(err)}`);
        }
      }
      // And the pool still works: a client it handed back just before its connection's end
      // was noticed may fail one more query (an outage, like the ones above), then it reconnects.
      let one: number | undefined;
      for (let attempt = 0; attempt < 5 && one === undefined; attempt++) {
        try {
          const { rows } = await sql<{ one: number }>`select 1 as one`.execute(engine.db);
          one = rows[0]?.one;
        } catch (err) {
          assert.ok(engine.isUnavailable(err), `an outage, not a crash: ${String(err)}`);
        }
      }
      assert.equal(one, 1);
    } finally {
      await engine.close();
      await scratch.drop();
    }
  });

  it('classifies connection failures as unavailable, and query errors not', () => {
    const unavailable = [
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
      Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }),
      Object.assign(new Error('sorry, too many clients already'), { code: '53300' }),
      new Error('Connection terminated unexpectedly'),
      new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })]),
    ];
    for (const err of unavailable) assert.ok(isPostgresUnavailable(err), err.message);
    const notUnavailable = [
      Object.assign(new Error('duplicate key value'), { code: '23505' }),
      Object.assign(new Error('syntax error'), { code: '42601' }),
      new Error('something else'),
    ];
    for (const err of notUnavailable) assert.ok(!isPostgresUnavailable(err), err.message);
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
