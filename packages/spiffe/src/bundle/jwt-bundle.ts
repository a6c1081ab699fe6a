import { type JsonWebKey, KeyObject } from 'node:crypto';
import { BundleError } from '../errors.js';
import {
  type JsonObject,
  JsonSyntaxError,
  type JsonValue,
  parseStrictJson,
  stringifyJson,
} from '../internal/strict-json.js';
import { TrustDomain } from '../spiffeid/trust-domain.js';
import {
  canonicalJwk,
  type ImportedKey,
  importPublicJwk,
  keyMembers,
  SUPPORTED_KEY_TYPES,
  sameJwk,
} from './public-jwk.js';
import type { JwtBundleSource } from './source.js';

/** The `use` value of a JWT authority in SPIFFE bundles (JWT-SVID §6, J-10). */
export const JWT_SVID_USE = 'jwt-svid';

function invalid(td: TrustDomain, what: string, cause?: unknown): BundleError {
  return new BundleError('ERR_BUNDLE_INVALID', `JWT bundle of "${td.name}": ${what}`, cause ? { cause } : undefined);
}

/** Parses bundle JSON text (or UTF-8 bytes) with the strict parser, wrapping syntax errors. */
export function parseBundleJson(what: string, text: string | Uint8Array): JsonValue {
  if (typeof text !== 'string' && !(text instanceof Uint8Array))
    throw new TypeError(`${what}: expected a string or bytes`);
  try {
    return parseStrictJson(text, { bigintMembers: new Set(['spiffe_sequence']) });
  } catch (cause) {
    if (cause instanceof JsonSyntaxError) {
      throw new BundleError('ERR_BUNDLE_INVALID', `${what}: not valid JSON: ${cause.message}`, { cause });
    }
    throw cause;
  }
}

/** True for a JSON object (not an array, not null). */
export function isJsonObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The JWT authorities (public keys by key ID) of one trust domain: the keys that may sign
 * JWT-SVIDs of that trust domain and no other (J-9). Immutable. Each key is imported into
 * a node:crypto KeyObject once, when the bundle is built.
 */
export class JwtBundle implements JwtBundleSource {
  readonly trustDomain: TrustDomain;
  readonly #keys: ReadonlyMap<string, ImportedKey>;
  readonly #jwks: ReadonlyMap<string, Readonly<JsonWebKey>>;

  private constructor(trustDomain: TrustDomain, keys: ReadonlyMap<string, ImportedKey>) {
    this.trustDomain = trustDomain;
    this.#keys = keys;
    this.#jwks = new Map([...keys].map(([kid, k]) => [kid, k.jwk]));
  }

  /** An empty bundle: the trust domain issues no JWT-SVIDs (or none are trusted). */
  static empty(td: TrustDomain | string): JwtBundle {
    return new JwtBundle(TrustDomain.from(td), new Map());
  }

  /**
   * A bundle from public keys by key ID, given as JWKs (key members only are kept) or
   * public KeyObjects. Throws a {@link BundleError} for an unusable JWK and a TypeError
   * for a private or empty-kid key (programming errors).
   */
  static fromAuthorities(
    td: TrustDomain | string,
    authorities: ReadonlyMap<string, JsonWebKey | KeyObject> | Readonly<Record<string, JsonWebKey>>,
  ): JwtBundle {
    const trustDomain = TrustDomain.from(td);
    const entries: [string, JsonWebKey | KeyObject][] =
      authorities instanceof Map ? [...authorities] : Object.entries(authorities as Record<string, JsonWebKey>);
    const keys = new Map<string, ImportedKey>();
    for (const [kid, value] of entries) {
      if (typeof kid !== 'string' || kid === '')
        throw new TypeError('JwtBundle.fromAuthorities: key ID must be a non-empty string');
      keys.set(kid, importAuthority(trustDomain, kid, value));
    }
    return new JwtBundle(trustDomain, keys);
  }

  /**
   * Parses a JWK Set (`{"keys": [...]}`), the encoding of FetchJWTBundles (W-10) and of
   * go-spiffe's `jwtbundle.Parse`. Every key that is a JWT authority (no `use`, or
   * `use: "jwt-svid"`) must carry a `kid`, unique in the set; keys of another `use` or an
   * unsupported `kty` are ignored (B-6). Private key members are rejected.
   */
  static parse(td: TrustDomain | string, jwksJson: string | Uint8Array): JwtBundle {
    const trustDomain = TrustDomain.from(td);
    const doc = parseBundleJson(`JWT bundle of "${trustDomain.name}"`, jwksJson);
    if (!isJsonObject(doc)) throw invalid(trustDomain, 'a JWK Set must be a JSON object');
    const list = doc['keys'];
    if (list === undefined) throw invalid(trustDomain, 'the "keys" member is required');
    if (!Array.isArray(list)) throw invalid(trustDomain, 'the "keys" member must be an array');
    const keys = new Map<string, ImportedKey>();
    list.forEach((entry, i) => {
      if (!isJsonObject(entry)) throw invalid(trustDomain, `key #${i} is not a JSON object`);
      const use = entry['use'];
      if (use !== undefined && use !== JWT_SVID_USE) return;
      if (typeof entry['kty'] !== 'string' || !SUPPORTED_KEY_TYPES.has(entry['kty'])) return;
      const kid = entry['kid'];
      if (typeof kid !== 'string' || kid === '')
        throw invalid(trustDomain, `key #${i} has no "kid" (every JWT authority must carry one)`);
      if (keys.has(kid)) throw invalid(trustDomain, `key #${i} repeats key ID ${JSON.stringify(kid)}`);
      keys.set(kid, importJsonAuthority(trustDomain, `key #${i} (kid ${JSON.stringify(kid)})`, entry));
    });
    return new JwtBundle(trustDomain, keys);
  }

