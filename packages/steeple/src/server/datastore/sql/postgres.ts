/**
 * The shared engine: pg (node-postgres) behind Kysely. Several servers may use one database;
 * entry writers serialize on the revision row, so revisions stay unique and commit in order.
 *
 * pg returns int8 (BIGINT, count(*)) as strings by default; this pool parses them to numbers
 * (and throws rather than round a value beyond 2^53), without touching pg's global parsers.
 * To use a schema other than `public`, put it in the connection string:
 * `postgres://user@host/db?options=-c%20search_path%3Dmyschema`.
 * @module
 */
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { DatastoreError } from '../datastore-error.js';
import type { Engine } from './engine.js';
import type { Database } from './schema.js';

export interface PostgresEngineOptions {
  readonly connectionString: string;
  /** Pool size (default 10). */
  readonly maxConnections?: number;
}

const INT8_OID = 20;

function parseInt8(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new RangeError(`int8 value ${text} does not fit a JavaScript number exactly`);
  return n;
}

const getTypeParser = ((oid: number, format?: 'text' | 'binary') =>
  oid === INT8_OID ? parseInt8 : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser;

// Connection-level failures: class 08 (connection exception), 53 (insufficient resources),
// 57P0x (server shutting down / starting up), plus socket errors and pg's own timeouts.
const UNAVAILABLE_SQLSTATE = /^(08|53|57P0)/;
const UNAVAILABLE_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'EPIPE']);
const UNAVAILABLE_MESSAGE =
  /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/;

/** True when a pg failure means the server is unreachable or going away, not that the query is wrong. */
export function isPostgresUnavailable(err: unknown): boolean {
  if (err instanceof AggregateError) return err.errors.some(isPostgresUnavailable);
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && (UNAVAILABLE_SQLSTATE.test(code) || UNAVAILABLE_ERRNO.has(code))) return true;
  return err instanceof Error && UNAVAILABLE_MESSAGE.test(err.message);
}

/** `postgres://user@host:port/db` with any password removed, for messages and logs. */
export function describeConnectionString(connectionString: string): string {
  try {
    const url = new URL(connectionString);
    url.password = '';
    url.search = '';
    return url.toString();
  } catch {
    return 'postgres (connection string not shown)';
  }
}

/** Creates the pool and checks that the server answers; fails with ERR_DATASTORE_UNAVAILABLE otherwise. */
export async function openPostgresEngine(options: PostgresEngineOptions): Promise<Engine> {
  const description = describeConnectionString(options.connectionString);
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.maxConnections ?? 10,
    connectionTimeoutMillis: 10_000,
    types: { getTypeParser },
  });
  // An idle client whose server went away emits 'error' on the pool; unhandled, that would
  // crash the process. The next query reports the outage as ERR_DATASTORE_UNAVAILABLE.
  pool.on('error', () => undefined);
  // A client in use when its connection breaks (PostgreSQL restarting, a backend
  // terminated) gets the failure through its query, and then may emit 'error' itself
  // (ECONNRESET) while no idle listener is attached — also fatal if unhandled. Every client
  // keeps a listener of its own; the pool drops a broken client when it is released.
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
  });
  try {
    const client = await pool.connect();
    client.release();
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw new DatastoreError(
      'ERR_DATASTORE_UNAVAILABLE',
      `cannot connect to PostgreSQL at ${description}: ${(err as Error).message || String(err)}`,
      { cause: err },
    );
  }
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return {
    kind: 'postgres',
    db,
    description,
    write: (fn) => db.transaction().execute(fn),
    snapshot: (fn) => db.transaction().setIsolationLevel('repeatable read').setAccessMode('read only').execute(fn),
    isUniqueViolation: (err) => (err as { code?: unknown } | null)?.code === '23505',
    isUnavailable: isPostgresUnavailable,
    close: () => db.destroy(),
  };
}
