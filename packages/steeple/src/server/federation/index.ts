/**
 * SPIFFE federation on the server: the bundle endpoint that serves this trust domain's
 * bundle, the client that fetches a peer's, and the manager that keeps every federated
 * bundle current. The composition root calls {@link startFederation}.
 * @module
 */
export {
  DEFAULT_FETCH_TIMEOUT_MS,
  DEFAULT_MAX_BUNDLE_BYTES,
  DEFAULT_MAX_REDIRECTS,
  type EndpointAuthentication,
  type FetchBundleOptions,
  type FetchedBundle,
  fetchBundle,
} from './bundle-endpoint-client.js';
export {
  type BundleEndpointServer,
  type BundleEndpointServerOptions,
  type BundleEndpointTls,
  DEFAULT_FILE_SYNC_INTERVAL_MS,
  INTERMEDIATE_CIPHERS,
  startBundleEndpointServer,
  type TlsMaterial,
  type TlsMaterialSource,
  tlsMaterialFromSvidSource,
} from './bundle-endpoint-server.js';
export {
  type BundleEndpointConfig,
  bundleEndpointUrlProblem,
  DEFAULT_BUNDLE_ENDPOINT_PORT,
  DEFAULT_SERVED_REFRESH_HINT_SECONDS,
  displayUrl,
  type FederatesWithConfig,
  type FederationConfig,
  federationConfigIssues,
  federationConfigSchema,
} from './federation-config.js';
export {
  FederationError,
  type FederationErrorCode,
  type FederationFailureReason,
  isFederationError,
} from './federation-error.js';
export {
  DEFAULT_REFRESH_SECONDS,
  DEFAULT_RELATIONSHIP_SYNC_MS,
  FederationManager,
  type FederationManagerOptions,
  type FederationRelationshipSpec,
  type FederationRelationshipStatus,
  MAX_REFRESH_SECONDS,
  MIN_REFRESH_SECONDS,
  staticRelationshipsFrom,
} from './federation-manager.js';
export {
  type RunningFederation,
  type StartFederationOptions,
  startFederation,
  storedOwnBundle,
} from './start-federation.js';
