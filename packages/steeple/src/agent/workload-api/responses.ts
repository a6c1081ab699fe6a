/**
 * Workload API response messages, built from a caller's view of the cache exactly as the
 * SPIFFE Workload API says: SVID chains as concatenated DER (leaf first), keys as PKCS#8
 * DER, X.509 bundles as concatenated DER certificates, JWT bundles as JWK Sets holding only
 * `jwt-svid` keys (each with its `kid`), and every map keyed by `spiffe://<trust domain>`
 * (W-6 – W-10).
 * @module
 */
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { SpiffeBundle } from '@steeple/spiffe';
import type {
  JWTBundlesResponseSchema,
  X509BundlesResponseSchema,
  X509SVIDResponseSchema,
} from '../../gen/spiffe/workload/workload_pb.js';
import { type BundleCache, bundleMapKey, jwtBundleJwks, x509BundleDer } from '../cache/bundle-cache.js';
import type { WorkloadIdentity } from '../cache/workload-cache.js';

export type X509SvidResponseInit = MessageInitShape<typeof X509SVIDResponseSchema>;
export type X509BundlesResponseInit = MessageInitShape<typeof X509BundlesResponseSchema>;
export type JwtBundlesResponseInit = MessageInitShape<typeof JWTBundlesResponseSchema>;

/** A signed identity that has not expired. */
export type ReadyIdentity = WorkloadIdentity & { readonly svid: NonNullable<WorkloadIdentity['svid']> };

/** The identities whose SVID is signed and still valid at `nowMs`, with later duplicates of a hint left out (W-6). */
export function readyIdentities(identities: readonly WorkloadIdentity[], nowMs: number): ReadyIdentity[] {
  const hints = new Set<string>();
  const out: ReadyIdentity[] = [];
  for (const identity of identities) {
    const svid = identity.svid;
    if (svid === undefined || svid.notAfter <= nowMs) continue;
    const hint = identity.entry.hint;
    if (hint !== '') {
      if (hints.has(hint)) continue;
      hints.add(hint);
    }
    out.push(identity as ReadyIdentity);
  }
  return out;
}

/** The bundles of the federated trust domains that the agent has, in order. */
function federatedBundles(bundles: BundleCache, federatesWith: readonly string[]): SpiffeBundle[] {
  const out: SpiffeBundle[] = [];
  for (const td of federatesWith) {
    const b = bundles.federated(td);
    if (b !== undefined) out.push(b);
  }
  return out;
}

export function x509SvidResponse(
  identities: readonly ReadyIdentity[],
  bundles: BundleCache,
  federatesWith: readonly string[],
): X509SvidResponseInit {
  const own = x509BundleDer(bundles.own);
  const federated: Record<string, Uint8Array> = {};
  for (const b of federatedBundles(bundles, federatesWith))
    federated[bundleMapKey(b.trustDomain.name)] = x509BundleDer(b);
  return {
    svids: identities.map(({ entry, svid }) => ({
      spiffeId: svid.spiffeId,
      x509Svid: svid.chainDer,
      x509SvidKey: svid.keyDer,
      bundle: own,
      hint: entry.hint,
    })),
    federatedBundles: federated,
  };
}

export function x509BundlesResponse(bundles: BundleCache, federatesWith: readonly string[]): X509BundlesResponseInit {
  const map: Record<string, Uint8Array> = { [bundleMapKey(bundles.trustDomain)]: x509BundleDer(bundles.own) };
  for (const b of federatedBundles(bundles, federatesWith)) map[bundleMapKey(b.trustDomain.name)] = x509BundleDer(b);
  return { bundles: map };
}

export function jwtBundlesResponse(bundles: BundleCache, federatesWith: readonly string[]): JwtBundlesResponseInit {
  const map: Record<string, Uint8Array> = { [bundleMapKey(bundles.trustDomain)]: jwtBundleJwks(bundles.own) };
  for (const b of federatedBundles(bundles, federatesWith)) map[bundleMapKey(b.trustDomain.name)] = jwtBundleJwks(b);
  return { bundles: map };
}

const objectIds = new WeakMap<object, number>();
let nextObjectId = 1;

/** A number standing for one object (a bundle), so "did anything a stream shows change" is a string compare. */
export function objectId(o: object): number {
  let id = objectIds.get(o);
  if (id === undefined) {
    id = nextObjectId++;
    objectIds.set(o, id);
  }
  return id;
}

/** What a bundle stream shows, as a string: the bundle objects of the trust domains it carries. */
export function bundlesStateKey(bundles: BundleCache, federatesWith: readonly string[]): string {
  return [objectId(bundles.own), ...federatedBundles(bundles, federatesWith).map(objectId)].join(',');
}

/** What an X.509-SVID stream shows, as a string. */
export function x509StateKey(
  identities: readonly ReadyIdentity[],
  bundles: BundleCache,
  federatesWith: readonly string[],
): string {
  const svids = identities.map((i) => `${i.entry.id}/${i.svid.serial}/${i.entry.hint}`).join(';');
  return `${svids}|${bundlesStateKey(bundles, federatesWith)}`;
}
