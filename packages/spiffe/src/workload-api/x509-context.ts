/**
 * The X.509 context a workload gets from FetchX509SVID, and how a response is decoded
 * into one (W-3, W-4, W-6, W-8).
 * @module
 */
import { BundleSet } from '../bundle/bundle-set.js';
import { X509Bundle } from '../bundle/x509-bundle.js';
import { quote } from '../errors.js';
import type { X509SVIDResponse } from '../gen/spiffe/workload/workload_pb.js';
import { X509Svid } from '../svid/x509-svid.js';
import { decodeX509BundleMap } from './bundle-maps.js';
import { badResponse, located } from './response-errors.js';

/**
 * Everything FetchX509SVID delivers in one message: the complete current state, never a
 * delta (W-3). A bundle missing from a later context has been removed (W-4).
 */
export interface X509Context {
  /** The workload's X.509-SVIDs; the first is its default identity (W-6). Never empty. */
  readonly svids: readonly X509Svid[];
  /**
   * The X.509 trust bundles: those of the SVIDs' own trust domains and the federated
   * ones. Verification picks the bundle of the peer's trust domain from this set.
   */
  readonly bundles: BundleSet;
}

/**
 * Decodes an X509SVIDResponse. Throws {@link X509SvidError} (bad certificate or key,
 * key mismatch), {@link BundleError} (bad bundle DER) or {@link WorkloadApiError}
 * `ERR_WORKLOADAPI_RESPONSE` (no SVIDs, a `spiffe_id` that differs from the certificate,
 * an empty mandatory field, a bad map key); the error says where in the response.
 */
export function x509ContextFromResponse(res: X509SVIDResponse): X509Context {
  if (res.svids.length === 0) throw badResponse('X509SVIDResponse holds no SVIDs; at least one is required (W-6)');
  const hints = new Set<string>();
  const svids: X509Svid[] = [];
  const own = new Map<string, X509Bundle>();
  res.svids.forEach((s, i) => {
    // Hints are unique within a response; on a duplicate the first SVID wins (W-6).
    if (s.hint !== '') {
      if (hints.has(s.hint)) return;
      hints.add(s.hint);
    }
    const where = `svids[${i}]`;
    if (s.spiffeId === '') throw badResponse(`${where}.spiffe_id is empty (W-5, W-6)`);
    let svid: X509Svid;
    try {
      svid = X509Svid.parseRaw(s.x509Svid, s.x509SvidKey, s.hint === '' ? {} : { hint: s.hint });
    } catch (err) {
      throw located(`${where} (${quote(s.spiffeId)})`, err);
    }
    if (s.spiffeId !== svid.id.toString()) {
      throw badResponse(
        `${where}.spiffe_id ${quote(s.spiffeId)} differs from the certificate's SPIFFE ID "${svid.id}" (W-6)`,
      );
    }
    if (s.bundle.length === 0) throw badResponse(`${where}.bundle is empty for ${svid.id} (W-5, W-6)`);
    const td = svid.id.trustDomain;
    if (!own.has(td.name)) {
      try {
        own.set(td.name, X509Bundle.parseRaw(td, s.bundle));
      } catch (err) {
        throw located(`${where}.bundle`, err);
      }
    }
    svids.push(svid);
  });
  // Federated bundles are foreign trust domains only; an entry for an SVID's own trust
  // domain must not replace the bundle that came with the SVID.
  const federated = decodeX509BundleMap(res.federatedBundles, 'federated_bundles', new Set(own.keys()));
  return Object.freeze({
    svids: Object.freeze(svids),
    bundles: BundleSet.of(...own.values(), ...federated.values()),
  });
}
