import { BundleError, SpiffeIdError } from '../errors.js';
import { stringifyJson } from '../internal/strict-json.js';
import { TrustDomain } from '../spiffeid/trust-domain.js';
import { isJsonObject, JwtBundle, parseBundleJson } from './jwt-bundle.js';
import type { BundleSource, X509BundleSetSource } from './source.js';
import { SpiffeBundle, spiffeBundleDocument, spiffeBundleFromJson } from './spiffe-bundle.js';
import { X509Bundle } from './x509-bundle.js';

/**
 * The bundles of several trust domains, at most one per trust domain: the set of trust
 * domains a workload trusts (its own and its federated ones). Immutable; `with` and
 * `without` return new sets. Verification asks it for the bundle of the peer's own trust
 * domain only (X-13, J-9).
 */
export class BundleSet implements BundleSource, X509BundleSetSource {
  readonly #bundles: ReadonlyMap<string, SpiffeBundle>;
  #x509Bundles: readonly X509Bundle[] | undefined;

  private constructor(bundles: ReadonlyMap<string, SpiffeBundle>) {
    this.#bundles = bundles;
  }

  /**
   * A set of the given bundles. An {@link X509Bundle} and a {@link JwtBundle} of the same
   * trust domain are combined into one {@link SpiffeBundle}; any other second bundle for a
   * trust domain (two SpiffeBundles, two X509Bundles, a SpiffeBundle and an X509Bundle, …)
   * is ambiguous and throws a {@link BundleError} (ERR_BUNDLE_INVALID) naming the trust domain.
   */
  static of(...bundles: readonly (SpiffeBundle | X509Bundle | JwtBundle)[]): BundleSet {
    const parts = new Map<string, { spiffe?: SpiffeBundle; x509?: X509Bundle; jwt?: JwtBundle }>();
    for (const b of bundles) {
      const name = b.trustDomain.name;
      const slot = parts.get(name) ?? {};
      const clash = (): BundleError =>
        new BundleError(
          'ERR_BUNDLE_INVALID',
          `bundle set: more than one bundle of the same kind for trust domain "${name}"`,
        );
      if (b instanceof SpiffeBundle) {
        if (slot.spiffe || slot.x509 || slot.jwt) throw clash();
        slot.spiffe = b;
      } else if (b instanceof X509Bundle) {
        if (slot.spiffe || slot.x509) throw clash();
        slot.x509 = b;
      } else if (b instanceof JwtBundle) {
        if (slot.spiffe || slot.jwt) throw clash();
        slot.jwt = b;
      } else {
        throw new TypeError('BundleSet.of expects SpiffeBundle, X509Bundle or JwtBundle values');
      }
      parts.set(name, slot);
    }
    const map = new Map<string, SpiffeBundle>();
    for (const [name, slot] of parts) {
      map.set(name, slot.spiffe ?? SpiffeBundle.fromBundles({ trustDomain: name, x509: slot.x509, jwt: slot.jwt }));
    }
    return new BundleSet(map);
  }

