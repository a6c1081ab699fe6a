/**
 * Small named documents of the CA's state (SPIRE keeps a "CA journal" of prepared, active
 * and retired authorities): the CA serializes them (JSON, PEM chains — never private keys,
 * which stay with the key manager) and reads them back at start, so that a restarted server
 * resumes the same rotation schedule.
 * @module
 */
import { type Engine, guarded } from './sql/engine.js';

export interface JournalRecord {
  readonly name: string;
  readonly data: string;
  /** Epoch seconds of the last save. */
  readonly updatedAt: number;
}

export class CaJournalStore {
  readonly #engine: Engine;
  readonly #now: () => number;

  /** @param now current time in epoch seconds */
  constructor(engine: Engine, now: () => number) {
    this.#engine = engine;
    this.#now = now;
  }

  /** The document saved under `name`, or undefined. */
  async load(name: string): Promise<JournalRecord | undefined> {
    return guarded(this.#engine, async () => {
      const row = await this.#engine.db
        .selectFrom('ca_journal')
        .selectAll()
        .where('name', '=', name)
        .executeTakeFirst();
      return row ? Object.freeze({ name: row.name, data: row.data, updatedAt: Number(row.updated_at) }) : undefined;
    });
  }

  /** Creates or replaces the document `name`, durably. */
  async save(name: string, data: string): Promise<JournalRecord> {
    const row = { name, data, updated_at: this.#now() };
    return guarded(this.#engine, async () => {
      await this.#engine.write((tx) =>
        tx
          .insertInto('ca_journal')
          .values(row)
          .onConflict((oc) => oc.column('name').doUpdateSet({ data: row.data, updated_at: row.updated_at }))
          .execute(),
      );
      return Object.freeze({ name, data, updatedAt: row.updated_at });
    });
  }

  /** Deletes the document; true when it existed. */
  async delete(name: string): Promise<boolean> {
    return guarded(this.#engine, async () => {
      const result = await this.#engine.write((tx) =>
        tx.deleteFrom('ca_journal').where('name', '=', name).executeTakeFirst(),
      );
      return Number(result.numDeletedRows) > 0;
    });
  }
}
