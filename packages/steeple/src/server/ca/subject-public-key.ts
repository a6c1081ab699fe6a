/**
 * The public keys the CA certifies: EC P-256 and P-384 (uncompressed points) and RSA of
 * 2048 to 8192 bits. A SubjectPublicKeyInfo is checked byte for byte against the one
 * encoding each kind may have, so the DER that goes verbatim into a certificate is
 * exactly what Go, OpenSSL and Java parse (Go rejects compressed points and RSA keys
 * without NULL parameters, for instance).
 *
 * Importing a key costs as much as a signature check in OpenSSL 3.0 (≈ 110 µs for an EC
 * SPKI through `createPublicKey`, which runs the generic decoder), so EC keys go through
 * WebCrypto's raw point import (≈ 50 µs) and RSA keys through PKCS#1 (≈ 5 µs).
 * @module
 */
import { createPublicKey, type KeyObject, KeyObject as KeyObjectClass, webcrypto } from 'node:crypto';
import { expectTlv, positiveInteger, readTlv, TAG } from './der-reader.js';

/** The key types a CA accepts in a CSR or signs for. */
export type SubjectKeyType = 'ec-p256' | 'ec-p384' | 'rsa';

/** Smallest and largest RSA modulus the CA certifies. */
export const MIN_RSA_BITS = 2048;
export const MAX_RSA_BITS = 8192;

/** A SubjectPublicKeyInfo that passed {@link parseSubjectPublicKeyInfo}. */
export interface SubjectPublicKey {
  readonly type: SubjectKeyType;
  /** The whole SubjectPublicKeyInfo DER, as it goes into a certificate. */
  readonly spki: Buffer;
  /** Bits of the RSA modulus, or of the curve. */
  readonly bits: number;
  /** EC: the uncompressed point; RSA: the RSAPublicKey (PKCS#1) DER. */
  readonly keyBytes: Buffer;
}

// The exact DER of each accepted AlgorithmIdentifier, as hex.
const EC_P256_ALGORITHM = '301306072a8648ce3d020106082a8648ce3d030107';
const EC_P384_ALGORITHM = '301006072a8648ce3d020106052b81040022';
const RSA_ALGORITHM = '300d06092a864886f70d0101010500';
const EC_PUBLIC_KEY_OID = '06072a8648ce3d0201';
const RSA_OID = '06092a864886f70d010101';

const EC_CURVES = {
  [EC_P256_ALGORITHM]: { type: 'ec-p256', bits: 256, pointLength: 65, namedCurve: 'P-256' },
  [EC_P384_ALGORITHM]: { type: 'ec-p384', bits: 384, pointLength: 97, namedCurve: 'P-384' },
} as const;

/**
 * Checks a SubjectPublicKeyInfo and says what key it holds. Throws a RangeError whose
 * message is the rule broken (callers wrap it in their typed error).
 */
export function parseSubjectPublicKeyInfo(der: Uint8Array): SubjectPublicKey {
  const buf = Buffer.isBuffer(der) ? der : Buffer.from(der.buffer, der.byteOffset, der.byteLength);
  const outer = expectTlv(buf, 0, buf.length, TAG.sequence, 'SubjectPublicKeyInfo');
  if (outer.end !== buf.length) throw new RangeError('trailing bytes after the SubjectPublicKeyInfo');
  const alg = expectTlv(buf, outer.start, outer.end, TAG.sequence, 'SubjectPublicKeyInfo.algorithm');
  const key = expectTlv(buf, alg.end, outer.end, TAG.bitString, 'SubjectPublicKeyInfo.subjectPublicKey');
  if (key.end !== outer.end) throw new RangeError('trailing bytes inside the SubjectPublicKeyInfo');
  if (key.end === key.start || buf[key.start] !== 0)
    throw new RangeError('public key BIT STRING must have no unused bits');
  const algorithm = buf.toString('hex', alg.offset, alg.end);
  const keyBytes = buf.subarray(key.start + 1, key.end);

  const curve = EC_CURVES[algorithm as keyof typeof EC_CURVES];
  if (curve) {
    if (keyBytes.length !== curve.pointLength || keyBytes[0] !== 0x04) {
      throw new RangeError(
        `the ${curve.namedCurve} public key must be an uncompressed point of ${curve.pointLength} bytes`,
      );
    }
    return { type: curve.type, spki: buf, bits: curve.bits, keyBytes };
  }
  if (algorithm === RSA_ALGORITHM) return { type: 'rsa', spki: buf, bits: rsaModulusBits(keyBytes), keyBytes };

  const algOid = readTlv(buf, alg.start, alg.end);
  const oid = buf.toString('hex', algOid.offset, algOid.end);
  if (oid === EC_PUBLIC_KEY_OID) throw new RangeError('EC keys must use the named curve P-256 or P-384');
  if (oid === RSA_OID) throw new RangeError('RSA key algorithm parameters must be NULL');
  throw new RangeError('unsupported public key algorithm (allowed: EC P-256, EC P-384, RSA)');
}

