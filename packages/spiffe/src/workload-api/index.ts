/**
 * The SPIFFE Workload API from the workload's side: a client, and live sources of
 * X.509-SVIDs, JWT-SVIDs and bundles that plug into the SDK's TLS and JWT helpers.
 * @module
 */

export {
  defaultWorkloadApiAddress,
  parseWorkloadApiAddress,
  resolveWorkloadApiAddress,
  SPIFFE_ENDPOINT_SOCKET,
  type WorkloadApiAddress,
} from './address.js';
export { type Backoff, type BackoffOptions, createBackoff } from './backoff.js';
export { WorkloadApiBundleSource, type WorkloadApiBundleSourceOptions } from './bundle-source.js';
export {
  createWorkloadApiClient,
  type FetchJwtSvidParams,
  type WatchHandler,
  WORKLOAD_API_SECURITY_HEADER,
  WorkloadApiClient,
  type WorkloadApiClientOptions,
  type WorkloadApiLogger,
} from './client.js';
export { JwtSource, type JwtSourceOptions } from './jwt-source.js';
export type { WorkloadApiSourceOptions } from './source-lifecycle.js';
export type { X509Context } from './x509-context.js';
export { X509Source, type X509SourceOptions } from './x509-source.js';
