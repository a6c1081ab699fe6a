export { BundleSet } from './bundle-set.js';
export { JWT_SVID_USE, JwtBundle } from './jwt-bundle.js';
export type { BundleSource, JwtBundleSource, X509BundleSetSource, X509BundleSource } from './source.js';
export { MAX_SEQUENCE_NUMBER, SpiffeBundle, type SpiffeBundleInit, X509_SVID_USE } from './spiffe-bundle.js';
export { X509Bundle } from './x509-bundle.js';
