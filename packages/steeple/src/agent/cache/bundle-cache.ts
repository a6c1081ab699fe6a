/**
 * The trust bundles the agent hands to workloads: its own trust domain's and the
 * federated ones its entries name in `federates_with`. Each bundle's wire encodings
 * (concatenated DER for the X.509 authorities, a JWK Set of `jwt-svid` keys) are built
 * once per bundle, not once per response.
 * @module
 */
import { type SpiffeBundle, TrustDomain } from '@steeple/spiffe';

const x509Memo = new WeakMap<SpiffeBundle, Buffer>();
const jwksMemo = new WeakMap<SpiffeBundle, Buffer>();

/** The X.509 authorities as concatenated DER (W-6, W-7). */
export function x509BundleDer(bundle: SpiffeBundle): Buffer {
  let der = x509Memo.get(bundle);
  if (der === undefined) {
    der = Buffer.concat(bundle.x509Authorities.map((c) => c.raw));
    x509Memo.set(bundle, der);
  }
  return der;
}

/** The JWT authorities as a JWK Set with only `jwt-svid` keys, each with its `kid` (W-10). */
export function jwtBundleJwks(bundle: SpiffeBundle): Buffer {
  let jwks = jwksMemo.get(bundle);
  if (jwks === undefined) {
    jwks = Buffer.from(bundle.jwtBundle().marshal(), 'utf8');
    jwksMemo.set(bundle, jwks);
  }
  return jwks;
}

/** The map key of a trust domain in Workload API responses: `spiffe://td`, as SPIRE sends (W-8). */
export function bundleMapKey(trustDomain: string): string {
  return `spiffe://${trustDomain}`;
}

export class BundleCache {
  #own: SpiffeBundle;
  #federated = new Map<string, SpiffeBundle>();
  #revision = 0n;

  constructor(own: SpiffeBundle) {
    this.#own = own;
  }

  get own(): SpiffeBundle {
    return this.#own;
  }

  get trustDomain(): string {
    return this.#own.trustDomain.name;
  }

  /** The revision of the last GetBundles applied; 0 before the first. */
  get revision(): bigint {
    return this.#revision;
  }

  federated(td: string): SpiffeBundle | undefined {
    return this.#federated.get(td);
  }

  federatedTrustDomains(): string[] {
    return [...this.#federated.keys()];
  }

  /**
   * Replaces the bundles with a GetBundles answer. Returns which trust domains changed
   * (own included), so only streams that carry one of them are told.
   */
  replace(own: SpiffeBundle, federated: readonly SpiffeBundle[], revision: bigint): Set<string> {
    const changed = new Set<string>();
    if (!own.equals(this.#own)) {
      this.#own = own;
      changed.add(own.trustDomain.name);
    }
    const next = new Map<string, SpiffeBundle>();
    for (const b of federated) {
      const td = b.trustDomain.name;
      if (td === this.trustDomain) continue; // never let a federated copy shadow the own bundle
      const before = this.#federated.get(td);
      if (before?.equals(b)) next.set(td, before);
      else {
        next.set(td, b);
        changed.add(td);
      }
    }
    for (const td of this.#federated.keys()) if (!next.has(td)) changed.add(td);
    this.#federated = next;
    this.#revision = revision;
    return changed;
  }

  /** A JwtBundleSource over the own and every federated bundle, for validating JWT-SVIDs. */
  bundleFor(td: TrustDomain | string): SpiffeBundle | undefined {
    const name = TrustDomain.from(td).name;
    return name === this.trustDomain ? this.#own : this.#federated.get(name);
  }
}
