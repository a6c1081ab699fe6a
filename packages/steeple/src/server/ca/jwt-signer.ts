/**
 * JWT-SVID minting with one signing key (JWT-SVID spec; conformance J-1…J-13, shaped like
 * SPIRE's): compact serialization; header exactly `{"alg","kid","typ":"JWT"}` (J-5);
 * claims `aud` (always an array), `exp`, `iat`, `iss` when `jwt_issuer` is configured,
 * and `sub`; ES256/ES384 signatures as raw R||S (J-11), RS256 for RSA keys; `exp` capped
 * at the key's notAfter, so no token outlives the key that vouches for it.
 * @module
 */
import { createPublicKey, type KeyObject, randomBytes, sign } from 'node:crypto';
import { type Clock, SpiffeId, systemClock, type TrustDomain } from '@steeple/spiffe';
import { CaError, SvidRequestError } from './ca-errors.js';
import { MAX_SPIFFE_ID_BYTES } from './x509-ca.js';

/** What builds a {@link JwtSigner}. */
export interface JwtSignerInit {
  readonly trustDomain: TrustDomain;
  /** The key ID published in the bundle with the public key. */
  readonly kid: string;
  /** EC P-256 (ES256), EC P-384 (ES384) or RSA (RS256). */
  readonly privateKey: KeyObject;
  /** Tokens never expire after this. */
  readonly notAfter: Date;
  readonly clock?: Clock;
  /** The `iss` claim (`jwt_issuer`); omitted when undefined. */
  readonly issuer?: string;
}

/** One JWT-SVID request. */
export interface JwtSvidRequest {
  readonly spiffeId: SpiffeId;
  /** At least one non-empty audience (J-7). */
  readonly audience: readonly string[];
  /** Requested lifetime; capped at the key's notAfter. */
  readonly ttlSeconds: number;
}

/** A minted JWT-SVID. `token` is a bearer credential: never log it. */
export interface MintedJwtSvid {
  readonly token: string;
  readonly issuedAt: Date;
  readonly expiresAt: Date;
}

interface Algorithm {
  readonly alg: 'ES256' | 'ES384' | 'RS256';
  readonly hash: string;
  readonly dsaEncoding?: 'ieee-p1363';
}

function algorithmFor(key: KeyObject): Algorithm {
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return { alg: 'ES256', hash: 'sha256', dsaEncoding: 'ieee-p1363' };
    if (curve === 'secp384r1') return { alg: 'ES384', hash: 'sha384', dsaEncoding: 'ieee-p1363' };
    throw new TypeError(`JwtSigner: EC curve ${curve} is not supported (P-256, P-384)`);
  }
  if (key.asymmetricKeyType === 'rsa') return { alg: 'RS256', hash: 'sha256' };
  throw new TypeError(`JwtSigner: key type ${key.asymmetricKeyType} is not supported`);
}

const KID_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/** A random 32-character alphanumeric key ID, like SPIRE's. */
export function newKeyId(): string {
  // 62 does not divide 256: draw bytes below 248 (= 4 × 62) so every character is equally likely.
  let out = '';
  while (out.length < 32) {
    for (const b of randomBytes(48)) {
      if (b < 248 && out.length < 32) out += KID_ALPHABET[b % 62];
    }
  }
  return out;
}

const b64url = (s: string) => Buffer.from(s, 'utf8').toString('base64url');

/** Mints JWT-SVIDs for one trust domain with one key. Immutable. */
export class JwtSigner {
  readonly trustDomain: TrustDomain;
  readonly kid: string;
  readonly publicKey: KeyObject;
  readonly notAfter: Date;
  /** `ES256`, `ES384` or `RS256`. */
  readonly alg: string;
  readonly #privateKey: KeyObject;
  readonly #algorithm: Algorithm;
  readonly #header: string;
  readonly #clock: Clock;
  readonly #issuer: string | undefined;

