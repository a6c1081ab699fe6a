/**
 * Registration entries, and the revision log that lets agents sync them by delta.
 *
 * Every change (create, update, delete, prune, bundle dissociation) takes a new global
 * revision and appends an event in the same transaction; see revision.ts for why the
 * revisions are gap-free in commit order. Entry rows keep their selectors and federated
 * trust domains twice: as JSON (to read an entry from one row) and as child rows (to filter
 * with an index).
 * @module
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { DatastoreError, quote } from './datastore-error.js';
import { entryFilterConditions } from './entry-filter.js';
import { contentOf, contentOfEntry, type EntryRow, entryFromRow, rowOf, sameContent } from './entry-row.js';
import {
  appendEntryEvents,
  lockRevisions,
  type NewEntryEvent,
  readRevisionState,
  selectEntryEvents,
  takeRevisions,
} from './revision.js';
import { chunksFor, type Engine, guarded } from './sql/engine.js';
import type { Database } from './sql/schema.js';
import type {
  EntryChanges,
  EntryEvent,
  EntryFilter,
  EntryUpdate,
  NewEntry,
  Page,
  PageRequest,
  RegistrationEntry,
  Selector,
} from './types.js';

/** Events returned by one delta read when the caller gives no limit. */
export const DEFAULT_EVENT_LIMIT = 1000;

function duplicateError(c: { spiffeId: string; parentId: string }, existingId: string): DatastoreError {
  return new DatastoreError(
    'ERR_ENTRY_DUPLICATE',
    `an entry with SPIFFE ID ${quote(c.spiffeId)}, parent ${quote(c.parentId)} and the same selectors already exists: ${existingId}`,
    { existingEntryId: existingId },
  );
}

function notFound(id: string): DatastoreError {
  return new DatastoreError('ERR_ENTRY_NOT_FOUND', `no registration entry with id ${quote(id)}`);
}

async function insertChildren(tx: Kysely<Database>, rows: readonly EntryRow[]): Promise<void> {
  const selectorRows = rows.flatMap((r) =>
    (JSON.parse(r.selectors) as Selector[]).map((s) => ({ entry_id: r.id, type: s.type, value: s.value })),
  );
  for (const chunk of chunksFor(selectorRows, 3)) await tx.insertInto('entry_selectors').values(chunk).execute();
  const federationRows = rows.flatMap((r) =>
    (JSON.parse(r.federates_with) as string[]).map((td) => ({ entry_id: r.id, trust_domain: td })),
  );
  for (const chunk of chunksFor(federationRows, 2)) await tx.insertInto('entry_federates_with').values(chunk).execute();
}

async function deleteChildren(tx: Kysely<Database>, ids: readonly string[]): Promise<void> {
  for (const chunk of chunksFor(ids, 1)) {
    await tx.deleteFrom('entry_selectors').where('entry_id', 'in', chunk).execute();
    await tx.deleteFrom('entry_federates_with').where('entry_id', 'in', chunk).execute();
  }
}

/**
 * Deletes entries inside the caller's write transaction (after lockRevisions), with one
 * 'deleted' event each. Used by EntryStore and by bundle deletion in 'delete' mode.
 */
export async function deleteEntriesInTransaction(
  tx: Kysely<Database>,
  ids: readonly string[],
  now: number,
): Promise<number> {
  if (ids.length === 0) return 0;
  const first = await takeRevisions(tx, ids.length);
  await deleteChildren(tx, ids);
  for (const chunk of chunksFor(ids, 1)) await tx.deleteFrom('registration_entries').where('id', 'in', chunk).execute();
  await appendEntryEvents(
    tx,
    ids.map((entryId, i) => ({ revision: first + i, entryId, kind: 'deleted' as const })),
    now,
  );
  return ids.length;
}

/**
 * Removes a trust domain from the federatesWith of every entry that names it, inside the
 * caller's write transaction (after lockRevisions), with one 'updated' event each.
 */
export async function dissociateTrustDomainInTransaction(
  tx: Kysely<Database>,
  trustDomain: string,
  now: number,
): Promise<number> {
  const rows = await tx
    .selectFrom('registration_entries')
    .selectAll()
    .where('id', 'in', (eb) =>
      eb.selectFrom('entry_federates_with').select('entry_id').where('trust_domain', '=', trustDomain),
    )
    .orderBy('id')
    .execute();
  if (rows.length === 0) return 0;
  const first = await takeRevisions(tx, rows.length);
  await tx.deleteFrom('entry_federates_with').where('trust_domain', '=', trustDomain).execute();
  const events: NewEntryEvent[] = [];
  for (const [i, row] of rows.entries()) {
    const remaining = (JSON.parse(row.federates_with) as string[]).filter((td) => td !== trustDomain);
    await tx
      .updateTable('registration_entries')
      .set({
        federates_with: JSON.stringify(remaining),
        federates_with_count: remaining.length,
        revision_number: first + i,
      })
      .where('id', '=', row.id)
      .execute();
    events.push({ revision: first + i, entryId: row.id, kind: 'updated' });
  }
  await appendEntryEvents(tx, events, now);
  return rows.length;
}