function rsaModulusBits(pkcs1: Buffer): number {
  const seq = expectTlv(pkcs1, 0, pkcs1.length, TAG.sequence, 'RSAPublicKey');
  if (seq.end !== pkcs1.length) throw new RangeError('trailing bytes after the RSAPublicKey');
  const n = expectTlv(pkcs1, seq.start, seq.end, TAG.integer, 'RSA modulus');
  const e = expectTlv(pkcs1, n.end, seq.end, TAG.integer, 'RSA public exponent');
  if (e.end !== seq.end) throw new RangeError('trailing bytes inside the RSAPublicKey');
  const modulus = positiveInteger(pkcs1, n, 'RSA modulus');
  const exponent = positiveInteger(pkcs1, e, 'RSA public exponent');
  // Go's crypto/rsa refuses exponents of 2^31 and above; even exponents are not RSA.
  if (exponent.length > 4 || (exponent.length === 4 && (exponent[0] as number) >= 0x80)) {
    throw new RangeError('RSA public exponent must be below 2^31');
  }
  const e32 = exponent.reduce((acc, b) => acc * 256 + b, 0);
  if (e32 < 3 || e32 % 2 === 0) throw new RangeError('RSA public exponent must be odd and at least 3');
  const bits = (modulus.length - 1) * 8 + bitLength(modulus[0] as number);
  if (bits < MIN_RSA_BITS) throw new RangeError(`RSA key of ${bits} bits is too small (minimum ${MIN_RSA_BITS})`);
  if (bits > MAX_RSA_BITS) throw new RangeError(`RSA key of ${bits} bits is too large (maximum ${MAX_RSA_BITS})`);
  return bits;
}

function bitLength(byte: number): number {
  let n = 0;
  for (let b = byte; b > 0; b >>= 1) n++;
  return n;
}

/**
 * A node:crypto public key for a parsed SubjectPublicKeyInfo. Rejects (with a RangeError)
 * an EC point that is not on its curve.
 */
export async function importSubjectPublicKey(key: SubjectPublicKey): Promise<KeyObject> {
  if (key.type === 'rsa') return createPublicKey({ key: key.keyBytes, format: 'der', type: 'pkcs1' });
  const namedCurve = key.type === 'ec-p256' ? 'P-256' : 'P-384';
  let cryptoKey: webcrypto.CryptoKey;
  try {
    cryptoKey = await webcrypto.subtle.importKey('raw', key.keyBytes, { name: 'ECDSA', namedCurve }, false, ['verify']);
  } catch (cause) {
    throw new RangeError(`the ${namedCurve} public key is not a point on the curve`, { cause });
  }
  return KeyObjectClass.from(cryptoKey);
}

/**
 * What kind of key a KeyObject is, if the CA accepts it; otherwise a RangeError naming why.
 * Works for private and public keys.
 */
export function subjectKeyTypeOf(key: KeyObject): SubjectKeyType {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'ec') {
    if (details?.namedCurve === 'prime256v1') return 'ec-p256';
    if (details?.namedCurve === 'secp384r1') return 'ec-p384';
    throw new RangeError(`EC curve ${details?.namedCurve} is not supported (allowed: P-256, P-384)`);
  }
  if (key.asymmetricKeyType === 'rsa') {
    const bits = details?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) throw new RangeError(`RSA key of ${bits} bits is too small (minimum ${MIN_RSA_BITS})`);
    if (bits > MAX_RSA_BITS) throw new RangeError(`RSA key of ${bits} bits is too large (maximum ${MAX_RSA_BITS})`);
    return 'rsa';
  }
  throw new RangeError(`key type ${key.asymmetricKeyType} is not supported (allowed: EC P-256, EC P-384, RSA)`);
}
