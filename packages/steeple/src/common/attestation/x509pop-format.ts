/**
 * The x509pop wire format, shared by the server's attestor and the agent's client (both
 * import it from common/, since server and agent never import each other).
 *
 *   AttestationData.type    = "x509pop"
 *   AttestationData.payload = the node's certificate chain as concatenated DER
 *                             certificates, leaf first, then any intermediates (the root
 *                             may be included; it is ignored). At most 16 certificates
 *                             and 64 KiB.
 *   challenge               = 32 random bytes (the nonce), sent once.
 *   challenge_response      = a signature with the leaf's private key over
 *                               "steeple x509pop v1" 0x00 <trust domain name> 0x00 <nonce>
 *                             (ASCII, then the 32 nonce bytes), with
 *                               EC P-256 / P-384 / P-521: ECDSA with SHA-256 / SHA-384 /
 *                                 SHA-512, DER-encoded (r, s) — as in X.509 and TLS;
 *                               RSA (at least 2048 bits): RSASSA-PSS, SHA-256, MGF1-SHA-256,
 *                                 salt length 32 (SPIRE's x509pop also uses PSS);
 *                               Ed25519: pure Ed25519.
 *
 * Why the signed message is not the bare nonce: the fixed prefix keeps the signature from
 * ever being valid for any other protocol that uses the same key (TLS, code signing), as
 * TLS 1.3 does for CertificateVerify; the trust domain name binds it to the server that
 * asked, so a server of one trust domain cannot relay another's challenge to an agent
 * whose certificate both trust.
 * @module
 */
import type { KeyObject } from 'node:crypto';

/** The plugin name, which is also `AttestationData.type`. */
export const X509POP_ATTESTOR_NAME = 'x509pop';
/** Length of the challenge nonce in bytes. */
export const X509POP_NONCE_LENGTH = 32;
/** Most certificates a payload may carry. */
export const X509POP_MAX_CERTIFICATES = 16;
/** Most bytes a payload may have. */
export const X509POP_MAX_PAYLOAD_BYTES = 64 * 1024;
/** Most bytes a challenge response may have (an RSA-8192 signature is 1,024 bytes). */
export const X509POP_MAX_RESPONSE_BYTES = 2048;
/** The ASCII prefix of every signed challenge. */
export const X509POP_CONTEXT = 'steeple x509pop v1';

/** The bytes the agent signs for `nonce` when attesting to a server of `trustDomain`. */
export function x509PopSignedMessage(trustDomain: string, nonce: Uint8Array): Buffer {
  return Buffer.concat([
    Buffer.from(X509POP_CONTEXT, 'ascii'),
    Buffer.from([0]),
    Buffer.from(trustDomain, 'ascii'),
    Buffer.from([0]),
    nonce,
  ]);
}

/** How a key of each supported type signs a challenge: the hash for crypto.sign/verify and the options. */
export interface X509PopSignatureScheme {
  /** Hash name for `crypto.sign`/`crypto.verify`; null for Ed25519. */
  readonly hash: string | null;
  readonly padding?: number;
  readonly saltLength?: number;
  readonly dsaEncoding?: 'der';
}

const RSA_PKCS1_PSS_PADDING = 6; // crypto.constants.RSA_PKCS1_PSS_PADDING
const MIN_RSA_BITS = 2048;

/** The signature scheme for `key` (public or private), or a reason it is not supported. */
export function x509PopSchemeFor(key: KeyObject): X509PopSignatureScheme | string {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  switch (type) {
    case 'ec':
      switch (details.namedCurve) {
        case 'prime256v1':
          return { hash: 'sha256', dsaEncoding: 'der' };
        case 'secp384r1':
          return { hash: 'sha384', dsaEncoding: 'der' };
        case 'secp521r1':
          return { hash: 'sha512', dsaEncoding: 'der' };
        default:
          return `EC curve ${String(details.namedCurve)} is not supported (use P-256, P-384 or P-521)`;
      }
    case 'rsa':
    case 'rsa-pss':
      if ((details.modulusLength ?? 0) < MIN_RSA_BITS) {
        return `RSA key of ${details.modulusLength} bits is too short (at least ${MIN_RSA_BITS})`;
      }
      return { hash: 'sha256', padding: RSA_PKCS1_PSS_PADDING, saltLength: 32 };
    case 'ed25519':
      return { hash: null };
    default:
      return `key type ${String(type)} is not supported (use EC, RSA or Ed25519)`;
  }
}

/**
 * Splits concatenated DER certificates into one byte array each, checking only the
 * framing (SEQUENCE, definite length, nothing left over). Throws a RangeError whose
 * message is safe to show.
 */
export function splitX509PopCertificates(payload: Uint8Array): Uint8Array[] {
  if (payload.length === 0) throw new RangeError('payload is empty (expected DER certificates)');
  if (payload.length > X509POP_MAX_PAYLOAD_BYTES) {
    throw new RangeError(`payload is larger than ${X509POP_MAX_PAYLOAD_BYTES} bytes`);
  }
  const out: Uint8Array[] = [];
  let offset = 0;
  while (offset < payload.length) {
    if (out.length === X509POP_MAX_CERTIFICATES) {
      throw new RangeError(`payload holds more than ${X509POP_MAX_CERTIFICATES} certificates`);
    }
    const at = `certificate #${out.length} (byte ${offset})`;
    if (payload[offset] !== 0x30) throw new RangeError(`${at} is not a DER SEQUENCE`);
    const first = payload[offset + 1];
    if (first === undefined) throw new RangeError(`${at} is truncated`);
    let length: number;
    let headerLength: number;
    if (first < 0x80) {
      length = first;
      headerLength = 2;
    } else {
      const count = first & 0x7f;
      if (count === 0 || count > 3) throw new RangeError(`${at} has an unsupported length encoding`);
      if (offset + 2 + count > payload.length) throw new RangeError(`${at} is truncated`);
      length = 0;
      for (let i = 0; i < count; i++) length = length * 256 + (payload[offset + 2 + i] as number);
      headerLength = 2 + count;
    }
    const end = offset + headerLength + length;
    if (end > payload.length) throw new RangeError(`${at} is truncated`);
    out.push(payload.subarray(offset, end));
    offset = end;
  }
  return out;
}

/** The payload for a chain (leaf first): the certificates' DER, concatenated. */
export function encodeX509PopPayload(certificates: readonly { readonly raw: Uint8Array }[]): Buffer {
  return Buffer.concat(certificates.map((c) => c.raw));
}
