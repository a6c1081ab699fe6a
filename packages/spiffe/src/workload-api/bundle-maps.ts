/**
 * Decoding the trust-domain-keyed bundle maps of the Workload API (W-7, W-8, W-10).
 * @module
 */
import { BundleSet } from '../bundle/bundle-set.js';
import { JwtBundle } from '../bundle/jwt-bundle.js';
import { X509Bundle } from '../bundle/x509-bundle.js';
import { quote, SpiffeIdError } from '../errors.js';
import { TrustDomain } from '../spiffeid/trust-domain.js';
import { badResponse, located } from './response-errors.js';

/**
 * The trust domain of a map key. SPIRE sends the trust domain's SPIFFE ID (`spiffe://td`);
 * a bare name (`td`) is accepted too, as go-spiffe does (W-8).
 */
export function trustDomainOfKey(key: string, where: string): TrustDomain {
  const td = TrustDomain.tryParse(key);
  if (td instanceof SpiffeIdError) {
    throw badResponse(`${where} key ${quote(key)} is not a trust domain: ${td.rule} (W-8)`);
  }
  return td;
}

function decodeMap<B>(
  map: { readonly [key: string]: Uint8Array },
  where: string,
  parse: (td: TrustDomain, value: Uint8Array) => B,
  skip: ReadonlySet<string> = new Set(),
): Map<string, B> {
  const out = new Map<string, B>();
  for (const [key, value] of Object.entries(map)) {
    const td = trustDomainOfKey(key, where);
    if (skip.has(td.name)) continue;
    if (out.has(td.name)) {
      throw badResponse(`${where} names trust domain "${td.name}" twice (as "${td.name}" and "${td.idString()}")`);
    }
    try {
      out.set(td.name, parse(td, value));
    } catch (err) {
      throw located(`${where}[${JSON.stringify(key)}]`, err);
    }
  }
  return out;
}

/** X.509 bundles keyed by trust domain, each value concatenated DER certificates. */
export function decodeX509BundleMap(
  map: { readonly [key: string]: Uint8Array },
  where: string,
  skip?: ReadonlySet<string>,
): Map<string, X509Bundle> {
  return decodeMap(map, where, (td, der) => X509Bundle.parseRaw(td, der), skip);
}

/** FetchX509Bundles' `bundles`: must hold at least the endpoint's own trust domain (W-7). */
export function x509BundleSetFromMap(map: { readonly [key: string]: Uint8Array }): BundleSet {
  const bundles = decodeX509BundleMap(map, 'X509BundlesResponse.bundles');
  if (bundles.size === 0)
    throw badResponse('X509BundlesResponse.bundles is empty; it must hold the own trust domain (W-7)');
  return BundleSet.of(...bundles.values());
}

/** FetchJWTBundles' `bundles`: JWK Set documents; must hold at least the own trust domain (W-10). */
export function jwtBundleSetFromMap(map: { readonly [key: string]: Uint8Array }): BundleSet {
  const bundles = decodeMap(map, 'JWTBundlesResponse.bundles', (td, json) => JwtBundle.parse(td, json));
  if (bundles.size === 0)
    throw badResponse('JWTBundlesResponse.bundles is empty; it must hold the own trust domain (W-10)');
  return BundleSet.of(...bundles.values());
}
