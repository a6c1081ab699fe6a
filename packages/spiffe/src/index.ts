/**
 * @steeple/spiffe — SPIFFE for Node.js: SPIFFE IDs, X.509-SVIDs, JWT-SVIDs, trust
 * bundles, the Workload API client, and mTLS for node:tls, https, http2 and undici with
 * SPIFFE authorizers.
 * @module
 */

export * from './core.js';
// Workload API
export * from './workload-api/index.js';
