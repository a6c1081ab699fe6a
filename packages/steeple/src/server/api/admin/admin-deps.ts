/**
 * What the admin API needs from the rest of the server. The interfaces are narrow on purpose:
 * the composition root (server.ts) adapts the real CA, datastore and federation to them, and
 * tests pass fakes.
 * @module
 */
import type { KeyObject } from 'node:crypto';
import type { Clock, SpiffeBundle, SpiffeId, TrustDomain } from '@steeple/spiffe';
import type { Logger } from '../../../common/logger.js';
import type { Metrics } from '../../../common/metrics.js';
import type { AttestedAgent, Datastore } from '../../datastore/index.js';
import type { FederationRelationshipStatus } from '../../federation/federation-manager.js';

/** The CA operations the admin API uses (MintX509Svid, MintJwtSvid, GetBundle). */
export interface AdminCa {
  /**
   * Signs an X.509-SVID for `publicKey`. `ttlSeconds` is already resolved (never 0); the CA caps
   * it so the SVID does not outlive the signing CA. `certificates` are DER, leaf first, then
   * intermediates up to (not including) the root.
   */
  signX509Svid(req: {
    publicKey: KeyObject;
    spiffeId: SpiffeId;
    ttlSeconds: number;
    dnsNames: string[];
  }): Promise<{ certificates: Buffer[]; expiresAt: Date }>;
  /** Mints a JWT-SVID; `ttlSeconds` is already resolved (never 0). */
  mintJwtSvid(req: {
    spiffeId: SpiffeId;
    audience: string[];
    ttlSeconds: number;
  }): Promise<{ token: string; expiresAt: Date; issuedAt: Date }>;
  /** The trust domain's current bundle (X.509 and JWT authorities, sequence number). */
  bundle(): SpiffeBundle;
}

/** One component in a health report. */
export interface ComponentHealth {
  readonly name: string;
  readonly healthy: boolean;
  /** Why it is unhealthy; empty when healthy. */
  readonly message?: string;
}

/** The stores the admin API reads and writes. */
export type AdminDatastore = Pick<Datastore, 'entries' | 'agents' | 'joinTokens' | 'bundles' | 'federation'>;

/** What a mutating admin call changed, for listeners such as the agent API's change stream. */
export type AdminChange = 'entries' | 'agents' | 'bundles' | 'federation';

export interface AdminDeps {
  /** The server's trust domain: entry and SVID IDs must be members of it. */
  readonly trustDomain: TrustDomain;
  readonly datastore: AdminDatastore;
  readonly ca: AdminCa;
  /**
   * Parses a PKCS#10 CSR (DER), verifies its self-signature (proof of possession) and returns its
   * public key. Throws (any error; its message is sent back as `csr: <message>`) when the CSR is
   * malformed, unsigned, or uses a key type the CA refuses.
   */
  readonly parseCsr: (der: Uint8Array) => KeyObject;
  /** Lifetimes used when a mint request says 0 (config `default_x509_svid_ttl`, `default_jwt_svid_ttl`). */
  readonly svidDefaults: { readonly x509TtlSeconds: number; readonly jwtTtlSeconds: number };
  readonly logger: Logger;
  /** Default: the system clock. */
  readonly clock?: Clock;
  /** When set, `steeple_admin_api_calls_total{method,code}` and a latency histogram are recorded. */
  readonly metrics?: Metrics;
  /**
   * Health of the parts the admin API cannot see itself (agent API listener, federation...). The
   * datastore and the CA are always checked.
   */
  readonly healthChecks?: () => Promise<readonly ComponentHealth[]> | readonly ComponentHealth[];
  /**
   * Fetches a federated trust domain's bundle from its endpoint now and stores it. Absent until
   * federation exists; RefreshBundle then answers Unimplemented.
   */
  readonly refreshBundle?: (trustDomain: TrustDomain) => Promise<SpiffeBundle>;
  /**
   * Every relationship the federation component runs, with how fetching is going
   * (FederationManager.status()): the config file's (`federates_with`, source `config`) and the
   * datastore's. Absent: relationships are listed from the datastore only, without status.
   */
  readonly federationStatus?: () => readonly FederationRelationshipStatus[];
  /** Called after every successful change, e.g. to wake the agent API's change stream. */
  readonly onChange?: (what: AdminChange) => void;
  /**
   * Whether an agent may attest again with the same method. Default: every method but
   * `join_token` (a join token is single use).
   */
  readonly canReattest?: (agent: AttestedAgent) => boolean;
  /** Makes a new join token. Default: a random UUID v4, as SPIRE does. */
  readonly generateJoinToken?: () => string;
}
