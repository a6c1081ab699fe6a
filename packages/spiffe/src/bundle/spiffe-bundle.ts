import { type JsonWebKey, type KeyObject, X509Certificate } from 'node:crypto';
import { BundleError } from '../errors.js';
import type { JsonObject, JsonValue } from '../internal/strict-json.js';
import { stringifyJson } from '../internal/strict-json.js';
import { TrustDomain } from '../spiffeid/trust-domain.js';
import { importJsonAuthority, isJsonObject, JWT_SVID_USE, JwtBundle, parseBundleJson } from './jwt-bundle.js';
import {
  canonicalJwk,
  hasKeyMaterial,
  importPublicJwk,
  keyMembers,
  SUPPORTED_KEY_TYPES,
  sameJwk,
} from './public-jwk.js';
import type { BundleSource, X509BundleSetSource } from './source.js';
import { X509Bundle } from './x509-bundle.js';

/** The `use` value of an X.509 authority in SPIFFE bundles (X509-SVID §6, X-16). */
export const X509_SVID_USE = 'x509-svid';

/** Largest `spiffe_sequence`: the value is an unsigned 64-bit integer (B-3). */
export const MAX_SEQUENCE_NUMBER = 2n ** 64n - 1n;

const STD_BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** What {@link SpiffeBundle.fromBundles} builds a bundle from. */
export interface SpiffeBundleInit {
  /** Needed only when neither `x509` nor `jwt` is given. */
  readonly trustDomain?: TrustDomain | string;
  readonly x509?: X509Bundle;
  readonly jwt?: JwtBundle;
  /** `spiffe_sequence`: an unsigned 64-bit integer (a number must be a safe integer). */
  readonly sequenceNumber?: bigint | number;
  /** `spiffe_refresh_hint` in seconds; fractions are rounded up, as go-spiffe does. */
  readonly refreshHintSeconds?: number;
}

function toSequenceNumber(value: bigint | number | undefined): bigint | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'number' && !Number.isSafeInteger(value)) {
    throw new TypeError(`sequence number ${value} is not a safe integer; pass a bigint`);
  }
  const big = BigInt(value);
  if (big < 0n || big > MAX_SEQUENCE_NUMBER) throw new RangeError(`sequence number ${big} is outside 0..2^64-1`);
  return big;
}

function toRefreshHint(value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new RangeError(`refresh hint ${String(value)} must be a non-negative number of seconds`);
  }
  return Math.ceil(value);
}

/**
 * A SPIFFE bundle: the X.509 and JWT authorities of one trust domain together with the
 * bundle's sequence number and refresh hint, as served on federation bundle endpoints
 * (SPIFFE Trust Domain and Bundle §4). The JSON does not name its trust domain, so the
 * trust domain always travels with it (B-1). Immutable.
 *
 * `sequenceNumber` is a `bigint` so that every 64-bit value round-trips exactly.
 */
export class SpiffeBundle implements BundleSource, X509BundleSetSource {
  readonly trustDomain: TrustDomain;
  /** `spiffe_sequence`, when the bundle has one. */
  readonly sequenceNumber: bigint | undefined;
  /** `spiffe_refresh_hint` in seconds, when the bundle has one. */
  readonly refreshHintSeconds: number | undefined;
  readonly #x509: X509Bundle;
  readonly #jwt: JwtBundle;

  private constructor(
    x509: X509Bundle,
    jwt: JwtBundle,
    sequenceNumber: bigint | undefined,
    refreshHint: number | undefined,
  ) {
    this.trustDomain = x509.trustDomain;
    this.#x509 = x509;
    this.#jwt = jwt;
    this.sequenceNumber = sequenceNumber;
    this.refreshHintSeconds = refreshHint;
  }