  /** The authorities by key ID, as canonical public JWKs (key members only; no `kid` or `use`). */
  get authorities(): ReadonlyMap<string, Readonly<JsonWebKey>> {
    return this.#jwks;
  }

  /** The public key with this key ID, or undefined. */
  findAuthority(kid: string): KeyObject | undefined {
    return this.#keys.get(kid)?.key;
  }

  hasAuthority(kid: string): boolean {
    return this.#keys.has(kid);
  }

  isEmpty(): boolean {
    return this.#keys.size === 0;
  }

  /** A new bundle with the authority added (or replaced, when the key ID exists). */
  withAuthority(kid: string, key: JsonWebKey | KeyObject): JwtBundle {
    if (typeof kid !== 'string' || kid === '')
      throw new TypeError('JwtBundle.withAuthority: key ID must be a non-empty string');
    const keys = new Map(this.#keys);
    keys.set(kid, importAuthority(this.trustDomain, kid, key));
    return new JwtBundle(this.trustDomain, keys);
  }

  /** A new bundle without the authority of this key ID. */
  withoutAuthority(kid: string): JwtBundle {
    const keys = new Map(this.#keys);
    keys.delete(kid);
    return new JwtBundle(this.trustDomain, keys);
  }

  /**
   * The JWK Set JSON: `{"keys":[{"use":"jwt-svid","kty":…,"kid":…,<key members>}]}`. Every key
   * carries its `kid`, so go-spiffe's `jwtbundle.Parse` accepts it (W-10).
   */
  marshal(): string {
    return stringifyJson({ keys: this.jwkEntries() });
  }

  /** The JWK entries as {@link JwtBundle.marshal} and SPIFFE bundles write them. */
  jwkEntries(): Record<string, unknown>[] {
    return [...this.#jwks].map(([kid, jwk]) => {
      const entry: Record<string, unknown> = { use: JWT_SVID_USE, kty: jwk.kty, kid };
      for (const [m, v] of keyMembers(jwk)) entry[m] = v;
      return entry;
    });
  }

  /** Same trust domain and the same public key under every key ID (order does not matter). */
  equals(other: JwtBundle): boolean {
    if (!this.trustDomain.equals(other.trustDomain) || this.#jwks.size !== other.#jwks.size) return false;
    for (const [kid, jwk] of this.#jwks) {
      const theirs = other.#jwks.get(kid);
      if (theirs === undefined || !sameJwk(jwk, theirs)) return false;
    }
    return true;
  }

  getJwtBundleForTrustDomain(td: TrustDomain): JwtBundle | undefined {
    return this.trustDomain.equals(td) ? this : undefined;
  }
}

function importAuthority(td: TrustDomain, kid: string, value: JsonWebKey | KeyObject): ImportedKey {
  if (value instanceof KeyObject) {
    if (value.type !== 'public')
      throw new TypeError(`JWT authority ${JSON.stringify(kid)}: expected a public key, got a ${value.type} key`);
    return { key: value, jwk: canonicalJwk(value) };
  }
  if (typeof value !== 'object' || value === null)
    throw new TypeError(`JWT authority ${JSON.stringify(kid)}: expected a JWK or KeyObject`);
  if (typeof value.kty !== 'string' || !SUPPORTED_KEY_TYPES.has(value.kty)) {
    throw invalid(td, `authority ${JSON.stringify(kid)} has unsupported key type ${JSON.stringify(value.kty)}`);
  }
  return importJsonAuthority(td, `authority ${JSON.stringify(kid)}`, value as Record<string, unknown>);
}

/** Imports a JWT authority JWK, wrapping failures in a BundleError that names the entry. */
export function importJsonAuthority(
  td: TrustDomain,
  where: string,
  jwk: Readonly<Record<string, unknown>>,
): ImportedKey {
  try {
    return importPublicJwk(jwk);
  } catch (cause) {
    throw invalid(td, `${where}: ${(cause as Error).message}`, cause);
  }
}
