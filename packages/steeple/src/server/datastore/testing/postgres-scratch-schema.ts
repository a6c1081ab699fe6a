/**
 * A throw-away PostgreSQL schema for tests and benchmarks: each run gets its own
 * `steeple_test_<random>` schema and a connection string whose search_path points at it, so
 * parallel runs on one database never see each other's tables. Drop it when done.
 * @module
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describeConnectionString } from '../sql/postgres.js';

/** The test database (trust auth on loopback), overridable with STEEPLE_TEST_POSTGRES_URL. */
export function testPostgresUrl(): string {
  return process.env.STEEPLE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
}

export interface ScratchSchema {
  readonly schema: string;
  /** The base connection string with `options=-c search_path=<schema>`. */
  readonly connectionString: string;
  /** Runs SQL in the schema (for tests that need to reach under the datastore). */
  exec(sqlText: string): Promise<void>;
  drop(): Promise<void>;
}

/** How to get PostgreSQL running, for failure messages. */
export const START_POSTGRES_HINT =
  'start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` ' +
  '(or point STEEPLE_TEST_POSTGRES_URL at a database with trust auth)';

async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw new Error(
      `PostgreSQL is not reachable at ${describeConnectionString(url)} (${(err as Error).message || String(err)}); ${START_POSTGRES_HINT}`,
      { cause: err },
    );
  }
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Creates a fresh schema; throws an Error that says how to start PostgreSQL when it is unreachable. */
export async function createScratchSchema(
  baseUrl = testPostgresUrl(),
  prefix = 'steeple_test',
): Promise<ScratchSchema> {
  const schema = `${prefix}_${randomBytes(6).toString('hex')}`;
  await withClient(baseUrl, (c) => c.query(`create schema ${schema}`));
  const url = new URL(baseUrl);
  url.searchParams.set('options', `-c search_path=${schema}`);
  const connectionString = url.toString();
  return {
    schema,
    connectionString,
    exec: async (sqlText) => {
      await withClient(connectionString, (c) => c.query(sqlText));
    },
    drop: async () => {
      await withClient(baseUrl, (c) => c.query(`drop schema if exists ${schema} cascade`));
    },
  };
}
