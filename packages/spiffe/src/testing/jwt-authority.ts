/**
 * A JWT-SVID signing authority for tests: mints spec-conformant JWT-SVIDs and, on
 * request, deliberately broken ones (`alg: none`, HS256 signed with the public key as the
 * HMAC secret, missing claims, wrong `typ`, another trust domain's key, …).
 * @module
 */
import {
  constants,
  createHmac,
  createPublicKey,
  generateKeyPairSync,
  type JsonWebKey,
  type KeyObject,
  randomBytes,
  sign as signData,
} from 'node:crypto';
import { JwtBundle } from '../bundle/jwt-bundle.js';
import { type Clock, systemClock } from '../clock.js';
import type { SpiffeId } from '../spiffeid/spiffe-id.js';
import { TrustDomain } from '../spiffeid/trust-domain.js';
import { JWT_SVID_ALGORITHMS, type JwtSvidAlgorithm } from '../svid/jwt-svid.js';

export interface TestJwtAuthorityOptions {
  readonly trustDomain: TrustDomain | string;
  /** Source of `iat`/`exp`; default the system clock. */
  readonly clock?: Clock;
  /** Signature algorithm; default ES256. */
  readonly alg?: JwtSvidAlgorithm;
  /** Key ID; default a random one. */
  readonly kid?: string;
  /** Use this private key instead of generating one (saves RSA key generation in tests). */
  readonly privateKey?: KeyObject;
}

export interface JwtMintOptions {
  /** Lifetime; default 300 s (SPIRE's default JWT-SVID TTL). */
  readonly ttlSeconds?: number;
  /** Header members merged over `{alg, kid, typ: 'JWT'}`; `undefined` removes one. `alg: 'none'` gives an empty signature, `alg: 'HS256'` an HMAC keyed with the public key PEM. */
  readonly header?: Readonly<Record<string, unknown>>;
  /** Claims merged over `{sub, aud, exp, iat}`; `undefined` removes one. */
  readonly claims?: Readonly<Record<string, unknown>>;
  /** Sign with this private key instead of the authority's (e.g. another trust domain's key). */
  readonly signWith?: KeyObject;
  /** Use `header` and `claims` exactly as given, without the defaults. */
  readonly raw?: boolean;
  /** Exact header JSON text (overrides `header`), e.g. with duplicate members. */
  readonly headerJson?: string;
  /** Exact payload JSON text (overrides `claims`), e.g. with duplicate members. */
  readonly claimsJson?: string;
}

export interface TestJwtAuthority {
  readonly trustDomain: TrustDomain;
  readonly kid: string;
  readonly alg: JwtSvidAlgorithm;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** The public key as a JWK with its `kid`. */
  readonly publicJwk: JsonWebKey;
  /** A JWT bundle of the trust domain holding this authority's key. */
  jwtBundle(): JwtBundle;
  /** Mints a JWT-SVID (compact serialization) for `sub` and `audience`. */
  mint(sub: SpiffeId | string, audience: string | readonly string[], options?: JwtMintOptions): string;
}

function generateKey(alg: JwtSvidAlgorithm): KeyObject {
  if (alg.startsWith('ES')) {
    const namedCurve = alg === 'ES256' ? 'P-256' : alg === 'ES384' ? 'P-384' : 'P-521';
    return generateKeyPairSync('ec', { namedCurve }).privateKey;
  }
  return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
}

/** The algorithm a key signs with when the header names one it cannot use. */
function naturalAlgorithm(key: KeyObject, preferred: JwtSvidAlgorithm): string {
  const type = key.asymmetricKeyType;
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    return curve === 'secp384r1' ? 'ES384' : curve === 'secp521r1' ? 'ES512' : 'ES256';
  }
  if (type === 'rsa') return preferred.startsWith('RS') || preferred.startsWith('PS') ? preferred : 'RS256';
  return 'EdDSA';
}