  /**
   * Parses a bundle map, `{"trust_domains": {"<td>": <SPIFFE bundle>, ...}}` (B-8). The
   * `trust_domains` member is required (it may be `{}`); keys may be `td` or `spiffe://td`
   * and are canonicalised; a duplicated key, or two keys naming the same trust domain, is
   * rejected, as is any invalid bundle: the map loads completely or not at all.
   */
  static parse(jsonText: string | Uint8Array): BundleSet {
    const doc = parseBundleJson('bundle map', jsonText);
    if (!isJsonObject(doc)) throw new BundleError('ERR_BUNDLE_INVALID', 'bundle map: must be a JSON object');
    const tds = doc['trust_domains'];
    if (tds === undefined)
      throw new BundleError('ERR_BUNDLE_INVALID', 'bundle map: the "trust_domains" member is required (B-8)');
    if (!isJsonObject(tds))
      throw new BundleError('ERR_BUNDLE_INVALID', 'bundle map: "trust_domains" must be a JSON object');
    const map = new Map<string, SpiffeBundle>();
    for (const [key, value] of Object.entries(tds)) {
      const td = TrustDomain.tryParse(key);
      if (td instanceof SpiffeIdError) {
        throw new BundleError(
          'ERR_BUNDLE_INVALID',
          `bundle map: key ${JSON.stringify(key.slice(0, 300))}: ${td.rule}`,
          {
            cause: td,
          },
        );
      }
      if (map.has(td.name)) {
        throw new BundleError(
          'ERR_BUNDLE_INVALID',
          `bundle map: key ${JSON.stringify(key)} names trust domain "${td.name}" a second time (B-8)`,
        );
      }
      map.set(td.name, spiffeBundleFromJson(td, value, `bundle map: bundle of "${td.name}"`));
    }
    return new BundleSet(map);
  }

  /**
   * The bundle map JSON, keyed by trust domain name. Per-bundle refresh hints are left out
   * (B-8: producers should omit them); sequence numbers are kept.
   */
  marshal(): string {
    // Object.fromEntries defines own members, so a trust domain named "__proto__" stays a member.
    const tds = Object.fromEntries(
      this.bundles().map((b) => [b.trustDomain.name, spiffeBundleDocument(b, { refreshHint: false })]),
    );
    return stringifyJson({ trust_domains: tds });
  }

  get size(): number {
    return this.#bundles.size;
  }

  get(td: TrustDomain | string): SpiffeBundle | undefined {
    return this.#bundles.get(nameOf(td));
  }

  has(td: TrustDomain | string): boolean {
    return this.#bundles.has(nameOf(td));
  }

  /** The trust domains in the set, sorted by name. */
  trustDomains(): TrustDomain[] {
    return [...this.#bundles.keys()].sort().map((n) => TrustDomain.parse(n));
  }

  /** The bundles in the set, sorted by trust domain name. */
  bundles(): SpiffeBundle[] {
    return [...this.#bundles.keys()].sort().map((n) => this.#bundles.get(n) as SpiffeBundle);
  }

  /** A new set with this bundle added, or replacing the bundle of its trust domain. */
  with(bundle: SpiffeBundle | X509Bundle | JwtBundle): BundleSet {
    const full =
      bundle instanceof SpiffeBundle
        ? bundle
        : bundle instanceof X509Bundle
          ? SpiffeBundle.fromBundles({ x509: bundle })
          : SpiffeBundle.fromBundles({ jwt: bundle });
    const map = new Map(this.#bundles);
    map.set(full.trustDomain.name, full);
    return new BundleSet(map);
  }

  /** A new set without the bundle of this trust domain. */
  without(td: TrustDomain | string): BundleSet {
    const map = new Map(this.#bundles);
    map.delete(nameOf(td));
    return new BundleSet(map);
  }

  /** Same trust domains, each with an equal bundle. */
  equals(other: BundleSet): boolean {
    if (this.#bundles.size !== other.#bundles.size) return false;
    for (const [name, b] of this.#bundles) {
      const theirs = other.#bundles.get(name);
      if (theirs === undefined || !b.equals(theirs)) return false;
    }
    return true;
  }

  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle | undefined {
    return this.#bundles.get(td.name)?.x509Bundle();
  }

  getJwtBundleForTrustDomain(td: TrustDomain): JwtBundle | undefined {
    return this.#bundles.get(td.name)?.jwtBundle();
  }

  /** Every trust domain's X.509 bundle, sorted by trust domain; the same array on every call (the set is immutable). */
  getX509Bundles(): readonly X509Bundle[] {
    this.#x509Bundles ??= Object.freeze(this.bundles().map((b) => b.x509Bundle()));
    return this.#x509Bundles;
  }
}

function nameOf(td: TrustDomain | string): string {
  return TrustDomain.from(td).name;
}
