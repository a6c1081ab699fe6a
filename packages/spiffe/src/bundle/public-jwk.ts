/**
 * Public JSON Web Keys as bundles hold them: only the key members of kty EC, RSA or OKP,
 * imported once into a node:crypto KeyObject. Internal to the bundle layer.
 * @module
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';

/** Key types a bundle may hold; a JWK of any other `kty` is ignored (B-6). */
export const SUPPORTED_KEY_TYPES: ReadonlySet<string> = new Set(['EC', 'RSA', 'OKP']);

/** The members that carry the public key, per key type, in the order go-jose writes them. */
const KEY_MEMBERS: Readonly<Record<string, readonly string[]>> = {
  EC: ['crv', 'x', 'y'],
  RSA: ['n', 'e'],
  OKP: ['crv', 'x'],
};

/** Members that only a private or symmetric key has; a bundle must never carry them. */
const SECRET_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/** True when the JWK carries any key member (public or private) of any supported key type. */
export function hasKeyMaterial(jwk: Readonly<Record<string, unknown>>): boolean {
  return ['crv', 'x', 'y', 'n', 'e', ...SECRET_MEMBERS].some((m) => jwk[m] !== undefined);
}

/** A public key and its canonical JWK form (key members only, frozen). */
export interface ImportedKey {
  readonly key: KeyObject;
  readonly jwk: Readonly<JsonWebKey>;
}

/**
 * Imports the public key of a JWK whose `kty` is supported. Throws an Error whose message
 * names the problem (never the key material); callers wrap it in their own typed error.
 */
export function importPublicJwk(jwk: Readonly<Record<string, unknown>>): ImportedKey {
  const kty = jwk['kty'];
  const members = typeof kty === 'string' ? KEY_MEMBERS[kty] : undefined;
  if (typeof kty !== 'string' || members === undefined) throw new Error(`unsupported key type ${JSON.stringify(kty)}`);
  const secret = SECRET_MEMBERS.find((m) => jwk[m] !== undefined);
  if (secret !== undefined)
    throw new Error(`holds private key material (member "${secret}"); a bundle holds public keys only`);
  const input: Record<string, string> = { kty };
  for (const m of members) {
    const v = jwk[m];
    if (typeof v !== 'string' || v === '') throw new Error(`${kty} key member "${m}" must be a non-empty string`);
    if (!/^[A-Za-z0-9_-]+$/.test(v)) throw new Error(`${kty} key member "${m}" is not base64url`);
    input[m] = v;
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: input as JsonWebKey, format: 'jwk' });
  } catch (cause) {
    throw new Error(`${kty} key is not a valid public key (${(cause as Error).message})`);
  }
  return { key, jwk: canonicalJwk(key) };
}

/** The canonical public JWK (key members only) of a public KeyObject. Throws TypeError for private or unsupported keys. */
export function canonicalJwk(key: KeyObject): Readonly<JsonWebKey> {
  if (key.type !== 'public') throw new TypeError(`expected a public key, got a ${key.type} key`);
  let exported: JsonWebKey;
  try {
    exported = key.export({ format: 'jwk' });
  } catch (cause) {
    throw new TypeError(`key of type ${String(key.asymmetricKeyType)} cannot be written as a JWK`, { cause });
  }
  const kty = exported.kty as string;
  const members = KEY_MEMBERS[kty];
  if (members === undefined) throw new TypeError(`key type ${kty} is not supported in a bundle`);
  const out: Record<string, string> = { kty };
  for (const m of members) out[m] = exported[m] as string;
  return Object.freeze(out as JsonWebKey);
}

/** True when two canonical JWKs describe the same public key. */
export function sameJwk(a: Readonly<JsonWebKey>, b: Readonly<JsonWebKey>): boolean {
  const members = KEY_MEMBERS[a.kty as string];
  if (members === undefined || a.kty !== b.kty) return false;
  return members.every((m) => a[m] === b[m]);
}

/** The key members of a canonical JWK in go-jose's order, for marshalling. */
export function keyMembers(jwk: Readonly<JsonWebKey>): [string, string][] {
  const members = KEY_MEMBERS[jwk.kty as string] ?? [];
  return members.map((m) => [m, jwk[m] as string]);
}
