/**
 * JWT-SVIDs (SPIFFE JWT-SVID spec): parsing and validation.
 *
 * Signatures are verified with node:crypto directly, not through jose: jose 6 runs on
 * WebCrypto, whose async verify cost ≈ 2.5× a synchronous `crypto.verify` per token on
 * Node 20. The rules are those jose would apply plus SPIFFE's own: an algorithm
 * allowlist checked before any key is touched, the key chosen by `kid` from the bundle
 * of the subject's own trust domain only, the key type tied to the algorithm, RSA keys
 * of at least 2048 bits, raw R||S ECDSA signatures.
 * @module
 */
import { constants, type KeyObject, verify as verifySignature } from 'node:crypto';
import { inspect } from 'node:util';
import type { JwtBundleSource } from '../bundle/source.js';
import { type Clock, systemClock } from '../clock.js';
import { JwtSvidError, quote, SpiffeIdError } from '../errors.js';
import { type JsonObject, JsonSyntaxError, type JsonValue, parseStrictJson } from '../internal/strict-json.js';
import { SpiffeId } from '../spiffeid/spiffe-id.js';

/** The signature algorithms a JWT-SVID may use (J-2). Everything else — `none`, HS*, EdDSA — is refused. */
export const JWT_SVID_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'ES256',
  'ES384',
  'ES512',
  'PS256',
  'PS384',
  'PS512',
] as const;
export type JwtSvidAlgorithm = (typeof JWT_SVID_ALGORITHMS)[number];

/** Default clock skew allowed for `exp`, `nbf` and `iat`: 60 s, go-jose's default leeway (J-8). */
export const DEFAULT_JWT_LEEWAY_SECONDS = 60;

/** Longest token accepted, in characters; real JWT-SVIDs are well under 2 KiB. */
export const MAX_JWT_SVID_LENGTH = 64 * 1024;

/** Smallest RSA modulus accepted for RSASSA signatures (RS and PS algorithms), as jose requires. */
const MIN_RSA_BITS = 2048;

interface AlgorithmSpec {
  readonly hash: 'sha256' | 'sha384' | 'sha512';
  readonly family: 'RS' | 'PS' | 'ES';
  /** For ES*: the key's curve (node's name) and the raw R||S signature length (J-11). */
  readonly curve?: string;
  readonly signatureLength?: number;
}

const ALGORITHMS: Readonly<Record<string, AlgorithmSpec>> = {
  RS256: { hash: 'sha256', family: 'RS' },
  RS384: { hash: 'sha384', family: 'RS' },
  RS512: { hash: 'sha512', family: 'RS' },
  PS256: { hash: 'sha256', family: 'PS' },
  PS384: { hash: 'sha384', family: 'PS' },
  PS512: { hash: 'sha512', family: 'PS' },
  ES256: { hash: 'sha256', family: 'ES', curve: 'prime256v1', signatureLength: 64 },
  ES384: { hash: 'sha384', family: 'ES', curve: 'secp384r1', signatureLength: 96 },
  ES512: { hash: 'sha512', family: 'ES', curve: 'secp521r1', signatureLength: 132 },
};

