/**
 * The server's records as plain, immutable TypeScript values. These are the datastore's
 * own types (not protobuf messages): the API layer converts at its edge. Times are epoch
 * seconds, because every engine stores them exactly as integers.
 * @module
 */

/** A selector such as `{ type: 'unix', value: 'uid:1000' }`; the type never contains ':'. */
export interface Selector {
  readonly type: string;
  readonly value: string;
}

/**
 * "A workload on a node attested as `parentId`, matching all `selectors`, is `spiffeId`."
 * An entry whose parent is `spiffe://<td>/spire/server` is a node alias (as in SPIRE): its
 * `spiffeId` becomes an extra parent for every agent whose node selectors include its own.
 */
export interface RegistrationEntry {
  /** Server-generated UUID. */
  readonly id: string;
  readonly spiffeId: string;
  readonly parentId: string;
  /** Sorted by type then value, no duplicates. */
  readonly selectors: readonly Selector[];
  /** Seconds; 0 means the server's default. */
  readonly x509SvidTtl: number;
  /** Seconds; 0 means the server's default. */
  readonly jwtSvidTtl: number;
  /** DNS SANs in the order given (the first one is the certificate's CN in SPIRE), no duplicates. */
  readonly dnsNames: readonly string[];
  /** Trust domain names whose bundles the workload receives; sorted, no duplicates. */
  readonly federatesWith: readonly string[];
  readonly admin: boolean;
  readonly downstream: boolean;
  /** Free-form hint for workloads that receive several SVIDs; '' when unset. */
  readonly hint: string;
  /** Epoch seconds after which the entry is void, or null for never. */
  readonly expiresAt: number | null;
  /** Epoch seconds. */
  readonly createdAt: number;
  /**
   * The global revision of this entry's last change (see EntryStore.currentRevision).
   * It only grows, so comparing two copies of an entry tells which is newer.
   */
  readonly revisionNumber: number;
}

/** What a caller supplies to create an entry; the store assigns id, createdAt and revisionNumber. */
export interface NewEntry {
  readonly spiffeId: string;
  readonly parentId: string;
  readonly selectors: readonly Selector[];
  readonly x509SvidTtl?: number;
  readonly jwtSvidTtl?: number;
  readonly dnsNames?: readonly string[];
  readonly federatesWith?: readonly string[];
  readonly admin?: boolean;
  readonly downstream?: boolean;
  readonly hint?: string;
  readonly expiresAt?: number | null;
}

/** A partial update: absent fields stay as they are; `expiresAt: null` clears the expiry. */
export type EntryUpdate = Partial<NewEntry>;

/**
 * How a set on a record is compared with the set in a filter (SPIRE's `-matchSelectorsOn`):
 * - `exact`: the record's set equals the filter's set;
 * - `subset`: the record's set is contained in the filter's set (what a workload with these
 *   selectors would be issued);
 * - `superset`: the record's set contains every element of the filter's set;
 * - `any`: the sets share at least one element.
 */
export type SetMatch = 'exact' | 'subset' | 'superset' | 'any';

export interface EntryFilter {
  readonly spiffeId?: string;
  readonly parentId?: string;
  readonly selectors?: { readonly selectors: readonly Selector[]; readonly match: SetMatch };
  readonly federatesWith?: { readonly trustDomains: readonly string[]; readonly match: SetMatch };
  readonly hint?: string;
  readonly downstream?: boolean;
}

/** Keyset pagination: pass the previous page's `nextPageToken` to get the next page. */
export interface PageRequest {
  /** Omit (or 0) for all records in one page. */
  readonly pageSize?: number;
  readonly pageToken?: string;
}

export interface Page<T> {
  readonly items: readonly T[];
  /** Present when more records follow; opaque to callers. */
  readonly nextPageToken: string | undefined;
}

export type EntryEventKind = 'created' | 'updated' | 'deleted';

