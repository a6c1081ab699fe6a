/**
 * `@steeple/spiffe/core` — everything in `@steeple/spiffe` except the Workload API client:
 * SPIFFE IDs, SVIDs, bundles, errors and the mTLS helpers. For programs that get their
 * identity another way (files, their own source) and should not load the gRPC stack the
 * Workload API client needs (about 17 MiB resident).
 * @module
 */

export { BundleSet } from './bundle/bundle-set.js';
export { JwtBundle } from './bundle/jwt-bundle.js';
export type { BundleSource, JwtBundleSource, X509BundleSetSource, X509BundleSource } from './bundle/source.js';
export { SpiffeBundle, type SpiffeBundleInit } from './bundle/spiffe-bundle.js';
// Bundles
export { X509Bundle } from './bundle/x509-bundle.js';
export { type Clock, systemClock, type TimerHandle } from './clock.js';
// Errors and time
export {
  AuthorizationError,
  BundleError,
  JwtSvidError,
  PolicyError,
  type PolicyIssue,
  SpiffeError,
  type SpiffeErrorCode,
  SpiffeIdError,
  WorkloadApiError,
  type WorkloadApiErrorCode,
  X509SvidError,
} from './errors.js';
// Identities
export {
  MAX_ID_BYTES,
  MAX_TRUST_DOMAIN_BYTES,
  type Matcher,
  matchAny,
  matchId,
  matchMemberOf,
  matchOneOf,
  SpiffeId,
  TrustDomain,
} from './spiffeid/index.js';
// SVIDs
export * from './svid/index.js';
// mTLS
export * from './tls/index.js';