/** Options of {@link JwtSvid.parseAndValidate} and {@link JwtSvid.parseInsecure}. */
export interface JwtSvidValidationOptions {
  /** The time to validate at; default `clock.now()`. */
  readonly now?: Date;
  /** Where the time comes from when `now` is not given; default the system clock. */
  readonly clock?: Clock;
  /** Allowed clock skew for `exp`, `nbf` and `iat`, in seconds; default {@link DEFAULT_JWT_LEEWAY_SECONDS}. */
  readonly leewaySeconds?: number;
  /** The Workload API's hint for this SVID, kept on the result (not validated, not in the token). */
  readonly hint?: string;
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;
/** Largest NumericDate a JS Date can hold, in seconds. */
const MAX_NUMERIC_DATE = 8.64e12;

function invalid(message: string): JwtSvidError {
  return new JwtSvidError('ERR_JWTSVID_INVALID', `invalid JWT-SVID: ${message}`);
}

/** What the structural checks found; nothing here is trusted until the signature is checked. */
interface Decoded {
  readonly header: JsonObject;
  readonly claims: JsonObject;
  readonly alg: JwtSvidAlgorithm;
  readonly kid: string | undefined;
  readonly id: SpiffeId;
  readonly audience: readonly string[];
  readonly exp: number;
  readonly nbf: number | undefined;
  readonly iat: number | undefined;
  readonly signingInput: string;
  readonly signature: string;
}

/**
 * A JWT-SVID: a JWT whose `sub` is a SPIFFE ID, signed by an authority of that SPIFFE
 * ID's trust domain. Immutable. The token itself is available through {@link JwtSvid.token}
 * and {@link JwtSvid.marshal} but is never printed: `toString`, `toJSON` and
 * `util.inspect` leave it out, so logging a JwtSvid does not leak a bearer credential.
 */
export class JwtSvid {
  /** The SPIFFE ID from `sub`. */
  readonly id: SpiffeId;
  /** The `aud` claim, always as a list. */
  readonly audience: readonly string[];
  /** The `exp` claim. */
  readonly expiry: Date;
  /** The `iat` claim, when present. */
  readonly issuedAt: Date | undefined;
  /** The JOSE header (frozen). */
  readonly header: Readonly<Record<string, unknown>>;
  /** Every claim of the payload (frozen, deeply). Numbers are JS numbers, as `JSON.parse` gives them. */
  readonly claims: Readonly<Record<string, unknown>>;
  /** The Workload API's operator-chosen hint for telling several SVIDs apart, when it sent one. */
  readonly hint?: string;
  readonly #token: string;

  private constructor(token: string, d: Decoded, hint?: string) {
    this.#token = token;
    if (hint !== undefined && hint !== '') this.hint = hint;
    this.id = d.id;
    this.audience = Object.freeze([...d.audience]);
    this.expiry = new Date(d.exp * 1000);
    this.issuedAt = d.iat === undefined ? undefined : new Date(d.iat * 1000);
    this.header = deepFreeze(d.header);
    this.claims = deepFreeze(d.claims);
  }

  /**
   * Parses a JWT-SVID and validates it completely (JWT-SVID spec §3–§5):
   * compact serialization only (J-1); `alg` in {@link JWT_SVID_ALGORITHMS}, checked before
   * any key is used (J-2); `kid` required (J-3, as go-spiffe and SPIRE); `typ`, if present,
   * exactly `JWT` or `JOSE` (J-4); no `crit` (J-5); `sub` a SPIFFE ID (J-6); the key looked up
   * by `kid` ONLY in the JWT bundle of the `sub`'s trust domain (J-9), its type matching
   * `alg`; the signature; `exp` required and not past, `nbf`/`iat` not in the future, each
   * with `leewaySeconds` of slack (J-8); `aud` containing one of `audiences` (J-7).
   *
   * Resolves to the JwtSvid or rejects with a {@link JwtSvidError} whose code says which
   * kind of rule failed; rejects with a TypeError when `audiences` is empty (a programming
   * error: validating without an audience accepts tokens meant for anyone).
   * {@link JwtSvid.parseAndValidateSync} does the same synchronously.
   */
  static async parseAndValidate(
    token: string,
    bundleSource: JwtBundleSource,
    audiences: readonly string[],
    options: JwtSvidValidationOptions = {},
  ): Promise<JwtSvid> {
    return JwtSvid.parseAndValidateSync(token, bundleSource, audiences, options);
  }

