/**
 * Federation relationships: for each federated trust domain, where and how this server
 * fetches its bundle (SPIFFE Trust Domain and Bundle §5: `https_web` or `https_spiffe`).
 * The fetched bundles themselves live in the BundleStore.
 * @module
 */
import type { Selectable } from 'kysely';
import { DatastoreError, quote } from './datastore-error.js';
import { type Engine, guarded } from './sql/engine.js';
import type { FederationRelationshipTable } from './sql/schema.js';
import type {
  BundleEndpointProfile,
  FederationRelationship,
  FederationRelationshipInput,
  FederationRelationshipUpdate,
} from './types.js';

const PROFILES: readonly BundleEndpointProfile[] = ['https_web', 'https_spiffe'];

function checkProfile(profile: string): BundleEndpointProfile {
  if (!PROFILES.includes(profile as BundleEndpointProfile)) {
    throw new TypeError(`bundle endpoint profile must be "https_web" or "https_spiffe", got ${quote(profile)}`);
  }
  return profile as BundleEndpointProfile;
}

function relationshipFromRow(r: Selectable<FederationRelationshipTable>): FederationRelationship {
  const base = {
    trustDomain: r.trust_domain,
    bundleEndpointUrl: r.bundle_endpoint_url,
    profile: r.profile as BundleEndpointProfile,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
  return Object.freeze(r.endpoint_spiffe_id === null ? base : { ...base, endpointSpiffeId: r.endpoint_spiffe_id });
}

function notFound(trustDomain: string): DatastoreError {
  return new DatastoreError(
    'ERR_FEDERATION_RELATIONSHIP_NOT_FOUND',
    `no federation relationship with trust domain ${quote(trustDomain)}`,
  );
}

export class FederationStore {
  readonly #engine: Engine;
  readonly #now: () => number;

  /** @param now current time in epoch seconds */
  constructor(engine: Engine, now: () => number) {
    this.#engine = engine;
    this.#now = now;
  }

  /** ERR_FEDERATION_RELATIONSHIP_EXISTS when one exists for the trust domain. */
  async create(input: FederationRelationshipInput): Promise<FederationRelationship> {
    const now = this.#now();
    const row = {
      trust_domain: input.trustDomain,
      bundle_endpoint_url: input.bundleEndpointUrl,
      profile: checkProfile(input.profile),
      endpoint_spiffe_id: input.endpointSpiffeId ?? null,
      created_at: now,
      updated_at: now,
    };
    return guarded(this.#engine, async () => {
      try {
        await this.#engine.write((tx) => tx.insertInto('federation_relationships').values(row).execute());
      } catch (err) {
        if (this.#engine.isUniqueViolation(err)) {
          throw new DatastoreError(
            'ERR_FEDERATION_RELATIONSHIP_EXISTS',
            `a federation relationship with trust domain ${quote(input.trustDomain)} already exists`,
            { cause: err },
          );
        }
        throw err;
      }
      return relationshipFromRow(row);
    });
  }

  async get(trustDomain: string): Promise<FederationRelationship | undefined> {
    return guarded(this.#engine, async () => {
      const row = await this.#engine.db
        .selectFrom('federation_relationships')
        .selectAll()
        .where('trust_domain', '=', trustDomain)
        .executeTakeFirst();
      return row ? relationshipFromRow(row) : undefined;
    });
  }

  /** Every relationship, ordered by trust domain name. */
  async list(): Promise<FederationRelationship[]> {
    return guarded(this.#engine, async () => {
      const rows = await this.#engine.db
        .selectFrom('federation_relationships')
        .selectAll()
        .orderBy('trust_domain')
        .execute();
      return rows.map(relationshipFromRow);
    });
  }

  /** Partial update; ERR_FEDERATION_RELATIONSHIP_NOT_FOUND when absent. */
  async update(trustDomain: string, patch: FederationRelationshipUpdate): Promise<FederationRelationship> {
    const set: Partial<Selectable<FederationRelationshipTable>> = { updated_at: this.#now() };
    if (patch.bundleEndpointUrl !== undefined) set.bundle_endpoint_url = patch.bundleEndpointUrl;
    if (patch.profile !== undefined) set.profile = checkProfile(patch.profile);
    if (patch.endpointSpiffeId !== undefined) set.endpoint_spiffe_id = patch.endpointSpiffeId;
    return guarded(this.#engine, async () => {
      const row = await this.#engine.write((tx) =>
        tx
          .updateTable('federation_relationships')
          .set(set)
          .where('trust_domain', '=', trustDomain)
          .returningAll()
          .executeTakeFirst(),
      );
      if (!row) throw notFound(trustDomain);
      return relationshipFromRow(row);
    });
  }

  /** Deletes the relationship (not the bundle); returns it as it was. */
  async delete(trustDomain: string): Promise<FederationRelationship> {
    return guarded(this.#engine, async () => {
      const row = await this.#engine.write((tx) =>
        tx
          .deleteFrom('federation_relationships')
          .where('trust_domain', '=', trustDomain)
          .returningAll()
          .executeTakeFirst(),
      );
      if (!row) throw notFound(trustDomain);
      return relationshipFromRow(row);
    });
  }
}
