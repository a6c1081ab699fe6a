/**
 * The server datastore: open it with {@link openDatastore}; keep an {@link EntryCache} for
 * authorization lookups. Nothing outside server/ imports this.
 * @module
 */
export type { AgentStore } from './agent-store.js';
export { computeAuthorizedEntries, EntryIndex, isNodeAlias, serverIdFor } from './authorized-entries.js';
export type { BundleDeleteResult, BundleStore } from './bundle-store.js';
export type { CaJournalStore, JournalRecord } from './ca-journal-store.js';
export { type Datastore, type DatastoreConfig, type DatastoreOptions, openDatastore } from './datastore.js';
export { DatastoreError, type DatastoreErrorCode, isDatastoreError } from './datastore-error.js';
export { EntryCache, type EntryCacheSyncResult, type EntryChangeSource } from './entry-cache.js';
export type { EntryStore } from './entry-store.js';
export type { FederationStore } from './federation-store.js';
export type { JoinTokenStore } from './join-token-store.js';
export { matchesSet, normalizeSelectors, selectorKey } from './selector-set.js';
export { LATEST_SCHEMA_VERSION } from './sql/migrations.js';
export type * from './types.js';