/** One change to the entries, in revision order; deleted entries appear only by id. */
export interface EntryEvent {
  readonly revision: number;
  readonly entryId: string;
  readonly kind: EntryEventKind;
  /** Epoch seconds of the change. */
  readonly at: number;
}

/**
 * The changes after a revision, read in one snapshot: the events, and the current state of
 * every entry that they name and that still exists. An entry named by an event but absent
 * from `entries` has been deleted.
 */
export interface EntryChanges {
  /** The revision these changes start after. */
  readonly since: number;
  readonly events: readonly EntryEvent[];
  readonly entries: readonly RegistrationEntry[];
  /** The revision the caller is at after applying these changes. */
  readonly revision: number;
  /** True when `limit` cut the events short; ask again from `revision`. */
  readonly more: boolean;
}

/** An attested node. */
export interface AttestedAgent {
  readonly spiffeId: string;
  /** The node attestor that admitted it: 'join_token', 'x509pop', … */
  readonly attestationType: string;
  /** Serial number of the agent's current SVID (hex or decimal, as the CA writes it). */
  readonly serialNumber: string;
  /** Epoch seconds when the agent's SVID expires. */
  readonly expiresAt: number;
  /** A banned agent can neither renew nor re-attest until it is evicted (deleted). */
  readonly banned: boolean;
  /** Node selectors from attestation; sorted, no duplicates. */
  readonly selectors: readonly Selector[];
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface NewAgent {
  readonly spiffeId: string;
  readonly attestationType: string;
  readonly serialNumber: string;
  readonly expiresAt: number;
  readonly selectors?: readonly Selector[];
}

export type AgentUpdate = Partial<Omit<NewAgent, 'spiffeId'>>;

export interface AgentFilter {
  readonly attestationType?: string;
  readonly banned?: boolean;
  /** Agents whose SVID expires strictly before this epoch second. */
  readonly expiresBefore?: number;
}

/** A single-use join token. The store keeps only its SHA-256, so a copy of the database cannot attest. */
export interface JoinToken {
  readonly token: string;
  /** Optional SPIFFE ID the agent gets as an extra parent (an alias), as SPIRE's `-spiffeID`. */
  readonly spiffeId?: string;
  /** Epoch seconds. */
  readonly expiresAt: number;
}

/** A trust bundle of the server's own or a federated trust domain. */
export interface StoredBundle {
  readonly trustDomain: string;
  /** The SPIFFE bundle JSON document (a JWK Set), stored verbatim. */
  readonly bundle: string;
  /** `spiffe_sequence`, a uint64 kept exactly. */
  readonly sequence: bigint;
  readonly updatedAt: number;
}

export interface BundleInput {
  readonly trustDomain: string;
  readonly bundle: string;
  readonly sequence: bigint;
}

/**
 * What to do with entries that federate with a trust domain whose bundle is deleted (SPIRE's
 * delete modes): refuse (`restrict`, the default), drop the trust domain from those entries
 * (`dissociate`), or delete those entries (`delete`).
 */
export type BundleDeleteMode = 'restrict' | 'dissociate' | 'delete';

export type BundleEndpointProfile = 'https_web' | 'https_spiffe';

/** How this server fetches a federated trust domain's bundle. */
export interface FederationRelationship {
  readonly trustDomain: string;
  readonly bundleEndpointUrl: string;
  readonly profile: BundleEndpointProfile;
  /** For `https_spiffe`: the SPIFFE ID the endpoint server must present. */
  readonly endpointSpiffeId?: string;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface FederationRelationshipInput {
  readonly trustDomain: string;
  readonly bundleEndpointUrl: string;
  readonly profile: BundleEndpointProfile;
  readonly endpointSpiffeId?: string;
}

/** A partial update; `endpointSpiffeId: null` clears it. */
export interface FederationRelationshipUpdate {
  readonly bundleEndpointUrl?: string;
  readonly profile?: BundleEndpointProfile;
  readonly endpointSpiffeId?: string | null;
}