  /** A bundle with no authorities, sequence number or refresh hint. */
  static empty(td: TrustDomain | string): SpiffeBundle {
    const trustDomain = TrustDomain.from(td);
    return new SpiffeBundle(
      X509Bundle.fromAuthorities(trustDomain, []),
      JwtBundle.empty(trustDomain),
      undefined,
      undefined,
    );
  }

  /**
   * Combines an X.509 bundle and/or a JWT bundle of the same trust domain. Throws a
   * TypeError when they name different trust domains or no trust domain is known, and a
   * RangeError for an out-of-range sequence number or refresh hint.
   */
  static fromBundles(init: SpiffeBundleInit): SpiffeBundle {
    const td =
      init.trustDomain !== undefined
        ? TrustDomain.from(init.trustDomain)
        : (init.x509?.trustDomain ?? init.jwt?.trustDomain);
    if (td === undefined)
      throw new TypeError('SpiffeBundle.fromBundles needs a trust domain, an X.509 bundle or a JWT bundle');
    for (const b of [init.x509, init.jwt]) {
      if (b !== undefined && !b.trustDomain.equals(td)) {
        throw new TypeError(
          `SpiffeBundle.fromBundles: bundle of "${b.trustDomain.name}" given for trust domain "${td.name}"`,
        );
      }
    }
    return new SpiffeBundle(
      init.x509 ?? X509Bundle.fromAuthorities(td, []),
      init.jwt ?? JwtBundle.empty(td),
      toSequenceNumber(init.sequenceNumber),
      toRefreshHint(init.refreshHintSeconds),
    );
  }

  /**
   * Parses SPIFFE bundle JSON (a JWK Set with SPIFFE members). Rules: `keys` is required
   * (B-2); unknown top-level members are ignored (B-5); a key with a missing or unknown
   * `use`, or an unsupported `kty`, is ignored (B-6); an `x509-svid` key without `x5c` or
   * with an empty one is ignored, and only its first certificate is used; a
   * `jwt-svid` key must carry a unique `kid` (J-10); key members that do not match the
   * `x5c` certificate are rejected. `spiffe_sequence` must be an integer in 0..2^64-1
   * and is kept exactly. Throws a {@link BundleError} (ERR_BUNDLE_INVALID) naming the entry.
   */
  static parse(td: TrustDomain | string, jsonText: string | Uint8Array): SpiffeBundle {
    const trustDomain = TrustDomain.from(td);
    const what = `SPIFFE bundle of "${trustDomain.name}"`;
    return spiffeBundleFromJson(trustDomain, parseBundleJson(what, jsonText), what);
  }

  /** The X.509 authorities (CA certificates). */
  get x509Authorities(): readonly X509Certificate[] {
    return this.#x509.authorities;
  }

  /** The JWT authorities by key ID, as canonical public JWKs. */
  get jwtAuthorities(): ReadonlyMap<string, Readonly<JsonWebKey>> {
    return this.#jwt.authorities;
  }

  /** The X.509 authorities as an {@link X509Bundle} (possibly empty). */
  x509Bundle(): X509Bundle {
    return this.#x509;
  }

  /** The JWT authorities as a {@link JwtBundle} (possibly empty). */
  jwtBundle(): JwtBundle {
    return this.#jwt;
  }

  /** True when the bundle holds no authority at all (B-2: every SVID of the trust domain is then invalid). */
  isEmpty(): boolean {
    return this.#x509.isEmpty() && this.#jwt.isEmpty();
  }

