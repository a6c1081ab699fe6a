/**
 * Opens the server's datastore from its config and exposes one store per aggregate.
 *
 * ```ts
 * const ds = await openDatastore({ type: 'sqlite', path: `${dataDir}/datastore.sqlite3` });
 * const entry = await ds.entries.create({ spiffeId, parentId, selectors: [{ type: 'unix', value: 'uid:1000' }] });
 * const cache = await EntryCache.load(ds.entries);          // then cache.sync(ds.entries) on every change
 * await ds.close();
 * ```
 * @module
 */

import { sql } from 'kysely';
import { AgentStore } from './agent-store.js';
import { BundleStore } from './bundle-store.js';
import { CaJournalStore } from './ca-journal-store.js';
import { EntryStore } from './entry-store.js';
import { FederationStore } from './federation-store.js';
import { JoinTokenStore } from './join-token-store.js';
import { type Engine, type EngineKind, guarded } from './sql/engine.js';
import { type MigrationResult, migrate } from './sql/migrations.js';
import { openPostgresEngine } from './sql/postgres.js';
import { openSqliteEngine } from './sql/sqlite.js';

/** The `datastore` section of the server config (SPIRE-like key names). */
export type DatastoreConfig =
  | { readonly type: 'sqlite'; readonly path: string }
  | { readonly type: 'postgres'; readonly connection_string: string };

export interface DatastoreOptions {
  /** Source of "now" for createdAt/updatedAt (default: the system clock). */
  readonly clock?: { now(): Date };
  /** SQLite only: 'full' (default, survives power loss) or 'normal' (survives process crashes). */
  readonly sqliteSynchronous?: 'full' | 'normal';
  /** PostgreSQL only: pool size (default 10). */
  readonly maxConnections?: number;
}

export interface Datastore {
  readonly engine: EngineKind;
  /** Where the data lives, without secrets (for logs). */
  readonly description: string;
  /** What opening did to the schema: `from` equals `to` when nothing needed migrating. */
  readonly migration: MigrationResult;
  readonly entries: EntryStore;
  readonly agents: AgentStore;
  readonly joinTokens: JoinTokenStore;
  readonly bundles: BundleStore;
  readonly federation: FederationStore;
  readonly caJournal: CaJournalStore;
  /** Resolves when the database answers a trivial query; ERR_DATASTORE_UNAVAILABLE otherwise (for /ready). */
  healthCheck(): Promise<void>;
  /** Closes the connections; pending operations finish first. */
  close(): Promise<void>;
}

/**
 * Connects, migrates the schema to this build's version, and returns the stores. Fails with
 * ERR_DATASTORE_UNAVAILABLE when the database cannot be opened or reached, and with
 * ERR_DATASTORE_SCHEMA_TOO_NEW when a newer build has migrated it.
 */
export async function openDatastore(config: DatastoreConfig, options: DatastoreOptions = {}): Promise<Datastore> {
  const clock = options.clock ?? { now: () => new Date() };
  const now = () => Math.floor(clock.now().getTime() / 1000);
  let engine: Engine;
  if (config.type === 'sqlite') {
    // better-sqlite3 would open a private temporary database for '', losing everything at close.
    if (!config.path) throw new TypeError('datastore path must not be empty');
    engine = openSqliteEngine({
      path: config.path,
      ...(options.sqliteSynchronous ? { synchronous: options.sqliteSynchronous } : {}),
    });
  } else if (config.type === 'postgres') {
    engine = await openPostgresEngine({
      connectionString: config.connection_string,
      ...(options.maxConnections ? { maxConnections: options.maxConnections } : {}),
    });
  } else {
    throw new TypeError(`unknown datastore type ${JSON.stringify((config as { type: unknown }).type)}`);
  }
  let migration: MigrationResult;
  try {
    migration = await migrate(engine, now());
  } catch (err) {
    await engine.close().catch(() => undefined);
    throw err;
  }
  return {
    engine: engine.kind,
    description: engine.description,
    migration,
    entries: new EntryStore(engine, now),
    agents: new AgentStore(engine, now),
    joinTokens: new JoinTokenStore(engine, now),
    bundles: new BundleStore(engine, now),
    federation: new FederationStore(engine, now),
    caJournal: new CaJournalStore(engine, now),
    healthCheck: () =>
      guarded(engine, async () => {
        await sql`select 1`.execute(engine.db);
      }),
    close: () => engine.close(),
  };
}
