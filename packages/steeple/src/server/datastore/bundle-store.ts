/**
 * Trust bundles keyed by trust domain name: the server's own and federated ones alike (which
 * is which follows from the server's trust domain). Each is kept as the SPIFFE bundle JSON
 * text it was set with, plus its `spiffe_sequence` as decimal text, exact to 64 bits.
 * The store does not parse the JSON; the caller validates it with the SDK first.
 * @module
 */
import type { Selectable } from 'kysely';
import { DatastoreError, quote } from './datastore-error.js';
import {
  deleteEntriesInTransaction,
  dissociateTrustDomainInTransaction,
  entriesFederatingWith,
} from './entry-store.js';
import { lockRevisions } from './revision.js';
import { type Engine, guarded } from './sql/engine.js';
import type { BundleTable } from './sql/schema.js';
import type { BundleDeleteMode, BundleInput, StoredBundle } from './types.js';

const MAX_UINT64 = (1n << 64n) - 1n;

function bundleFromRow(r: Selectable<BundleTable>): StoredBundle {
  return Object.freeze({
    trustDomain: r.trust_domain,
    bundle: r.bundle,
    sequence: BigInt(r.sequence),
    updatedAt: Number(r.updated_at),
  });
}

export interface BundleDeleteResult {
  readonly deleted: StoredBundle;
  /** Entries changed (dissociate) or deleted (delete) because they federated with the trust domain. */
  readonly affectedEntries: number;
}

export class BundleStore {
  readonly #engine: Engine;
  readonly #now: () => number;

  /** @param now current time in epoch seconds */
  constructor(engine: Engine, now: () => number) {
    this.#engine = engine;
    this.#now = now;
  }

  /** Creates or replaces the bundle of a trust domain. */
  async set(input: BundleInput): Promise<StoredBundle> {
    if (typeof input.sequence !== 'bigint' || input.sequence < 0n || input.sequence > MAX_UINT64) {
      throw new RangeError(`bundle sequence must be a uint64 bigint, got ${String(input.sequence)}`);
    }
    const row = {
      trust_domain: input.trustDomain,
      bundle: input.bundle,
      sequence: input.sequence.toString(),
      updated_at: this.#now(),
    };
    return guarded(this.#engine, async () => {
      await this.#engine.write((tx) =>
        tx
          .insertInto('bundles')
          .values(row)
          .onConflict((oc) =>
            oc
              .column('trust_domain')
              .doUpdateSet({ bundle: row.bundle, sequence: row.sequence, updated_at: row.updated_at }),
          )
          .execute(),
      );
      return bundleFromRow(row);
    });
  }

  async get(trustDomain: string): Promise<StoredBundle | undefined> {
    return guarded(this.#engine, async () => {
      const row = await this.#engine.db
        .selectFrom('bundles')
        .selectAll()
        .where('trust_domain', '=', trustDomain)
        .executeTakeFirst();
      return row ? bundleFromRow(row) : undefined;
    });
  }

  /** Every bundle, ordered by trust domain name. */
  async list(): Promise<StoredBundle[]> {
    return guarded(this.#engine, async () => {
      const rows = await this.#engine.db.selectFrom('bundles').selectAll().orderBy('trust_domain').execute();
      return rows.map(bundleFromRow);
    });
  }

  async count(): Promise<number> {
    return guarded(this.#engine, async () => {
      const row = await this.#engine.db
        .selectFrom('bundles')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow();
      return Number(row.n);
    });
  }

  /**
   * Deletes a trust domain's bundle (ERR_BUNDLE_NOT_FOUND when absent). Entries that federate
   * with it decide the outcome, as in SPIRE: `restrict` (default) refuses with
   * ERR_BUNDLE_IN_USE, `dissociate` removes the trust domain from them, `delete` deletes them;
   * either change is recorded as entry events.
   */
  async delete(trustDomain: string, mode: BundleDeleteMode = 'restrict'): Promise<BundleDeleteResult> {
    return guarded(this.#engine, () =>
      this.#engine.write(async (tx) => {
        await lockRevisions(this.#engine, tx);
        const row = await tx
          .selectFrom('bundles')
          .selectAll()
          .where('trust_domain', '=', trustDomain)
          .executeTakeFirst();
        if (!row) throw new DatastoreError('ERR_BUNDLE_NOT_FOUND', `no bundle for trust domain ${quote(trustDomain)}`);
        let affectedEntries = 0;
        const users = await entriesFederatingWith(tx, trustDomain);
        if (users.length > 0) {
          if (mode === 'restrict') {
            throw new DatastoreError(
              'ERR_BUNDLE_IN_USE',
              `bundle of ${quote(trustDomain)} is federated with by ${users.length} entries (e.g. ${users[0]}); delete with mode "dissociate" or "delete"`,
            );
          }
          affectedEntries =
            mode === 'dissociate'
              ? await dissociateTrustDomainInTransaction(tx, trustDomain, this.#now())
              : await deleteEntriesInTransaction(tx, users, this.#now());
        }
        await tx.deleteFrom('bundles').where('trust_domain', '=', trustDomain).execute();
        return { deleted: bundleFromRow(row), affectedEntries };
      }),
    );
  }
}