  /** {@link JwtSvid.parseAndValidate}, synchronously: returns the JwtSvid or throws. */
  static parseAndValidateSync(
    token: string,
    bundleSource: JwtBundleSource,
    audiences: readonly string[],
    options: JwtSvidValidationOptions = {},
  ): JwtSvid {
    checkAudiences(audiences, false);
    if (typeof bundleSource?.getJwtBundleForTrustDomain !== 'function') {
      throw new TypeError('JwtSvid.parseAndValidate: bundleSource must have getJwtBundleForTrustDomain()');
    }
    const d = decode(token);
    if (d.kid === undefined || d.kid === '')
      throw invalid('header "kid" is missing; it is required to choose the key (J-3)');
    const td = d.id.trustDomain;
    const bundle = bundleSource.getJwtBundleForTrustDomain(td);
    // A source that answers with another trust domain's bundle must not make its keys count (J-9).
    if (bundle === undefined || !bundle.trustDomain.equals(td)) {
      throw new JwtSvidError(
        'ERR_JWTSVID_UNTRUSTED',
        `JWT-SVID for ${d.id}: no JWT bundle for trust domain "${td.name}" (J-9)`,
      );
    }
    const key = bundle.findAuthority(d.kid);
    if (key === undefined) {
      throw new JwtSvidError(
        'ERR_JWTSVID_UNTRUSTED',
        `JWT-SVID for ${d.id}: key ID ${quote(d.kid)} is not an authority of trust domain "${td.name}" (J-9)`,
      );
    }
    checkKeyFitsAlgorithm(d.alg, key, d.kid);
    if (!signatureVerifies(d, key)) {
      throw new JwtSvidError(
        'ERR_JWTSVID_UNTRUSTED',
        `JWT-SVID for ${d.id}: signature does not verify with key ${quote(d.kid)} of trust domain "${td.name}"`,
      );
    }
    checkTimes(d, options);
    checkAudience(d, audiences);
    return new JwtSvid(token, d);
  }

  /**
   * Parses a JWT-SVID WITHOUT checking its signature, like go-spiffe's `ParseInsecure`:
   * only for tokens that come from a trusted channel (the Workload API) or for inspection.
   * Every other rule of {@link JwtSvid.parseAndValidate} still applies (structure, `alg`
   * allowlist, `typ`, `crit`, `sub`, `exp`/`nbf`/`iat`), except that `kid` may be absent and an
   * empty `audiences` list skips the audience match (`aud` must still be present).
   */
  static parseInsecure(token: string, audiences: readonly string[], options: JwtSvidValidationOptions = {}): JwtSvid {
    checkAudiences(audiences, true);
    const d = decode(token);
    checkTimes(d, options);
    if (audiences.length > 0) checkAudience(d, audiences);
    return new JwtSvid(token, d, options.hint);
  }

  /** The signing key's ID from the header, when present. */
  get keyId(): string | undefined {
    const kid = this.header['kid'];
    return typeof kid === 'string' ? kid : undefined;
  }

  /** The token in compact serialization. Handle it like a password. */
  get token(): string {
    return this.#token;
  }

  /** The token in compact serialization (go-spiffe's `Marshal`). */
  marshal(): string {
    return this.#token;
  }

  /** A description without the token. */
  toString(): string {
    return `JwtSvid(${this.id}, aud=${JSON.stringify(this.audience)}, exp=${this.expiry.toISOString()})`;
  }

  /** JSON without the token: `{ id, audience, expiry, claims }`. */
  toJSON(): Record<string, unknown> {
    return { id: this.id.toString(), audience: this.audience, expiry: this.expiry.toISOString(), claims: this.claims };
  }

