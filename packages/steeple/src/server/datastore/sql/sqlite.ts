/**
 * The embedded engine: better-sqlite3 behind Kysely, in WAL mode.
 *
 * Durability: a write is acknowledged only after its COMMIT returned. With WAL, a commit
 * appends to the -wal file through the OS page cache, so it survives SIGKILL of the process
 * with `synchronous=NORMAL` already; only a power loss or kernel crash can drop the last
 * commits, and only `synchronous=FULL` (an fsync of the WAL on every commit) protects
 * against that. The server is the trust anchor (join tokens are single-use, entries are
 * authorization), so the default is FULL; NORMAL is an option for disposable setups.
 * @module
 */
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import { DatastoreError } from '../datastore-error.js';
import type { Engine } from './engine.js';
import type { Database } from './schema.js';

export interface SqliteEngineOptions {
  /** Database file; ':memory:' for a private in-memory database (tests only: nothing is durable). */
  readonly path: string;
  /** 'full' (default) survives power loss; 'normal' survives process crashes only. */
  readonly synchronous?: 'full' | 'normal';
  /** How long a writer waits for another process's lock before failing (default 5000 ms). */
  readonly busyTimeoutMs?: number;
}

const UNAVAILABLE = /^SQLITE_(BUSY|LOCKED|CANTOPEN|IOERR|FULL|READONLY|CORRUPT|NOTADB|PROTOCOL)/;

// better-sqlite3 is synchronous: a writer that waits for the file lock (busy_timeout) blocks
// the whole event loop. If two datastore instances in one process (tests; a CLI next to a
// server) interleaved write transactions, the waiting one would block the very loop the
// lock holder needs to finish, until the timeout. So writers to one file queue here first;
// busy_timeout then only ever waits for other processes, which do make progress.
const writeQueues = new Map<string, Promise<void>>();

function serializeWrites<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const previous = writeQueues.get(key) ?? Promise.resolve();
  const run = previous.then(fn);
  const tail = run.then(
    () => undefined,
    () => undefined,
  );
  writeQueues.set(key, tail);
  void tail.then(() => {
    if (writeQueues.get(key) === tail) writeQueues.delete(key);
  });
  return run;
}

function sqliteCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}

/** Opens (creating when absent, mode 0600 in a 0700 directory) the SQLite file and sets its pragmas. */
export function openSqliteEngine(options: SqliteEngineOptions): Engine {
  const inMemory = options.path === ':memory:';
  const memoryId = Math.random();
  const path = inMemory ? options.path : resolve(options.path);
  const description = inMemory ? 'sqlite::memory:' : `sqlite:${path}`;
  let raw: BetterSqlite3.Database;
  try {
    const isNew = !inMemory && !existsSync(path);
    if (isNew) mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    raw = new BetterSqlite3(path);
    // Registration data is not secret like keys, but join-token hashes and agent records
    // are nobody else's business: keep the file (and its -wal/-shm, which copy its mode) private.
    if (isNew) chmodSync(path, 0o600);
    raw.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 5000)}`);
    if (!inMemory) {
      const mode = raw.pragma('journal_mode = WAL', { simple: true });
      if (String(mode).toLowerCase() !== 'wal') {
        throw new Error(`journal_mode is ${String(mode)}, WAL is required (is the file on a network filesystem?)`);
      }
    }
    raw.pragma(`synchronous = ${(options.synchronous ?? 'full').toUpperCase()}`);
    raw.pragma('foreign_keys = ON');
    // After a checkpoint, shrink the WAL back instead of keeping its high-water size on disk.
    raw.pragma('journal_size_limit = 67108864');
  } catch (err) {
    throw new DatastoreError(
      'ERR_DATASTORE_UNAVAILABLE',
      `cannot open SQLite database ${JSON.stringify(path)}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: raw }) });

  return {
    kind: 'sqlite',
    db,
    description,
    // Kysely's SQLite driver hands out its single connection exclusively, so statements of
    // other callers queue behind the transaction; BEGIN IMMEDIATE also takes the file's
    // write lock up front, so another process cannot make the upgrade fail half-way.
    // ':memory:' databases are private to their connection, so they need no queue of their own.
    write: (fn) =>
      serializeWrites(inMemory ? `memory:${memoryId}` : path, () =>
        db.connection().execute(async (conn) => {
          await sql`begin immediate`.execute(conn);
          try {
            const result = await fn(conn);
            await sql`commit`.execute(conn);
            return result;
          } catch (err) {
            await sql`rollback`.execute(conn).catch(() => undefined);
            throw err;
          }
        }),
      ),
    snapshot: (fn) => db.transaction().execute(fn),
    isUniqueViolation: (err) => /^SQLITE_CONSTRAINT_(UNIQUE|PRIMARYKEY)$/.test(sqliteCode(err)),
    isUnavailable: (err) => UNAVAILABLE.test(sqliteCode(err)),
    close: () => db.destroy(),
  };
}