  /** A copy with another sequence number (undefined removes it). */
  withSequenceNumber(sequenceNumber: bigint | number | undefined): SpiffeBundle {
    return new SpiffeBundle(this.#x509, this.#jwt, toSequenceNumber(sequenceNumber), this.refreshHintSeconds);
  }

  /** A copy with another refresh hint in seconds (undefined removes it). */
  withRefreshHint(seconds: number | undefined): SpiffeBundle {
    return new SpiffeBundle(this.#x509, this.#jwt, this.sequenceNumber, toRefreshHint(seconds));
  }

  /** A copy with other X.509 authorities. */
  withX509Bundle(x509: X509Bundle): SpiffeBundle {
    return SpiffeBundle.fromBundles({
      x509,
      jwt: this.#jwt,
      sequenceNumber: this.sequenceNumber,
      refreshHintSeconds: this.refreshHintSeconds,
    });
  }

  /** A copy with other JWT authorities. */
  withJwtBundle(jwt: JwtBundle): SpiffeBundle {
    return SpiffeBundle.fromBundles({
      x509: this.#x509,
      jwt,
      sequenceNumber: this.sequenceNumber,
      refreshHintSeconds: this.refreshHintSeconds,
    });
  }

  /**
   * The SPIFFE bundle JSON, shaped like go-spiffe's `spiffebundle.Marshal`: X.509 entries
   * `{use, kty, <key members>, x5c}` (no `kid`, X-16), then JWT entries `{use, kty, kid,
   * <key members>}`, then `spiffe_refresh_hint` and `spiffe_sequence` (an exact integer
   * literal) when set.
   */
  marshal(): string {
    return stringifyJson(spiffeBundleDocument(this, { refreshHint: true }));
  }

  /** Same trust domain, authorities, sequence number and refresh hint. */
  equals(other: SpiffeBundle): boolean {
    return (
      this.#x509.equals(other.#x509) &&
      this.#jwt.equals(other.#jwt) &&
      this.sequenceNumber === other.sequenceNumber &&
      this.refreshHintSeconds === other.refreshHintSeconds
    );
  }

  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle | undefined {
    return this.trustDomain.equals(td) ? this.#x509 : undefined;
  }

  getJwtBundleForTrustDomain(td: TrustDomain): JwtBundle | undefined {
    return this.trustDomain.equals(td) ? this.#jwt : undefined;
  }

  getX509Bundles(): readonly X509Bundle[] {
    return this.#x509.getX509Bundles();
  }
}

/** Internal: the bundle as a JSON value; bundle maps leave out the refresh hint (B-8). */
export function spiffeBundleDocument(bundle: SpiffeBundle, options: { refreshHint: boolean }): Record<string, unknown> {
  const x509Entries = bundle.x509Authorities.map((cert, i) => {
    let jwk: Readonly<JsonWebKey>;
    try {
      jwk = canonicalJwk(cert.publicKey);
    } catch (cause) {
      throw new BundleError(
        'ERR_BUNDLE_INVALID',
        `SPIFFE bundle of "${bundle.trustDomain.name}": X.509 authority #${i} has a key that a JWK cannot express`,
        { cause },
      );
    }
    const entry: Record<string, unknown> = { use: X509_SVID_USE, kty: jwk.kty };
    for (const [m, v] of keyMembers(jwk)) entry[m] = v;
    entry['x5c'] = [cert.raw.toString('base64')];
    return entry;
  });
  const doc: Record<string, unknown> = { keys: [...x509Entries, ...bundle.jwtBundle().jwkEntries()] };
  if (options.refreshHint && bundle.refreshHintSeconds !== undefined)
    doc['spiffe_refresh_hint'] = bundle.refreshHintSeconds;
  if (bundle.sequenceNumber !== undefined) doc['spiffe_sequence'] = bundle.sequenceNumber;
  return doc;
}

/** Internal: builds a bundle from a parsed JSON value (shared with bundle maps). */
export function spiffeBundleFromJson(td: TrustDomain, doc: JsonValue | undefined, what: string): SpiffeBundle {
  const fail = (rule: string, cause?: unknown): BundleError =>
    new BundleError('ERR_BUNDLE_INVALID', `${what}: ${rule}`, cause === undefined ? undefined : { cause });
  if (!isJsonObject(doc)) throw fail('a SPIFFE bundle must be a JSON object');
  const list = doc['keys'];
  if (list === undefined) throw fail('the "keys" member is required (B-2)');
  if (!Array.isArray(list)) throw fail('the "keys" member must be an array');

  const seq = doc['spiffe_sequence'];
  let sequenceNumber: bigint | undefined;
  if (seq !== undefined) {
    if (typeof seq !== 'bigint') throw fail('"spiffe_sequence" must be an integer');
    if (seq < 0n || seq > MAX_SEQUENCE_NUMBER) throw fail(`"spiffe_sequence" ${seq} is outside 0..2^64-1`);
    sequenceNumber = seq;
  }
  const hint = doc['spiffe_refresh_hint'];
  if (hint !== undefined && (typeof hint !== 'number' || !Number.isSafeInteger(hint) || hint < 0)) {
    throw fail('"spiffe_refresh_hint" must be a non-negative integer number of seconds');
  }

  const certs: X509Certificate[] = [];
  const jwtKeys = new Map<string, KeyObject>();
  list.forEach((entry, i) => {
    if (!isJsonObject(entry)) throw fail(`key #${i} is not a JSON object`);
    const use = entry['use'];
    const kty = entry['kty'];
    if (typeof kty !== 'string' || !SUPPORTED_KEY_TYPES.has(kty)) return; // B-6
    if (use === X509_SVID_USE) {
      const cert = x509Authority(entry, kty, `key #${i} (x509-svid)`, fail);
      if (cert) certs.push(cert);
    } else if (use === JWT_SVID_USE) {
      const kid = entry['kid'];
      if (typeof kid !== 'string' || kid === '') throw fail(`key #${i} (jwt-svid) has no "kid" (J-10)`);
      if (jwtKeys.has(kid)) throw fail(`key #${i} (jwt-svid) repeats key ID ${JSON.stringify(kid)}`);
      jwtKeys.set(kid, importJsonAuthority(td, `key #${i} (kid ${JSON.stringify(kid)})`, entry).key);
    }
    // any other `use` (including wit-svid): ignored (B-6)
  });
  return SpiffeBundle.fromBundles({
    x509: X509Bundle.fromAuthorities(td, certs),
    jwt: JwtBundle.fromAuthorities(td, jwtKeys),
    sequenceNumber,
    refreshHintSeconds: hint as number | undefined,
  });
}

function x509Authority(
  entry: JsonObject,
  kty: string,
  where: string,
  fail: (rule: string, cause?: unknown) => BundleError,
): X509Certificate | undefined {
  const x5c = entry['x5c'];
  if (x5c === undefined) return undefined; // ignore the entry
  if (!Array.isArray(x5c)) throw fail(`${where}: "x5c" must be an array of base64 certificates`);
  if (x5c.length === 0) return undefined; // ignore the entry
  const first = x5c[0];
  if (typeof first !== 'string' || first === '' || first.length % 4 !== 0 || !STD_BASE64.test(first)) {
    throw fail(`${where}: "x5c"[0] must be a standard base64 DER certificate (X-16)`);
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(Buffer.from(first, 'base64'));
  } catch (cause) {
    throw fail(`${where}: "x5c"[0] is not a valid X.509 certificate`, cause);
  }
  let certJwk: Readonly<JsonWebKey>;
  try {
    certJwk = canonicalJwk(cert.publicKey);
  } catch (cause) {
    throw fail(`${where}: the certificate's key type cannot be expressed as a JWK`, cause);
  }
  if (certJwk.kty !== kty)
    throw fail(`${where}: "kty" ${JSON.stringify(kty)} does not match the certificate's ${certJwk.kty} key`);
  if (hasKeyMaterial(entry)) {
    let jwk: Readonly<JsonWebKey>;
    try {
      jwk = importPublicJwk(entry).jwk;
    } catch (cause) {
      throw fail(`${where}: ${(cause as Error).message}`, cause);
    }
    if (!sameJwk(jwk, certJwk)) throw fail(`${where}: the key members do not match the "x5c" certificate's key (X-16)`);
  }
  return cert;
}
