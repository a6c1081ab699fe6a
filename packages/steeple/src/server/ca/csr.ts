/**
 * PKCS#10 certificate signing requests (RFC 2986) as agents send them: parsed strictly,
 * and the self-signature checked with the request's own key, which proves the requester
 * holds the private key (proof of possession). Only the public key is used afterwards:
 * the CA decides the SPIFFE ID, names and lifetime from the registration entry, never
 * from what the request asks for, as SPIRE does.
 *
 * Cost: one signature check plus one key import per request; the framing is walked by
 * hand ({@link ./der-reader.ts}), never through a schema library.
 * @module
 */
import { type KeyObject, verify } from 'node:crypto';
import { CsrError } from './ca-errors.js';
import { checkDerElements, expectTlv, oidText, readTlv, TAG } from './der-reader.js';
import {
  importSubjectPublicKey,
  parseSubjectPublicKeyInfo,
  type SubjectKeyType,
  type SubjectPublicKey,
} from './subject-public-key.js';

/** Largest CSR accepted, in bytes; an RSA-8192 request with a few names is about 1.5 KiB. */
export const MAX_CSR_BYTES = 16 * 1024;

/** What a valid CSR yields. */
export interface ParsedCsr {
  /** The requester's public key. */
  readonly publicKey: KeyObject;
  /** The SubjectPublicKeyInfo DER exactly as it goes into the certificate. */
  readonly subjectPublicKeyInfo: Buffer;
  readonly keyType: SubjectKeyType;
}

interface SignatureScheme {
  readonly name: string;
  readonly hash: 'sha256' | 'sha384' | 'sha512';
  readonly family: 'ec' | 'rsa';
}

// The exact DER of each accepted signature AlgorithmIdentifier, as hex. ECDSA takes no
// parameters (RFC 5758 §3.2); PKCS#1 v1.5 takes NULL, and its absence is tolerated as
// several encoders leave it out.
const SIGNATURE_SCHEMES: ReadonlyMap<string, SignatureScheme> = new Map([
  ['300a06082a8648ce3d040302', { name: 'ecdsa-with-SHA256', hash: 'sha256', family: 'ec' }],
  ['300a06082a8648ce3d040303', { name: 'ecdsa-with-SHA384', hash: 'sha384', family: 'ec' }],
  ['300a06082a8648ce3d040304', { name: 'ecdsa-with-SHA512', hash: 'sha512', family: 'ec' }],
  ['300d06092a864886f70d01010b0500', { name: 'sha256WithRSAEncryption', hash: 'sha256', family: 'rsa' }],
  ['300d06092a864886f70d01010c0500', { name: 'sha384WithRSAEncryption', hash: 'sha384', family: 'rsa' }],
  ['300d06092a864886f70d01010d0500', { name: 'sha512WithRSAEncryption', hash: 'sha512', family: 'rsa' }],
  ['300b06092a864886f70d01010b', { name: 'sha256WithRSAEncryption', hash: 'sha256', family: 'rsa' }],
  ['300b06092a864886f70d01010c', { name: 'sha384WithRSAEncryption', hash: 'sha384', family: 'rsa' }],
  ['300b06092a864886f70d01010d', { name: 'sha512WithRSAEncryption', hash: 'sha512', family: 'rsa' }],
]);

const VERSION_1 = '020100';

interface Framing {
  readonly info: Buffer;
  readonly spki: Buffer;
  readonly signatureAlgorithm: string;
  readonly signatureAlgorithmOid: string;
  readonly signature: Buffer;
}