/** Ids of entries that federate with the trust domain. */
export async function entriesFederatingWith(db: Kysely<Database>, trustDomain: string): Promise<string[]> {
  const rows = await db
    .selectFrom('entry_federates_with')
    .select('entry_id')
    .where('trust_domain', '=', trustDomain)
    .orderBy('entry_id')
    .execute();
  return rows.map((r) => r.entry_id);
}

export class EntryStore {
  readonly #engine: Engine;
  readonly #now: () => number;

  /** @param now current time in epoch seconds */
  constructor(engine: Engine, now: () => number) {
    this.#engine = engine;
    this.#now = now;
  }

  /**
   * Creates one entry. Refuses an entry with the same SPIFFE ID, parent ID and selector set as
   * an existing one (ERR_ENTRY_DUPLICATE, naming the existing id).
   */
  async create(input: NewEntry): Promise<RegistrationEntry> {
    const [entry] = await this.createMany([input]);
    return entry!;
  }

  /**
   * Creates entries in one transaction, all or none: a duplicate (of an existing entry or
   * within the batch) refuses the whole batch with ERR_ENTRY_DUPLICATE. Each entry gets its
   * own revision and 'created' event. Returned in input order.
   */
  async createMany(inputs: readonly NewEntry[]): Promise<RegistrationEntry[]> {
    if (inputs.length === 0) return [];
    const contents = inputs.map(contentOf);
    const now = this.#now();
    const draft = contents.map((c) => rowOf(randomUUID(), c, now, 0));
    const seen = new Map<string, string>();
    for (const [i, row] of draft.entries()) {
      const earlier = seen.get(row.identity_hash);
      if (earlier !== undefined) throw duplicateError(contents[i]!, earlier);
      seen.set(row.identity_hash, row.id);
    }
    return guarded(this.#engine, async () => {
      try {
        return await this.#engine.write(async (tx) => {
          const first = await takeRevisions(tx, draft.length);
          for (const chunk of chunksFor(draft, 1)) {
            const existing = await tx
              .selectFrom('registration_entries')
              .select(['id', 'identity_hash'])
              .where(
                'identity_hash',
                'in',
                chunk.map((r) => r.identity_hash),
              )
              .limit(1)
              .executeTakeFirst();
            if (existing) {
              const i = draft.findIndex((r) => r.identity_hash === existing.identity_hash);
              throw duplicateError(contents[i]!, existing.id);
            }
          }
          const rows = draft.map((r, i) => ({ ...r, revision_number: first + i }));
          for (const chunk of chunksFor(rows, 17)) await tx.insertInto('registration_entries').values(chunk).execute();
          await insertChildren(tx, rows);
          await appendEntryEvents(
            tx,
            rows.map((r) => ({ revision: r.revision_number, entryId: r.id, kind: 'created' as const })),
            now,
          );
          return rows.map(entryFromRow);
        });
      } catch (err) {
        // Backstop for a writer that bypassed the revision lock: the unique index still holds.
        if (this.#engine.isUniqueViolation(err)) {
          for (const [i, row] of draft.entries()) {
            const existing = await this.#findByIdentity(row.identity_hash);
            if (existing !== undefined) throw duplicateError(contents[i]!, existing);
          }
        }
        throw err;
      }
    });
  }

  async #findByIdentity(hash: string): Promise<string | undefined> {
    const row = await this.#engine.db
      .selectFrom('registration_entries')
      .select('id')
      .where('identity_hash', '=', hash)
      .executeTakeFirst();
    return row?.id;
  }

  /** The entry, or undefined. */
  async get(id: string): Promise<RegistrationEntry | undefined> {
    return guarded(this.#engine, async () => {
      const row = await this.#engine.db
        .selectFrom('registration_entries')
        .selectAll()
        .where('id', '=', id)
        .executeTakeFirst();
      return row ? entryFromRow(row) : undefined;
    });
  }

  /** The entries that exist among `ids`, in id order. */
  async getMany(ids: readonly string[]): Promise<RegistrationEntry[]> {
    return guarded(this.#engine, () => this.#getMany(this.#engine.db, ids));
  }

  async #getMany(db: Kysely<Database>, ids: readonly string[]): Promise<RegistrationEntry[]> {
    const out: RegistrationEntry[] = [];
    for (const chunk of chunksFor([...new Set(ids)], 1)) {
      const rows = await db.selectFrom('registration_entries').selectAll().where('id', 'in', chunk).execute();
      out.push(...rows.map(entryFromRow));
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * Applies a partial update and bumps the entry's revision. Changing the SPIFFE ID, parent or
   * selectors into those of another entry is refused (ERR_ENTRY_DUPLICATE). An update that
   * changes nothing returns the entry as it is, without a new revision.
   */
  async update(id: string, patch: EntryUpdate): Promise<RegistrationEntry> {
    return guarded(this.#engine, () =>
      this.#engine.write(async (tx) => {
        await lockRevisions(this.#engine, tx);
        const row = await tx.selectFrom('registration_entries').selectAll().where('id', '=', id).executeTakeFirst();
        if (!row) throw notFound(id);
        const before = entryFromRow(row);
        const current = contentOfEntry(before);
        const merged = contentOf({
          ...current,
          ...Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)),
        } as NewEntry);
        if (sameContent(current, merged)) return before;
        const revision = await takeRevisions(tx, 1);
        const next = rowOf(id, merged, before.createdAt, revision);
        if (next.identity_hash !== row.identity_hash) {
          const other = await tx
            .selectFrom('registration_entries')
            .select('id')
            .where('identity_hash', '=', next.identity_hash)
            .executeTakeFirst();
          if (other) throw duplicateError(merged, other.id);
        }
        const { id: _id, created_at: _created, ...changes } = next;
        await tx.updateTable('registration_entries').set(changes).where('id', '=', id).execute();
        if (next.selectors !== row.selectors || next.federates_with !== row.federates_with) {
          await deleteChildren(tx, [id]);
          await insertChildren(tx, [next]);
        }
        await appendEntryEvents(tx, [{ revision, entryId: id, kind: 'updated' }], this.#now());
        return entryFromRow(next);
      }),
    );
  }

  /** Deletes the entry and returns it as it was; ERR_ENTRY_NOT_FOUND when absent. */
  async delete(id: string): Promise<RegistrationEntry> {
    return guarded(this.#engine, () =>
      this.#engine.write(async (tx) => {
        await lockRevisions(this.#engine, tx);
        const row = await tx.selectFrom('registration_entries').selectAll().where('id', '=', id).executeTakeFirst();
        if (!row) throw notFound(id);
        await deleteEntriesInTransaction(tx, [id], this.#now());
        return entryFromRow(row);
      }),
    );
  }

  /** Deletes entries whose expiresAt is before `now` (epoch seconds); returns how many. */
  async pruneExpired(now: number): Promise<number> {
    return guarded(this.#engine, () =>
      this.#engine.write(async (tx) => {
        await lockRevisions(this.#engine, tx);
        const rows = await tx
          .selectFrom('registration_entries')
          .select('id')
          .where('expires_at', 'is not', null)
          .where('expires_at', '<', now)
          .orderBy('id')
          .execute();
        return deleteEntriesInTransaction(
          tx,
          rows.map((r) => r.id),
          this.#now(),
        );
      }),
    );
  }

  /** Number of entries matching the filter (all entries without one). */
  async count(filter?: EntryFilter): Promise<number> {
    return guarded(this.#engine, async () => {
      const row = await this.#engine.db
        .selectFrom('registration_entries')
        .select((eb) => eb.fn.countAll().as('n'))
        .where((eb) => eb.and(entryFilterConditions(eb, filter)))
        .executeTakeFirstOrThrow();
      return Number(row.n);
    });
  }

  /**
   * Entries matching the filter, ordered by id. Pagination is by key (the last id of the
   * page), so pages stay stable while entries are created or deleted between calls.
   */
  async list(filter?: EntryFilter, page: PageRequest = {}): Promise<Page<RegistrationEntry>> {
    const pageSize = page.pageSize ?? 0;
    if (!Number.isSafeInteger(pageSize) || pageSize < 0) {
      throw new RangeError(`pageSize must be a non-negative integer, got ${pageSize}`);
    }
    return guarded(this.#engine, async () => {
      let query = this.#engine.db
        .selectFrom('registration_entries')
        .selectAll()
        .where((eb) => eb.and(entryFilterConditions(eb, filter)))
        .orderBy('id');
      if (page.pageToken) query = query.where('id', '>', page.pageToken);
      if (pageSize > 0) query = query.limit(pageSize + 1);
      const rows = await query.execute();
      const more = pageSize > 0 && rows.length > pageSize;
      const items = (more ? rows.slice(0, pageSize) : rows).map(entryFromRow);
      return { items, nextPageToken: more ? items[items.length - 1]!.id : undefined };
    });
  }

  /** Every entry and the revision they are current at, read in one snapshot (to fill a cache). */
  async snapshot(): Promise<{ revision: number; entries: RegistrationEntry[] }> {
    return guarded(this.#engine, () =>
      this.#engine.snapshot(async (tx) => {
        const { current } = await readRevisionState(tx);
        const rows = await tx.selectFrom('registration_entries').selectAll().orderBy('id').execute();
        return { revision: current, entries: rows.map(entryFromRow) };
      }),
    );
  }

  /** The last revision handed out; 0 before the first change. */
  async currentRevision(): Promise<number> {
    return guarded(this.#engine, async () => (await readRevisionState(this.#engine.db)).current);
  }

  /**
   * The oldest revision a caller may hold and still sync by delta: events after it are all
   * retained. A caller at an older revision gets ERR_REVISION_OUT_OF_RANGE from
   * listEventsSince/changesSince and must fall back to a full sync (snapshot()).
   */
  async oldestRetainedRevision(): Promise<number> {
    return guarded(this.#engine, async () => (await readRevisionState(this.#engine.db)).prunedThrough);
  }

  #checkSince(since: number, state: { current: number; prunedThrough: number }): void {
    if (!Number.isSafeInteger(since) || since < 0)
      throw new RangeError(`revision must be a non-negative integer, got ${since}`);
    if (since < state.prunedThrough || since > state.current) {
      throw new DatastoreError(
        'ERR_REVISION_OUT_OF_RANGE',
        `cannot sync by delta from revision ${since}: events are retained after revision ${state.prunedThrough} up to ${state.current}; do a full sync`,
      );
    }
  }

  /**
   * The events after revision `since`, oldest first, at most `limit`. Reads only the events
   * asked for (an index range), however many entries exist.
   */
  async listEventsSince(since: number, limit = DEFAULT_EVENT_LIMIT): Promise<EntryEvent[]> {
    return guarded(this.#engine, () =>
      this.#engine.snapshot(async (tx) => {
        this.#checkSince(since, await readRevisionState(tx));
        return selectEntryEvents(tx, since, limit);
      }),
    );
  }

  /**
   * The changes after `since` in one snapshot: events and the current state of the entries
   * they name. Apply them with EntryCache (entry-cache.ts).
   */
  async changesSince(since: number, limit = DEFAULT_EVENT_LIMIT): Promise<EntryChanges> {
    if (!Number.isSafeInteger(limit) || limit < 1)
      throw new RangeError(`limit must be a positive integer, got ${limit}`);
    return guarded(this.#engine, () =>
      this.#engine.snapshot(async (tx) => {
        const state = await readRevisionState(tx);
        this.#checkSince(since, state);
        const events = await selectEntryEvents(tx, since, limit + 1);
        const more = events.length > limit;
        if (more) events.length = limit;
        const changedIds = [...new Set(events.filter((e) => e.kind !== 'deleted').map((e) => e.entryId))];
        const entries = await this.#getMany(tx, changedIds);
        return {
          since,
          events,
          entries,
          revision: more ? events[events.length - 1]!.revision : state.current,
          more,
        };
      }),
    );
  }

  /**
   * Deletes the events of revisions before `beforeRevision` and moves the delta-sync horizon
   * (oldestRetainedRevision) up to `beforeRevision - 1`. Returns how many events were deleted.
   */
  async pruneEvents(beforeRevision: number): Promise<number> {
    if (!Number.isSafeInteger(beforeRevision))
      throw new RangeError(`revision must be an integer, got ${beforeRevision}`);
    return guarded(this.#engine, () =>
      this.#engine.write(async (tx) => {
        await lockRevisions(this.#engine, tx);
        const state = await readRevisionState(tx);
        // Never past the current revision: that would refuse callers who are up to date.
        const through = Math.min(beforeRevision - 1, state.current);
        if (through <= state.prunedThrough) return 0;
        const result = await tx.deleteFrom('entry_events').where('revision', '<=', through).executeTakeFirst();
        await tx.updateTable('revision_counter').set({ pruned_through: through }).where('id', '=', 1).execute();
        return Number(result.numDeletedRows);
      }),
    );
  }

  /** Prunes the events recorded before `epochSeconds` (a retention period); returns how many. */
  async pruneEventsOlderThan(epochSeconds: number): Promise<number> {
    const firstKept = await guarded(this.#engine, async () => {
      const row = await this.#engine.db
        .selectFrom('entry_events')
        .select((eb) => eb.fn.min('revision').as('r'))
        .where('created_at', '>=', epochSeconds)
        .executeTakeFirst();
      return row?.r === null || row?.r === undefined ? undefined : Number(row.r);
    });
    return this.pruneEvents(firstKept ?? (await this.currentRevision()) + 1);
  }
}
