/**
 * X.509-SVIDs held by a workload: a certificate chain (leaf first) plus the leaf's
 * private key, validated against the X509-SVID rules when parsed.
 * @module
 */
import { createPrivateKey, createPublicKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { X509SvidError } from '../errors.js';
import { concatBytes, splitDerSequences } from '../internal/der.js';
import { decodePem, encodePem } from '../internal/pem.js';
import { certificateFromDer } from '../internal/x509-fields.js';
import type { SpiffeId } from '../spiffeid/spiffe-id.js';
import { checkSigningCertificate, describeCertificate, fieldsOf, leafSpiffeId } from './x509-svid-rules.js';

/**
 * Anything that can hand out the current X.509-SVID: a static {@link X509Svid} or a
 * live Workload API source. TLS code never knows which one it has.
 */
export interface X509SvidSource {
  getX509Svid(): X509Svid;
}

/** Options for {@link X509Svid.parse} and friends. */
export interface X509SvidOptions {
  /** The Workload API's operator-chosen hint for telling several SVIDs apart. */
  readonly hint?: string;
}

function toText(input: string | Uint8Array): string {
  return typeof input === 'string'
    ? input
    : Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('utf8');
}

function invalid(message: string, cause?: unknown): X509SvidError {
  return new X509SvidError('ERR_X509SVID_INVALID', message, cause === undefined ? undefined : { cause });
}

const SEC1_OR_PKCS1 = /^(EC|RSA|DSA) PRIVATE KEY$/;

function privateKeyFromPem(pem: string | Uint8Array): KeyObject {
  let blocks: ReturnType<typeof decodePem>;
  try {
    blocks = decodePem(toText(pem));
  } catch (cause) {
    throw invalid(`X.509-SVID private key: ${(cause as Error).message}`, cause);
  }
  if (blocks.length === 0) throw invalid('X.509-SVID private key: no PEM block found');
  const [first] = blocks;
  if (blocks.length > 1) {
    throw invalid(`X.509-SVID private key: expected exactly one PEM block, found ${blocks.length}`);
  }
  const label = (first as (typeof blocks)[number]).label;
  if (label !== 'PRIVATE KEY') {
    const hint = SEC1_OR_PKCS1.test(label)
      ? '; convert it with `openssl pkcs8 -topk8 -nocrypt`'
      : label === 'ENCRYPTED PRIVATE KEY'
        ? '; SVID keys must be unencrypted'
        : '';
    throw invalid(
      `X.509-SVID private key: PEM block "${label}" found, expected an unencrypted PKCS#8 "PRIVATE KEY"${hint}`,
    );
  }
  return privateKeyFromDer((first as (typeof blocks)[number]).der);
}

function privateKeyFromDer(der: Uint8Array): KeyObject {
  try {
    return createPrivateKey({
      key: Buffer.from(der.buffer, der.byteOffset, der.byteLength),
      format: 'der',
      type: 'pkcs8',
    });
  } catch (cause) {
    throw invalid('X.509-SVID private key: not a valid unencrypted PKCS#8 DER private key', cause);
  }
}

function certificatesFromPem(pem: string | Uint8Array): X509Certificate[] {
  let blocks: ReturnType<typeof decodePem>;
  try {
    blocks = decodePem(toText(pem));
  } catch (cause) {
    throw invalid(`X.509-SVID certificates: ${(cause as Error).message}`, cause);
  }
  const other = blocks.find((b) => b.label !== 'CERTIFICATE');
  if (other) {
    throw invalid(
      `X.509-SVID certificates: PEM block "${other.label}" found where only CERTIFICATE blocks are allowed`,
    );
  }
  return blocks.map((b, i) => certificateAt(b.der, i));
}

function certificateAt(der: Uint8Array, index: number): X509Certificate {
  try {
    return certificateFromDer(der);
  } catch (cause) {
    throw invalid(`X.509-SVID ${index === 0 ? 'leaf' : `chain[${index}]`}: not a valid DER certificate`, cause);
  }
}

function certificatesFromDer(der: Uint8Array): X509Certificate[] {
  let parts: Uint8Array[];
  try {
    parts = splitDerSequences(der);
  } catch (cause) {
    throw invalid(`X.509-SVID certificates: ${(cause as Error).message}`, cause);
  }
  return parts.map((p, i) => certificateAt(p, i));
}

function publicKeyDer(key: KeyObject): Buffer {
  return key.export({ format: 'der', type: 'spki' });
}

/**
 * An X.509-SVID: the certificate chain (leaf first, then any intermediates, never the
 * root) and the leaf's private key. Immutable. Every way of making one checks the
 * X509-SVID rules (leaf: exactly one URI SAN holding a SPIFFE ID with a path, not a CA,
 * keyUsage critical with digitalSignature and without keyCertSign/cRLSign, EKU with
 * serverAuth and clientAuth if present; every later certificate a CA with keyCertSign;
 * the key matches the leaf). It does not check signatures or validity dates: that is
 * {@link verifyX509Svid}'s job on the receiving side.
 *
 * A static SVID is also an {@link X509SvidSource} of itself.
 *
 * @example
 * const svid = X509Svid.parse(readFileSync('svid.pem'), readFileSync('svid.key'));
 * svid.id.toString() // 'spiffe://example.org/web'
 */
export class X509Svid implements X509SvidSource {
  /** The SPIFFE ID from the leaf's URI SAN. */
  readonly id: SpiffeId;
  /** Leaf first, then intermediates. */
  readonly certificates: readonly X509Certificate[];
  readonly privateKey: KeyObject;
  readonly hint?: string;

  private constructor(id: SpiffeId, certificates: readonly X509Certificate[], privateKey: KeyObject, hint?: string) {
    this.id = id;
    this.certificates = Object.freeze([...certificates]);
    this.privateKey = privateKey;
    if (hint !== undefined) this.hint = hint;
    Object.freeze(this);
  }

  /**
   * Builds an SVID from certificate objects (leaf first) and the leaf's private key,
   * checking the X509-SVID rules. Throws {@link X509SvidError}.
   */
  static fromCertificates(
    certificates: readonly X509Certificate[],
    privateKey: KeyObject,
    opts: X509SvidOptions = {},
  ): X509Svid {
    if (certificates.length === 0) throw invalid('X.509-SVID: the certificate chain is empty');
    const leaf = certificates[0] as X509Certificate;
    const id = leafSpiffeId(leaf);
    for (let i = 1; i < certificates.length; i++)
      checkSigningCertificate(certificates[i] as X509Certificate, `chain[${i}]`);
    if (privateKey.type !== 'private') {
      throw invalid(`X.509-SVID private key: expected a private key, got a ${privateKey.type} key`);
    }
    let matches: boolean;
    try {
      matches = publicKeyDer(createPublicKey(privateKey)).equals(fieldsOf(leaf, 'leaf').subjectPublicKeyInfo);
    } catch (cause) {
      if (cause instanceof X509SvidError) throw cause;
      matches = false;
    }
    if (!matches) {
      throw new X509SvidError(
        'ERR_X509SVID_KEY_MISMATCH',
        `X.509-SVID: the private key does not match the public key of the leaf (${describeCertificate(leaf)}, ${id})`,
      );
    }
    return new X509Svid(id, certificates, privateKey, opts.hint);
  }

  /**
   * Parses PEM: `chainPem` holds CERTIFICATE blocks (leaf first), `keyPem` exactly one
   * unencrypted PKCS#8 "PRIVATE KEY" block. Throws {@link X509SvidError}.
   */
  static parse(chainPem: string | Uint8Array, keyPem: string | Uint8Array, opts: X509SvidOptions = {}): X509Svid {
    const certificates = certificatesFromPem(chainPem);
    const privateKey = privateKeyFromPem(keyPem);
    return X509Svid.fromCertificates(certificates, privateKey, opts);
  }

  /**
   * Parses the Workload API encoding: `chainDer` is concatenated DER certificates (leaf
   * first), `keyDer` an unencrypted PKCS#8 DER key. Throws {@link X509SvidError}.
   */
  static parseRaw(chainDer: Uint8Array, keyDer: Uint8Array, opts: X509SvidOptions = {}): X509Svid {
    const certificates = certificatesFromDer(chainDer);
    const privateKey = privateKeyFromDer(keyDer);
    return X509Svid.fromCertificates(certificates, privateKey, opts);
  }

  /** The leaf certificate. */
  get leaf(): X509Certificate {
    return this.certificates[0] as X509Certificate;
  }

  /** When the leaf certificate expires (its notAfter). */
  get expiresAt(): Date {
    return new Date(fieldsOf(this.leaf, 'leaf').notAfter.getTime());
  }

  /** PEM: the certificate chain, leaf first, and the PKCS#8 private key. */
  marshal(): { certificates: string; privateKey: string } {
    return {
      certificates: this.certificates.map((c) => encodePem('CERTIFICATE', c.raw)).join(''),
      privateKey: this.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
    };
  }

  /** The Workload API encoding: concatenated DER certificates and a PKCS#8 DER key. */
  marshalRaw(): { certificates: Uint8Array; privateKey: Uint8Array } {
    return {
      certificates: concatBytes(this.certificates.map((c) => c.raw)),
      privateKey: this.privateKey.export({ format: 'der', type: 'pkcs8' }),
    };
  }

  /** Returns itself, so a static SVID can be used wherever an {@link X509SvidSource} is expected. */
  getX509Svid(): X509Svid {
    return this;
  }
}