function frame(buf: Buffer): Framing {
  const outer = expectTlv(buf, 0, buf.length, TAG.sequence, 'CertificationRequest');
  if (outer.end !== buf.length) throw new RangeError('trailing bytes after the CSR');
  const info = expectTlv(buf, outer.start, outer.end, TAG.sequence, 'CertificationRequestInfo');
  const sigAlg = expectTlv(buf, info.end, outer.end, TAG.sequence, 'signatureAlgorithm');
  const sig = expectTlv(buf, sigAlg.end, outer.end, TAG.bitString, 'signature');
  if (sig.end !== outer.end) throw new RangeError('trailing bytes inside the CSR');
  if (sig.end === sig.start || buf[sig.start] !== 0)
    throw new RangeError('signature BIT STRING must have no unused bits');
  checkDerElements(buf, sigAlg.start, sigAlg.end);

  const version = expectTlv(buf, info.start, info.end, TAG.integer, 'version');
  if (buf.toString('hex', version.offset, version.end) !== VERSION_1) {
    throw new RangeError('version must be 0 (PKCS#10 v1)');
  }
  const subject = expectTlv(buf, version.end, info.end, TAG.sequence, 'subject');
  checkDerElements(buf, subject.start, subject.end);
  const spki = expectTlv(buf, subject.end, info.end, TAG.sequence, 'subjectPKInfo');
  const attributes = expectTlv(buf, spki.end, info.end, TAG.context0, 'attributes');
  checkDerElements(buf, attributes.start, attributes.end);
  if (attributes.end !== info.end) throw new RangeError('trailing bytes inside CertificationRequestInfo');

  const algOid = readTlv(buf, sigAlg.start, sigAlg.end);
  return {
    info: buf.subarray(info.offset, info.end),
    spki: buf.subarray(spki.offset, spki.end),
    signatureAlgorithm: buf.toString('hex', sigAlg.offset, sigAlg.end),
    signatureAlgorithmOid: oidText(buf, algOid),
    signature: buf.subarray(sig.start + 1, sig.end),
  };
}

/**
 * Parses a DER PKCS#10 request and verifies its self-signature. Accepts EC P-256/P-384
 * keys (uncompressed points) and RSA keys of 2048–8192 bits, signed with ECDSA or PKCS#1
 * v1.5 over SHA-256/384/512. Rejects with a {@link CsrError} naming the rule broken: more
 * than {@link MAX_CSR_BYTES}, malformed or non-minimal DER, trailing bytes, a version
 * other than 1, an unsupported key or signature algorithm, or a signature that does not
 * verify. A non-bytes argument is a TypeError.
 */
export async function parseCsr(der: Uint8Array): Promise<ParsedCsr> {
  if (!(der instanceof Uint8Array)) throw new TypeError('parseCsr expects the DER bytes of a CSR');
  if (der.length > MAX_CSR_BYTES) throw new CsrError(`larger than ${MAX_CSR_BYTES} bytes (${der.length})`);
  if (der.length === 0) throw new CsrError('empty');
  const buf = Buffer.isBuffer(der) ? der : Buffer.from(der.buffer, der.byteOffset, der.byteLength);

  let framing: Framing;
  try {
    framing = frame(buf);
  } catch (cause) {
    if (cause instanceof RangeError) throw new CsrError(`not a DER PKCS#10 request: ${cause.message}`);
    throw cause;
  }
  let key: SubjectPublicKey;
  try {
    key = parseSubjectPublicKeyInfo(framing.spki);
  } catch (cause) {
    if (cause instanceof RangeError) throw new CsrError(cause.message);
    throw cause;
  }
  const scheme = SIGNATURE_SCHEMES.get(framing.signatureAlgorithm);
  if (!scheme) {
    throw new CsrError(
      `signature algorithm ${framing.signatureAlgorithmOid} is not supported (allowed: ECDSA or RSA PKCS#1 v1.5 with SHA-256/384/512)`,
    );
  }
  if ((scheme.family === 'rsa') !== (key.type === 'rsa')) {
    throw new CsrError(`signature algorithm ${scheme.name} does not fit the request's ${key.type} key`);
  }
  let publicKey: KeyObject;
  try {
    publicKey = await importSubjectPublicKey(key);
  } catch (cause) {
    throw new CsrError(cause instanceof RangeError ? cause.message : 'the public key cannot be imported', { cause });
  }
  let valid: boolean;
  try {
    valid = verify(scheme.hash, framing.info, publicKey, framing.signature);
  } catch {
    valid = false; // a malformed ECDSA signature value throws instead of failing
  }
  if (!valid) throw new CsrError("the signature does not verify with the request's own key (no proof of possession)");
  return { publicKey, subjectPublicKeyInfo: Buffer.from(key.spki), keyType: key.type };
}