  /** Throws a TypeError for a key that is not EC P-256/P-384 or RSA, or an empty kid. */
  constructor(init: JwtSignerInit) {
    if (typeof init.kid !== 'string' || init.kid === '')
      throw new TypeError('JwtSigner: kid must be a non-empty string');
    if (init.privateKey.type !== 'private') throw new TypeError('JwtSigner: a private key is required');
    this.#algorithm = algorithmFor(init.privateKey);
    this.#privateKey = init.privateKey;
    this.trustDomain = init.trustDomain;
    this.kid = init.kid;
    this.alg = this.#algorithm.alg;
    this.publicKey = createPublicKey(init.privateKey);
    this.notAfter = new Date(init.notAfter.getTime());
    this.#clock = init.clock ?? systemClock;
    this.#issuer = init.issuer;
    // Exactly these three members, in this order (J-5).
    this.#header = b64url(JSON.stringify({ alg: this.#algorithm.alg, kid: init.kid, typ: 'JWT' }));
  }

  /**
   * Mints a JWT-SVID. Throws {@link SvidRequestError} for an ID outside this trust domain
   * or without a path, an empty audience or a non-positive TTL, and {@link CaError}
   * `ERR_CA_NOT_READY` when the key has expired.
   */
  mintJwtSvid(request: JwtSvidRequest): MintedJwtSvid {
    const sub = this.#checkId(request.spiffeId);
    const audience = checkAudience(request.audience);
    const ttl = request.ttlSeconds;
    if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl <= 0) {
      throw new SvidRequestError(`TTL ${String(ttl)} must be a positive number of seconds`);
    }
    const nowMs = this.#clock.now().getTime();
    const iat = Math.floor(nowMs / 1000);
    const exp = Math.min(Math.floor((nowMs + ttl * 1000) / 1000), Math.floor(this.notAfter.getTime() / 1000));
    if (exp <= iat) {
      throw new CaError(
        'ERR_CA_NOT_READY',
        `the JWT signing key ${this.kid} expired at ${this.notAfter.toISOString()}; nothing can be signed with it`,
      );
    }
    // Keys in lexical order, as go-jose writes SPIRE's claims.
    const claims: Record<string, unknown> = { aud: audience, exp, iat };
    if (this.#issuer !== undefined) claims['iss'] = this.#issuer;
    claims['sub'] = sub;
    const signingInput = `${this.#header}.${b64url(JSON.stringify(claims))}`;
    const signature = this.#algorithm.dsaEncoding
      ? sign(this.#algorithm.hash, Buffer.from(signingInput), {
          key: this.#privateKey,
          dsaEncoding: this.#algorithm.dsaEncoding,
        })
      : sign(this.#algorithm.hash, Buffer.from(signingInput), this.#privateKey);
    return {
      token: `${signingInput}.${signature.toString('base64url')}`,
      issuedAt: new Date(iat * 1000),
      expiresAt: new Date(exp * 1000),
    };
  }

  #checkId(id: SpiffeId): string {
    if (!(id instanceof SpiffeId)) throw new TypeError('spiffeId must be a SpiffeId');
    const text = id.toString();
    if (!id.memberOf(this.trustDomain)) {
      throw new SvidRequestError(`${text} is outside the trust domain "${this.trustDomain.name}" of this CA`);
    }
    if (id.isTrustDomainId()) throw new SvidRequestError(`${text} has no path; a JWT-SVID's subject needs one`);
    if (Buffer.byteLength(text) > MAX_SPIFFE_ID_BYTES) {
      throw new SvidRequestError(`the SPIFFE ID is longer than ${MAX_SPIFFE_ID_BYTES} bytes (ID-5)`);
    }
    return text;
  }
}

function checkAudience(audience: readonly string[]): string[] {
  if (!Array.isArray(audience)) throw new TypeError('audience must be an array of strings');
  if (audience.length === 0) throw new SvidRequestError('the audience must name at least one recipient (J-7)');
  for (const a of audience) {
    if (typeof a !== 'string' || a === '') throw new SvidRequestError('an audience value is empty (J-7)');
  }
  return [...audience];
}
