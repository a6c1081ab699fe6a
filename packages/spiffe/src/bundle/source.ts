import type { TrustDomain } from '../spiffeid/trust-domain.js';
import type { JwtBundle } from './jwt-bundle.js';
import type { X509Bundle } from './x509-bundle.js';

/**
 * Anything that can hand out the current X.509 bundle of a trust domain: a static
 * bundle, a {@link BundleSet}, or a live Workload API source. TLS and verification
 * code never knows which one it has. Returns undefined when the trust domain is unknown.
 */
export interface X509BundleSource {
  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle | undefined;
}

/** Anything that can hand out the current JWT bundle of a trust domain. */
export interface JwtBundleSource {
  getJwtBundleForTrustDomain(td: TrustDomain): JwtBundle | undefined;
}

/** Both kinds of bundle, per trust domain. */
export interface BundleSource extends X509BundleSource, JwtBundleSource {}

/**
 * A source that can also list every X.509 bundle it holds. TLS needs this: OpenSSL
 * checks a peer's chain against the union of trust anchors during the handshake, and
 * the SPIFFE check then confirms that the anchor belongs to the peer's own trust domain.
 * Return the same bundle objects while nothing changes, so that TLS contexts are reused.
 */
export interface X509BundleSetSource extends X509BundleSource {
  getX509Bundles(): readonly X509Bundle[];
}
