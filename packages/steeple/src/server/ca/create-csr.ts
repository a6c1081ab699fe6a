/**
 * Builds PKCS#10 requests: what an agent sends, made here for tests, benchmarks and
 * tools that need a CSR for a key (`steeple server x509 mint` style flows). Not on any
 * hot path.
 * @module
 */
import { createPublicKey, type KeyObject, sign } from 'node:crypto';
import { type DistinguishedName, encodeName } from '@steeple/spiffe/issuance';

/** Options of {@link createCsr}. */
export interface CreateCsrOptions {
  /** Default: the empty name (the CA ignores the subject anyway). */
  readonly subject?: DistinguishedName;
  /** Digest of the self-signature; default sha256. */
  readonly hash?: 'sha256' | 'sha384' | 'sha512';
  /** The `version` INTEGER value; default 0. Anything else makes an invalid CSR (for tests). */
  readonly version?: number;
}

/** DER of one element: `tag`, a minimal length, then the parts. */
export function derElement(tag: number, ...parts: Uint8Array[]): Buffer {
  const body = Buffer.concat(parts);
  const n = body.length;
  const head =
    n < 0x80
      ? [tag, n]
      : n < 0x100
        ? [tag, 0x81, n]
        : n < 0x10000
          ? [tag, 0x82, n >> 8, n & 0xff]
          : [tag, 0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return Buffer.concat([Buffer.from(head), body]);
}

const ECDSA_ALGORITHMS = {
  sha256: '300a06082a8648ce3d040302',
  sha384: '300a06082a8648ce3d040303',
  sha512: '300a06082a8648ce3d040304',
} as const;
const RSA_ALGORITHMS = {
  sha256: '300d06092a864886f70d01010b0500',
  sha384: '300d06092a864886f70d01010c0500',
  sha512: '300d06092a864886f70d01010d0500',
} as const;

/** A DER PKCS#10 request for `privateKey`'s public key, self-signed with it (EC or RSA). */
export function createCsr(privateKey: KeyObject, options: CreateCsrOptions = {}): Buffer {
  const hash = options.hash ?? 'sha256';
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  const info = derElement(
    0x30,
    derElement(0x02, Buffer.from([options.version ?? 0])),
    encodeName(options.subject ?? []),
    spki,
    derElement(0xa0),
  );
  const type = privateKey.asymmetricKeyType;
  if (type !== 'ec' && type !== 'rsa') throw new TypeError(`createCsr: unsupported key type ${type}`);
  const algorithm = Buffer.from((type === 'ec' ? ECDSA_ALGORITHMS : RSA_ALGORITHMS)[hash], 'hex');
  const signature = sign(hash, info, privateKey);
  return derElement(0x30, info, algorithm, derElement(0x03, Buffer.from([0]), signature));
}
