/**
 * The tables as Kysely sees them, identical on SQLite and PostgreSQL. Times and revisions
 * are 64-bit integers (INTEGER / BIGINT; the PostgreSQL pool parses int8 to a number),
 * booleans are 0/1 integers, lists are JSON text, and the bundle sequence is decimal TEXT
 * so that all 64 bits survive. The DDL is in migrations.ts.
 * @module
 */

export interface RegistrationEntryTable {
  id: string;
  spiffe_id: string;
  parent_id: string;
  /** SHA-256 of (spiffe_id, parent_id, selectors): unique, so duplicates are refused even under concurrent writers. */
  identity_hash: string;
  /** JSON array of {type, value}, canonical order. */
  selectors: string;
  selector_count: number;
  x509_svid_ttl: number;
  jwt_svid_ttl: number;
  /** JSON array of strings. */
  dns_names: string;
  /** JSON array of trust domain names, sorted. */
  federates_with: string;
  federates_with_count: number;
  admin: number;
  downstream: number;
  hint: string;
  expires_at: number | null;
  created_at: number;
  revision_number: number;
}

/** One row per selector of an entry, for indexed selector filters. */
export interface EntrySelectorTable {
  entry_id: string;
  type: string;
  value: string;
}

/** One row per federated trust domain of an entry, for indexed filters and bundle deletion. */
export interface EntryFederatesWithTable {
  entry_id: string;
  trust_domain: string;
}

export interface EntryEventTable {
  revision: number;
  entry_id: string;
  kind: string;
  created_at: number;
}

/** A single row (id = 1): the last revision handed out, and the prune horizon of entry_events. */
export interface RevisionCounterTable {
  id: number;
  value: number;
  /** Events with revision <= this were pruned; a delta sync must start at or after it. */
  pruned_through: number;
}

export interface AttestedAgentTable {
  spiffe_id: string;
  attestation_type: string;
  serial_number: string;
  expires_at: number;
  banned: number;
  /** JSON array of {type, value}, canonical order. */
  selectors: string;
  created_at: number;
  updated_at: number;
}

export interface JoinTokenTable {
  /** Hex SHA-256 of the token; the token itself is never stored. */
  token_hash: string;
  spiffe_id: string | null;
  expires_at: number;
  created_at: number;
}

export interface BundleTable {
  trust_domain: string;
  bundle: string;
  /** Decimal uint64. */
  sequence: string;
  updated_at: number;
}

export interface FederationRelationshipTable {
  trust_domain: string;
  bundle_endpoint_url: string;
  profile: string;
  endpoint_spiffe_id: string | null;
  created_at: number;
  updated_at: number;
}

export interface CaJournalTable {
  name: string;
  data: string;
  updated_at: number;
}

export interface SchemaMigrationTable {
  version: number;
  name: string;
  applied_at: number;
}

export interface Database {
  registration_entries: RegistrationEntryTable;
  entry_selectors: EntrySelectorTable;
  entry_federates_with: EntryFederatesWithTable;
  entry_events: EntryEventTable;
  revision_counter: RevisionCounterTable;
  attested_agents: AttestedAgentTable;
  join_tokens: JoinTokenTable;
  bundles: BundleTable;
  federation_relationships: FederationRelationshipTable;
  ca_journal: CaJournalTable;
  schema_migrations: SchemaMigrationTable;
}
