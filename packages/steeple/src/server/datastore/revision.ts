/**
 * The global entry revision and the entry event log, used inside the stores' transactions.
 *
 * Every change to an entry takes the next value of one counter row and appends an event with
 * it, in the same transaction as the change. On PostgreSQL the UPDATE of the counter row
 * locks it until commit, so writers on every server serialize there: revisions are unique,
 * and a transaction holding revision N commits before anyone can take N+1. A reader that
 * sees revision N therefore sees every event up to N — no gaps to wait for.
 * @module
 */
import type { Kysely } from 'kysely';
import type { Engine } from './sql/engine.js';
import type { Database } from './sql/schema.js';
import type { EntryEvent, EntryEventKind } from './types.js';

export interface RevisionState {
  /** The last revision handed out (0 before the first change). */
  readonly current: number;
  /** Events up to and including this revision were pruned. */
  readonly prunedThrough: number;
}

/**
 * Takes the write lock on the revision counter without advancing it (PostgreSQL: FOR UPDATE;
 * SQLite: the transaction already holds the database's write lock).
 */
export async function lockRevisions(engine: Engine, tx: Kysely<Database>): Promise<void> {
  if (engine.kind !== 'postgres') return;
  await tx.selectFrom('revision_counter').select('value').where('id', '=', 1).forUpdate().executeTakeFirstOrThrow();
}

/** Advances the counter by `count` and returns the first of the new revisions. */
export async function takeRevisions(tx: Kysely<Database>, count: number): Promise<number> {
  const row = await tx
    .updateTable('revision_counter')
    .set((eb) => ({ value: eb('value', '+', count) }))
    .where('id', '=', 1)
    .returning('value')
    .executeTakeFirstOrThrow();
  return Number(row.value) - count + 1;
}

export async function readRevisionState(db: Kysely<Database>): Promise<RevisionState> {
  const row = await db
    .selectFrom('revision_counter')
    .select(['value', 'pruned_through'])
    .where('id', '=', 1)
    .executeTakeFirstOrThrow();
  return { current: Number(row.value), prunedThrough: Number(row.pruned_through) };
}

export interface NewEntryEvent {
  readonly revision: number;
  readonly entryId: string;
  readonly kind: EntryEventKind;
}

export async function appendEntryEvents(
  tx: Kysely<Database>,
  events: readonly NewEntryEvent[],
  at: number,
): Promise<void> {
  // 4 parameters per row; 5000 rows stay far below both engines' parameter limits.
  for (let i = 0; i < events.length; i += 5000) {
    await tx
      .insertInto('entry_events')
      .values(
        events
          .slice(i, i + 5000)
          .map((e) => ({ revision: e.revision, entry_id: e.entryId, kind: e.kind, created_at: at })),
      )
      .execute();
  }
}

export async function selectEntryEvents(db: Kysely<Database>, since: number, limit: number): Promise<EntryEvent[]> {
  const rows = await db
    .selectFrom('entry_events')
    .select(['revision', 'entry_id', 'kind', 'created_at'])
    .where('revision', '>', since)
    .orderBy('revision')
    .limit(limit)
    .execute();
  return rows.map((r) =>
    Object.freeze({
      revision: Number(r.revision),
      entryId: r.entry_id,
      kind: r.kind as EntryEventKind,
      at: Number(r.created_at),
    }),
  );
}
