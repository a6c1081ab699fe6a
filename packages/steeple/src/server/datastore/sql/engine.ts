/**
 * What the stores need from a database engine: one Kysely instance, write transactions that
 * serialize writers, read snapshots, and a translation of driver failures into
 * {@link DatastoreError}. sqlite.ts and postgres.ts implement it.
 * @module
 */
import type { Kysely } from 'kysely';
import { DatastoreError } from '../datastore-error.js';
import type { Database } from './schema.js';

export type EngineKind = 'sqlite' | 'postgres';

export interface Engine {
  readonly kind: EngineKind;
  readonly db: Kysely<Database>;
  /**
   * Every mutation goes through here, even a single statement (SQLite needs the in-process
   * write queue, see sqlite.ts).
   * Runs `fn` in a transaction that holds the write lock from its first statement (SQLite:
   * BEGIN IMMEDIATE; PostgreSQL: READ COMMITTED, writers serialize on the revision row).
   * Commits when `fn` resolves, rolls back when it throws.
   */
  write<T>(fn: (tx: Kysely<Database>) => Promise<T>): Promise<T>;
  /** Runs `fn` in a read-only transaction that sees one consistent snapshot. */
  snapshot<T>(fn: (tx: Kysely<Database>) => Promise<T>): Promise<T>;
  /** True for a unique or primary-key violation. */
  isUniqueViolation(err: unknown): boolean;
  /** True when the failure means the database is unreachable or busy, not that the query is wrong. */
  isUnavailable(err: unknown): boolean;
  /** Where the data lives, for messages (never includes a password). */
  readonly description: string;
  close(): Promise<void>;
}

/** Runs `fn`; a driver failure that means "cannot reach the database" becomes ERR_DATASTORE_UNAVAILABLE. */
export async function guarded<T>(engine: Engine, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof DatastoreError) throw err;
    if (engine.isUnavailable(err)) {
      throw new DatastoreError(
        'ERR_DATASTORE_UNAVAILABLE',
        `datastore ${engine.description} is unavailable: ${(err as Error).message}`,
        { cause: err },
      );
    }
    throw err;
  }
}

/**
 * Splits rows so that one multi-row INSERT stays under the engines' bound-parameter limits
 * (SQLite 32766, PostgreSQL 65535).
 */
export function chunksFor<T>(rows: readonly T[], columnsPerRow: number, maxParams = 30_000): T[][] {
  const size = Math.max(1, Math.floor(maxParams / columnsPerRow));
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += size) out.push(rows.slice(i, i + size));
  return out;
}