  [inspect.custom](): string {
    return `JwtSvid { id: '${this.id}', audience: ${JSON.stringify(this.audience)}, expiry: ${this.expiry.toISOString()}, token: [redacted] }`;
  }
}

function checkAudiences(audiences: readonly string[], emptyAllowed: boolean): void {
  if (!Array.isArray(audiences) || audiences.some((a) => typeof a !== 'string' || a === '')) {
    throw new TypeError('audiences must be an array of non-empty strings');
  }
  if (!emptyAllowed && audiences.length === 0) {
    throw new TypeError('JwtSvid.parseAndValidate needs at least one expected audience');
  }
}

function decodeJsonPart(part: string, name: 'header' | 'payload'): JsonObject {
  if (part === '') throw invalid(`the ${name} is empty`);
  if (!BASE64URL.test(part) || part.length % 4 === 1) throw invalid(`the ${name} is not base64url`);
  let value: JsonValue;
  try {
    value = parseStrictJson(Buffer.from(part, 'base64url'), { largeIntegers: 'number', maxDepth: 32 });
  } catch (cause) {
    if (cause instanceof JsonSyntaxError) throw invalid(`the ${name} is not valid JSON: ${cause.message}`);
    throw cause;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid(`the ${name} is not a JSON object`);
  return value;
}

function numericDate(claims: JsonObject, name: string): number | undefined {
  const v = claims[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || Math.abs(v) > MAX_NUMERIC_DATE) {
    throw invalid(`claim "${name}" must be a NumericDate (seconds since the epoch) (J-8)`);
  }
  return v;
}

/** Structure, header and claim shapes: everything that can be checked without a key. */
function decode(token: string): Decoded {
  if (typeof token !== 'string') throw new TypeError('JWT-SVID token must be a string');
  if (token.length > MAX_JWT_SVID_LENGTH) {
    throw invalid(`token is ${token.length} characters long, more than the limit of ${MAX_JWT_SVID_LENGTH}`);
  }
  if (token.trimStart().startsWith('{')) {
    throw invalid('the JWS JSON serialization is not allowed; a JWT-SVID uses the compact serialization (J-1)');
  }
  const parts = token.split('.');
  if (parts.length === 5) throw invalid('token has 5 parts: a JWE (encrypted JWT) is not allowed (J-1)');
  if (parts.length !== 3) throw invalid(`token has ${parts.length} parts; the compact JWS serialization has 3 (J-1)`);
  const [h, p, s] = parts as [string, string, string];

  const header = decodeJsonPart(h, 'header');
  const alg = header['alg'];
  if (typeof alg !== 'string')
    throw new JwtSvidError('ERR_JWTSVID_ALGORITHM', 'invalid JWT-SVID: header "alg" is missing (J-2)');
  if (!Object.hasOwn(ALGORITHMS, alg)) {
    throw new JwtSvidError(
      'ERR_JWTSVID_ALGORITHM',
      `invalid JWT-SVID: header "alg" ${quote(alg)} is not allowed; use one of ${JWT_SVID_ALGORITHMS.join(', ')} (J-2)`,
    );
  }
  const typ = header['typ'];
  if (typ !== undefined && typ !== 'JWT' && typ !== 'JOSE') {
    const shown = typeof typ === 'string' ? quote(typ) : `of type ${Array.isArray(typ) ? 'array' : typeof typ}`;
    throw invalid(`header "typ" ${shown} must be "JWT" or "JOSE" when present (J-4)`);
  }
  if (header['crit'] !== undefined) {
    throw invalid(
      'header "crit" names extensions that a JWT-SVID validator does not understand (J-5, RFC 7515 §4.1.11)',
    );
  }
  const kid = header['kid'];
  if (kid !== undefined && typeof kid !== 'string') throw invalid('header "kid" must be a string (J-3)');
  if (!BASE64URL.test(s)) throw invalid('the signature is not base64url');

  const claims = decodeJsonPart(p, 'payload');
  const sub = claims['sub'];
  if (sub === undefined) throw invalid('claim "sub" is missing (J-6)');
  if (typeof sub !== 'string') throw invalid('claim "sub" must be a string (J-6)');
  const id = SpiffeId.tryParse(sub);
  if (id instanceof SpiffeIdError) throw invalid(`claim "sub" ${quote(sub)} is not a SPIFFE ID: ${id.rule} (J-6)`);

  const aud = claims['aud'];
  let audience: string[];
  if (aud === undefined) throw invalid('claim "aud" is missing (J-7)');
  if (typeof aud === 'string') audience = [aud];
  else if (Array.isArray(aud) && aud.length > 0 && aud.every((a) => typeof a === 'string')) audience = aud as string[];
  else throw invalid('claim "aud" must be a string or a non-empty array of strings (J-7)');

  const exp = numericDate(claims, 'exp');
  if (exp === undefined) throw invalid('claim "exp" is missing (J-8)');
  return {
    header,
    claims,
    alg: alg as JwtSvidAlgorithm,
    kid,
    id,
    audience,
    exp,
    nbf: numericDate(claims, 'nbf'),
    iat: numericDate(claims, 'iat'),
    signingInput: token.slice(0, h.length + 1 + p.length),
    signature: s,
  };
}

/** What a key is, computed once per KeyObject: `ec:<curve>`, `rsa:<bits>` or the key type. */
const keyKinds = new WeakMap<KeyObject, string>();

function keyKind(key: KeyObject): string {
  let kind = keyKinds.get(key);
  if (kind === undefined) {
    const type = key.asymmetricKeyType ?? key.type;
    const details = key.asymmetricKeyDetails;
    if (key.type !== 'public') kind = `${key.type}`;
    else if (type === 'ec') kind = `ec:${details?.namedCurve}`;
    else if (type === 'rsa') kind = `rsa:${details?.modulusLength}`;
    else kind = String(type);
    keyKinds.set(key, kind);
  }
  return kind;
}

/** The token must not pick the key type: the key found by kid must be of the kind `alg` names. */
function checkKeyFitsAlgorithm(alg: JwtSvidAlgorithm, key: KeyObject, kid: string): void {
  const spec = ALGORITHMS[alg] as AlgorithmSpec;
  const kind = keyKind(key);
  let fits: boolean;
  if (spec.family === 'ES') {
    fits = kind === `ec:${spec.curve}`;
  } else if (kind.startsWith('rsa:')) {
    if (Number(kind.slice(4)) < MIN_RSA_BITS) {
      throw new JwtSvidError(
        'ERR_JWTSVID_ALGORITHM',
        `invalid JWT-SVID: key ${quote(kid)} is an RSA key shorter than ${MIN_RSA_BITS} bits, too weak for ${alg}`,
      );
    }
    fits = true;
  } else {
    fits = false;
  }
  if (!fits) {
    throw new JwtSvidError(
      'ERR_JWTSVID_ALGORITHM',
      `invalid JWT-SVID: header "alg" ${alg} does not match key ${quote(kid)} (${kind.replace(':', ' ')}) (J-2)`,
    );
  }
}

function signatureVerifies(d: Decoded, key: KeyObject): boolean {
  const spec = ALGORITHMS[d.alg] as AlgorithmSpec;
  const signature = Buffer.from(d.signature, 'base64url');
  if (signature.length === 0) return false;
  // J-11: ECDSA signatures are raw R||S of a fixed length, never DER.
  if (spec.signatureLength !== undefined && signature.length !== spec.signatureLength) return false;
  const data = Buffer.from(d.signingInput, 'latin1');
  try {
    if (spec.family === 'ES') return verifySignature(spec.hash, data, { key, dsaEncoding: 'ieee-p1363' }, signature);
    if (spec.family === 'PS') {
      return verifySignature(
        spec.hash,
        data,
        { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST },
        signature,
      );
    }
    return verifySignature(spec.hash, data, key, signature);
  } catch {
    return false;
  }
}

function checkTimes(d: Decoded, options: JwtSvidValidationOptions): void {
  const leeway = options.leewaySeconds ?? DEFAULT_JWT_LEEWAY_SECONDS;
  if (typeof leeway !== 'number' || !Number.isFinite(leeway) || leeway < 0) {
    throw new TypeError('leewaySeconds must be a non-negative number');
  }
  const now = (options.now ?? (options.clock ?? systemClock).now()).getTime() / 1000;
  if (Number.isNaN(now)) throw new TypeError('validation time is an invalid Date');
  if (now >= d.exp + leeway) {
    throw new JwtSvidError(
      'ERR_JWTSVID_EXPIRED',
      `JWT-SVID for ${d.id} expired at ${new Date(d.exp * 1000).toISOString()} (claim "exp", J-8)`,
    );
  }
  if (d.nbf !== undefined && now + leeway < d.nbf) {
    throw new JwtSvidError(
      'ERR_JWTSVID_EXPIRED',
      `JWT-SVID for ${d.id} is not valid before ${new Date(d.nbf * 1000).toISOString()} (claim "nbf", J-8)`,
    );
  }
  if (d.iat !== undefined && now + leeway < d.iat) {
    throw new JwtSvidError(
      'ERR_JWTSVID_EXPIRED',
      `JWT-SVID for ${d.id} was issued in the future, at ${new Date(d.iat * 1000).toISOString()} (claim "iat", J-8)`,
    );
  }
}

function checkAudience(d: Decoded, audiences: readonly string[]): void {
  if (!audiences.some((a) => d.audience.includes(a))) {
    throw new JwtSvidError(
      'ERR_JWTSVID_AUDIENCE',
      `JWT-SVID for ${d.id}: claim "aud" ${quote(JSON.stringify(d.audience))} contains none of the expected audiences ${quote(JSON.stringify(audiences))} (J-7)`,
    );
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
