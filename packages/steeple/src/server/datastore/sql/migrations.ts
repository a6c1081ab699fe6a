/**
 * Versioned schema migrations, in code, applied when the datastore opens. Each migration
 * runs once, inside one transaction with its version row, so a crash mid-migration leaves
 * the previous version intact (both engines have transactional DDL). Concurrent openers
 * (two servers on one PostgreSQL schema) serialize on an advisory lock scoped to the schema.
 * Never edit a released migration: append a new one.
 * @module
 */
import { type Kysely, sql } from 'kysely';
import { DatastoreError } from '../datastore-error.js';
import type { Engine, EngineKind } from './engine.js';
import type { Database } from './schema.js';

export interface Migration {
  readonly version: number;
  readonly name: string;
  // The schema builder is untyped on purpose: a migration describes tables as they were then.
  // biome-ignore lint/suspicious/noExplicitAny: see above
  up(db: Kysely<any>, kind: EngineKind): Promise<void>;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema: entries, entry events, agents, join tokens, bundles, federation, CA journal',
    async up(db, kind) {
      // 64-bit integers: INTEGER is already 64-bit in SQLite.
      const int64 = kind === 'postgres' ? 'bigint' : 'integer';

      await db.schema
        .createTable('registration_entries')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('spiffe_id', 'text', (c) => c.notNull())
        .addColumn('parent_id', 'text', (c) => c.notNull())
        .addColumn('identity_hash', 'text', (c) => c.notNull().unique())
        .addColumn('selectors', 'text', (c) => c.notNull())
        .addColumn('selector_count', 'integer', (c) => c.notNull())
        .addColumn('x509_svid_ttl', 'integer', (c) => c.notNull())
        .addColumn('jwt_svid_ttl', 'integer', (c) => c.notNull())
        .addColumn('dns_names', 'text', (c) => c.notNull())
        .addColumn('federates_with', 'text', (c) => c.notNull())
        .addColumn('federates_with_count', 'integer', (c) => c.notNull())
        .addColumn('admin', 'integer', (c) => c.notNull())
        .addColumn('downstream', 'integer', (c) => c.notNull())
        .addColumn('hint', 'text', (c) => c.notNull())
        .addColumn('expires_at', int64)
        .addColumn('created_at', int64, (c) => c.notNull())
        .addColumn('revision_number', int64, (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('registration_entries_spiffe_id')
        .on('registration_entries')
        .column('spiffe_id')
        .execute();
      await db.schema
        .createIndex('registration_entries_parent_id')
        .on('registration_entries')
        .column('parent_id')
        .execute();
      await db.schema
        .createIndex('registration_entries_expires_at')
        .on('registration_entries')
        .column('expires_at')
        .execute();

      await db.schema
        .createTable('entry_selectors')
        .addColumn('entry_id', 'text', (c) => c.notNull().references('registration_entries.id'))
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('entry_selectors_pk', ['entry_id', 'type', 'value'])
        .execute();
      await db.schema
        .createIndex('entry_selectors_by_selector')
        .on('entry_selectors')
        .columns(['type', 'value'])
        .execute();

      await db.schema
        .createTable('entry_federates_with')
        .addColumn('entry_id', 'text', (c) => c.notNull().references('registration_entries.id'))
        .addColumn('trust_domain', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('entry_federates_with_pk', ['entry_id', 'trust_domain'])
        .execute();
      await db.schema
        .createIndex('entry_federates_with_by_trust_domain')
        .on('entry_federates_with')
        .column('trust_domain')
        .execute();

      // Delta sync reads `revision > ? ORDER BY revision LIMIT ?` from the primary key, so
      // its cost depends on the number of changes returned, not on the number of entries.
      await db.schema
        .createTable('entry_events')
        .addColumn('revision', int64, (c) => c.primaryKey())
        .addColumn('entry_id', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('created_at', int64, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('entry_events_created_at').on('entry_events').column('created_at').execute();

      await db.schema
        .createTable('revision_counter')
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .addColumn('value', int64, (c) => c.notNull())
        .addColumn('pruned_through', int64, (c) => c.notNull())
        .execute();
      await db.insertInto('revision_counter').values({ id: 1, value: 0, pruned_through: 0 }).execute();

      await db.schema
        .createTable('attested_agents')
        .addColumn('spiffe_id', 'text', (c) => c.primaryKey())
        .addColumn('attestation_type', 'text', (c) => c.notNull())
        .addColumn('serial_number', 'text', (c) => c.notNull())
        .addColumn('expires_at', int64, (c) => c.notNull())
        .addColumn('banned', 'integer', (c) => c.notNull())
        .addColumn('selectors', 'text', (c) => c.notNull())
        .addColumn('created_at', int64, (c) => c.notNull())
        .addColumn('updated_at', int64, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('attested_agents_expires_at').on('attested_agents').column('expires_at').execute();

      await db.schema
        .createTable('join_tokens')
        .addColumn('token_hash', 'text', (c) => c.primaryKey())
        .addColumn('spiffe_id', 'text')
        .addColumn('expires_at', int64, (c) => c.notNull())
        .addColumn('created_at', int64, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('join_tokens_expires_at').on('join_tokens').column('expires_at').execute();

      await db.schema
        .createTable('bundles')
        .addColumn('trust_domain', 'text', (c) => c.primaryKey())
        .addColumn('bundle', 'text', (c) => c.notNull())
        .addColumn('sequence', 'text', (c) => c.notNull())
        .addColumn('updated_at', int64, (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('federation_relationships')
        .addColumn('trust_domain', 'text', (c) => c.primaryKey())
        .addColumn('bundle_endpoint_url', 'text', (c) => c.notNull())
        .addColumn('profile', 'text', (c) => c.notNull())
        .addColumn('endpoint_spiffe_id', 'text')
        .addColumn('created_at', int64, (c) => c.notNull())
        .addColumn('updated_at', int64, (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('ca_journal')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('data', 'text', (c) => c.notNull())
        .addColumn('updated_at', int64, (c) => c.notNull())
        .execute();
    },
  },
];

/** The schema version this build writes. */
export const LATEST_SCHEMA_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;

export interface MigrationResult {
  readonly from: number;
  readonly to: number;
}

/**
 * Brings the schema to {@link LATEST_SCHEMA_VERSION}. Idempotent: a second call applies
 * nothing. Refuses (ERR_DATASTORE_SCHEMA_TOO_NEW) a database migrated by a newer build, whose
 * tables this build would misread.
 */
export async function migrate(engine: Engine, nowSeconds: number): Promise<MigrationResult> {
  return engine.write(async (tx) => {
    if (engine.kind === 'postgres') {
      // Transaction-scoped, so it is released on commit or rollback; keyed by schema so that
      // servers in other schemas of the same database do not wait for each other.
      await sql`select pg_advisory_xact_lock(hashtext('steeple.migrate.' || coalesce(current_schema(), '')))`.execute(
        tx,
      );
    }
    await tx.schema
      .createTable('schema_migrations')
      .ifNotExists()
      .addColumn('version', 'integer', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('applied_at', engine.kind === 'postgres' ? 'bigint' : 'integer', (c) => c.notNull())
      .execute();
    const rows = await tx.selectFrom('schema_migrations').select('version').execute();
    const applied = new Set(rows.map((r) => Number(r.version)));
    const from = Math.max(0, ...applied);
    if (from > LATEST_SCHEMA_VERSION) {
      throw new DatastoreError(
        'ERR_DATASTORE_SCHEMA_TOO_NEW',
        `datastore ${engine.description} has schema version ${from}, this build knows up to ${LATEST_SCHEMA_VERSION}: upgrade Steeple or restore a backup`,
      );
    }
    for (const m of MIGRATIONS) {
      if (applied.has(m.version)) continue;
      await m.up(tx as Kysely<Database>, engine.kind);
      await tx
        .insertInto('schema_migrations')
        .values({ version: m.version, name: m.name, applied_at: nowSeconds })
        .execute();
    }
    return { from, to: LATEST_SCHEMA_VERSION };
  });
}