function fits(alg: string, key: KeyObject): boolean {
  const type = key.asymmetricKeyType;
  if (alg.startsWith('ES')) return type === 'ec' && naturalAlgorithm(key, 'ES256') === alg;
  if (alg.startsWith('RS') || alg.startsWith('PS')) return type === 'rsa';
  return alg === 'EdDSA' && (type === 'ed25519' || type === 'ed448');
}

function signWithAlgorithm(alg: string, data: Buffer, key: KeyObject): Buffer {
  const hash = `sha${alg.slice(2)}`;
  if (alg.startsWith('ES')) return signData(hash, data, { key, dsaEncoding: 'ieee-p1363' });
  if (alg.startsWith('PS')) {
    return signData(hash, data, {
      key,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
    });
  }
  if (alg.startsWith('RS')) return signData(hash, data, key);
  return signData(null, data, key);
}

function merge(
  base: Record<string, unknown>,
  over: Readonly<Record<string, unknown>> | undefined,
): Record<string, unknown> {
  const out = { ...base };
  for (const [k, v] of Object.entries(over ?? {})) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

const b64url = (text: string): string => Buffer.from(text, 'utf8').toString('base64url');

/** Creates a JWT-SVID authority for one trust domain. */
export function createTestJwtAuthority(options: TestJwtAuthorityOptions): TestJwtAuthority {
  const trustDomain = TrustDomain.from(options.trustDomain);
  const clock = options.clock ?? systemClock;
  const alg = options.alg ?? 'ES256';
  if (!(JWT_SVID_ALGORITHMS as readonly string[]).includes(alg)) throw new TypeError(`unsupported algorithm ${alg}`);
  const kid = options.kid ?? randomBytes(12).toString('base64url');
  const privateKey = options.privateKey ?? generateKey(alg);
  const publicKey = createPublicKey(privateKey);
  const publicJwk: JsonWebKey = { ...publicKey.export({ format: 'jwk' }), kid };
  const publicPem = publicKey.export({ format: 'pem', type: 'spki' }) as string;
  const bundle = JwtBundle.fromAuthorities(trustDomain, new Map([[kid, publicKey]]));

  return {
    trustDomain,
    kid,
    alg,
    privateKey,
    publicKey,
    publicJwk,
    jwtBundle: () => bundle,
    mint(sub, audience, mintOptions = {}) {
      const iat = Math.floor(clock.now().getTime() / 1000);
      const ttl = mintOptions.ttlSeconds ?? 300;
      const header = mintOptions.raw
        ? merge({}, mintOptions.header)
        : merge({ alg, kid, typ: 'JWT' }, mintOptions.header);
      const claims = mintOptions.raw
        ? merge({}, mintOptions.claims)
        : merge(
            {
              sub: sub.toString(),
              aud: typeof audience === 'string' ? [audience] : [...audience],
              exp: iat + ttl,
              iat,
            },
            mintOptions.claims,
          );
      const signingInput = `${b64url(mintOptions.headerJson ?? JSON.stringify(header))}.${b64url(
        mintOptions.claimsJson ?? JSON.stringify(claims),
      )}`;
      const data = Buffer.from(signingInput, 'latin1');
      const headerAlg = typeof header['alg'] === 'string' ? header['alg'] : alg;
      const key = mintOptions.signWith ?? privateKey;
      let signature: Buffer;
      if (headerAlg === 'none') {
        signature = Buffer.alloc(0);
      } else if (/^HS(256|384|512)$/.test(headerAlg)) {
        // The classic key-confusion attack: HMAC keyed with the verifier's public key.
        signature = createHmac(`sha${headerAlg.slice(2)}`, publicPem)
          .update(data)
          .digest();
      } else {
        signature = signWithAlgorithm(fits(headerAlg, key) ? headerAlg : naturalAlgorithm(key, alg), data, key);
      }
      return `${signingInput}.${signature.toString('base64url')}`;
    },
  };
}
