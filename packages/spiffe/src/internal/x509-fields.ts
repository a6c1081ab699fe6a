/**
 * Reads the fields of an X.509 certificate that SPIFFE rules depend on, straight from
 * the DER. node:crypto's `X509Certificate` cannot be trusted for these on Node 20:
 * `subjectAltName` is one comma-joined string (a comma inside a URI makes it ambiguous),
 * `keyUsage` is really the extended-key-usage list, and there is no date-typed validity.
 *
 * The outer framing (TBSCertificate, validity, extension list) is walked with the
 * strict DER reader of der.ts, and extension values are decoded by x509-extensions.ts;
 * neither loads an ASN.1 schema library, so checking a peer's certificate stays cheap in
 * memory. Results are still cached per certificate object, and {@link certificateFromDer}
 * caches the certificate objects themselves by their bytes (constructing an
 * `X509Certificate` costs more than an ECDSA verify).
 *
 * Malformed input throws a `RangeError`; callers wrap it in their own typed error.
 * @module
 */
import { createHash, X509Certificate } from 'node:crypto';
import { decodeOid, expectTlv as expect, readTlv, type Tlv } from './der.js';
import {
  decodeAuthorityKeyIdentifier,
  decodeBasicConstraints,
  decodeExtKeyUsage,
  decodeKeyUsage,
  decodeNameConstraints,
  decodeSubjectAltName,
  type NameSubtree,
} from './x509-extensions.js';

export { decodeOid, readTlv } from './der.js';
export type { NameSubtree } from './x509-extensions.js';

/** Extension OIDs this module understands. */
export const OID = {
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  nameConstraints: '2.5.29.30',
  certificatePolicies: '2.5.29.32',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  anyExtendedKeyUsage: '2.5.29.37.0',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

/** keyUsage bits as numbers (bit 0 of the BIT STRING = 1). */
export const KU = {
  digitalSignature: 1,
  nonRepudiation: 2,
  keyEncipherment: 4,
  dataEncipherment: 8,
  keyAgreement: 16,
  keyCertSign: 32,
  cRLSign: 64,
  encipherOnly: 128,
  decipherOnly: 256,
} as const;

export type KeyUsageName = keyof typeof KU;

export interface RawExtension {
  readonly oid: string;
  readonly critical: boolean;
  /** The DER inside the extnValue OCTET STRING. */
  readonly value: Buffer;
}

export interface BasicConstraintsField {
  readonly critical: boolean;
  readonly ca: boolean;
  readonly pathLength: number | undefined;
}

export interface KeyUsageField {
  readonly critical: boolean;
  /** Bit mask of {@link KU} values. */
  readonly flags: number;
}

export interface ExtKeyUsageField {
  readonly critical: boolean;
  readonly purposes: readonly string[];
}

export interface SubjectAltNameField {
  readonly critical: boolean;
  readonly uris: readonly string[];
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  /** Names of any other form (email, directoryName, otherName, …). */
  readonly otherCount: number;
}

export interface NameConstraintsField {
  readonly critical: boolean;
  readonly permitted: readonly NameSubtree[];
  readonly excluded: readonly NameSubtree[];
}

/** The parsed, immutable view of one certificate. */
export interface X509Fields {
  readonly version: number;
  readonly serialNumber: Buffer;
  /** OID of the outer signatureAlgorithm. */
  readonly signatureAlgorithm: string;
  /** False when the TBSCertificate's signature AlgorithmIdentifier differs from the outer one (RFC 5280 §4.1.1.2). */
  readonly signatureAlgorithmsMatch: boolean;
  readonly issuer: Buffer;
  readonly subject: Buffer;
  readonly subjectIsEmpty: boolean;
  /** Issuer and subject names are byte-identical. */
  readonly selfIssued: boolean;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly subjectPublicKeyInfo: Buffer;
  readonly extensions: ReadonlyMap<string, RawExtension>;
  readonly basicConstraints: BasicConstraintsField | undefined;
  readonly keyUsage: KeyUsageField | undefined;
  readonly extKeyUsage: ExtKeyUsageField | undefined;
  readonly subjectAltName: SubjectAltNameField | undefined;
  readonly nameConstraints: NameConstraintsField | undefined;
  /** The subjectKeyIdentifier extension's key ID, decoded on first access. */
  readonly subjectKeyIdentifier: Buffer | undefined;
  /** The authorityKeyIdentifier extension's keyIdentifier, decoded on first access. */
  readonly authorityKeyIdentifier: Buffer | undefined;
}

const DIGITS = /^\d+$/;

/** Parses a DER UTCTime (0x17) or GeneralizedTime (0x18) as RFC 5280 §4.1.2.5 profiles them. */
function decodeTime(buf: Uint8Array, t: Tlv): Date {
  const text = Buffer.from(buf.buffer, buf.byteOffset + t.start, t.end - t.start).toString('latin1');
  let year: number;
  let rest: string;
  if (t.tag === 0x17) {
    if (text.length !== 13) throw new RangeError(`malformed UTCTime ${JSON.stringify(text)}`);
    const yy = Number(text.slice(0, 2));
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
    rest = text.slice(2);
  } else if (t.tag === 0x18) {
    if (text.length !== 15) throw new RangeError(`malformed GeneralizedTime ${JSON.stringify(text)}`);
    year = Number(text.slice(0, 4));
    rest = text.slice(4);
  } else {
    throw new RangeError(`expected a UTCTime or GeneralizedTime, found tag 0x${t.tag.toString(16)}`);
  }
  const digits = text.slice(0, -1);
  if (!text.endsWith('Z') || !DIGITS.test(digits)) throw new RangeError(`malformed time ${JSON.stringify(text)}`);
  const month = Number(rest.slice(0, 2));
  const day = Number(rest.slice(2, 4));
  const hour = Number(rest.slice(4, 6));
  const minute = Number(rest.slice(6, 8));
  const second = Number(rest.slice(8, 10));
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const d = new Date(ms);
  // Reject out-of-range fields (month 13, Feb 30, 24:00 …) that Date.UTC would silently roll over.
  if (
    Number.isNaN(ms) ||
    d.getUTCFullYear() !== year ||
    d.getUTCMonth() !== month - 1 ||
    d.getUTCDate() !== day ||
    d.getUTCHours() !== hour ||
    d.getUTCMinutes() !== minute ||
    d.getUTCSeconds() !== second
  ) {
    throw new RangeError(`out-of-range time ${JSON.stringify(text)}`);
  }
  return d;
}

/** Runs `decode` on the extension's value, naming the extension in any error. */
function decodeExtension<T>(ext: RawExtension, decode: (value: Uint8Array) => T): T {
  try {
    return decode(ext.value);
  } catch (cause) {
    throw new RangeError(`extension ${ext.oid} is malformed: ${(cause as Error).message}`, { cause });
  }
}

class ParsedFields implements X509Fields {
  readonly version: number;
  readonly serialNumber: Buffer;
  readonly signatureAlgorithm: string;
  readonly signatureAlgorithmsMatch: boolean;
  readonly issuer: Buffer;
  readonly subject: Buffer;
  readonly subjectIsEmpty: boolean;
  readonly selfIssued: boolean;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly subjectPublicKeyInfo: Buffer;
  readonly extensions: ReadonlyMap<string, RawExtension>;
  readonly basicConstraints: BasicConstraintsField | undefined;
  readonly keyUsage: KeyUsageField | undefined;
  readonly extKeyUsage: ExtKeyUsageField | undefined;
  readonly subjectAltName: SubjectAltNameField | undefined;
  readonly nameConstraints: NameConstraintsField | undefined;
  #ski: Buffer | undefined | null = null;
  #aki: Buffer | undefined | null = null;

  constructor(der: Buffer) {
    const cert = expect(der, 0, der.length, 0x30, 'Certificate');
    if (cert.end !== der.length) throw new RangeError('trailing bytes after the certificate');
    const tbs = expect(der, cert.start, cert.end, 0x30, 'TBSCertificate');
    const sigAlg = expect(der, tbs.end, cert.end, 0x30, 'signatureAlgorithm');
    const sigValue = expect(der, sigAlg.end, cert.end, 0x03, 'signatureValue');
    if (sigValue.end !== cert.end) throw new RangeError('trailing bytes inside the certificate');
    const algOid = expect(der, sigAlg.start, sigAlg.end, 0x06, 'signatureAlgorithm.algorithm');
    this.signatureAlgorithm = decodeOid(der, algOid.start, algOid.end);

    let p = tbs.start;
    let t = readTlv(der, p, tbs.end);
    this.version = 1;
    if (t.tag === 0xa0) {
      const v = expect(der, t.start, t.end, 0x02, 'version');
      if (v.end - v.start !== 1 || v.end !== t.end) throw new RangeError('malformed version');
      this.version = (der[v.start] as number) + 1;
      p = t.end;
      t = readTlv(der, p, tbs.end);
    }
    if (t.tag !== 0x02 || t.end === t.start) throw new RangeError('malformed serialNumber');
    this.serialNumber = der.subarray(t.start, t.end);
    const innerAlg = expect(der, t.end, tbs.end, 0x30, 'TBSCertificate.signature');
    this.signatureAlgorithmsMatch = der
      .subarray(innerAlg.offset, innerAlg.end)
      .equals(der.subarray(sigAlg.offset, sigAlg.end));
    const issuer = expect(der, innerAlg.end, tbs.end, 0x30, 'issuer');
    this.issuer = der.subarray(issuer.offset, issuer.end);
    const validity = expect(der, issuer.end, tbs.end, 0x30, 'validity');
    const nb = readTlv(der, validity.start, validity.end);
    const na = readTlv(der, nb.end, validity.end);
    if (na.end !== validity.end) throw new RangeError('malformed validity');
    this.notBefore = decodeTime(der, nb);
    this.notAfter = decodeTime(der, na);
    const subject = expect(der, validity.end, tbs.end, 0x30, 'subject');
    this.subject = der.subarray(subject.offset, subject.end);
    this.subjectIsEmpty = subject.end === subject.start;
    this.selfIssued = this.subject.equals(this.issuer);
    const spki = expect(der, subject.end, tbs.end, 0x30, 'subjectPublicKeyInfo');
    this.subjectPublicKeyInfo = der.subarray(spki.offset, spki.end);

    const extensions = new Map<string, RawExtension>();
    p = spki.end;
    while (p < tbs.end) {
      t = readTlv(der, p, tbs.end);
      p = t.end;
      if (t.tag === 0x81 || t.tag === 0x82 || t.tag === 0xa1 || t.tag === 0xa2) continue; // unique identifiers
      if (t.tag !== 0xa3 || p !== tbs.end) {
        throw new RangeError(`unexpected DER tag 0x${t.tag.toString(16)} in TBSCertificate`);
      }
      const list = expect(der, t.start, t.end, 0x30, 'extensions');
      if (list.end !== t.end) throw new RangeError('trailing bytes after extensions');
      let q = list.start;
      while (q < list.end) {
        const ext = expect(der, q, list.end, 0x30, 'extension');
        q = ext.end;
        const oidTlv = expect(der, ext.start, ext.end, 0x06, 'extnID');
        const oid = decodeOid(der, oidTlv.start, oidTlv.end);
        let next = readTlv(der, oidTlv.end, ext.end);
        let critical = false;
        if (next.tag === 0x01) {
          if (next.end - next.start !== 1) throw new RangeError(`extension ${oid}: malformed critical flag`);
          critical = der[next.start] !== 0;
          next = readTlv(der, next.end, ext.end);
        }
        if (next.tag !== 0x04 || next.end !== ext.end) throw new RangeError(`extension ${oid}: malformed extnValue`);
        if (extensions.has(oid)) throw new RangeError(`extension ${oid} appears more than once (RFC 5280 §4.2)`);
        extensions.set(oid, { oid, critical, value: der.subarray(next.start, next.end) });
      }
    }
    this.extensions = extensions;

    const bc = extensions.get(OID.basicConstraints);
    if (bc) {
      const v = decodeExtension(bc, decodeBasicConstraints);
      this.basicConstraints = { critical: bc.critical, ca: v.ca, pathLength: v.pathLength };
    }
    const ku = extensions.get(OID.keyUsage);
    if (ku) this.keyUsage = { critical: ku.critical, flags: decodeExtension(ku, decodeKeyUsage) };
    const eku = extensions.get(OID.extKeyUsage);
    if (eku) this.extKeyUsage = { critical: eku.critical, purposes: decodeExtension(eku, decodeExtKeyUsage) };
    const san = extensions.get(OID.subjectAltName);
    if (san) this.subjectAltName = { critical: san.critical, ...decodeExtension(san, decodeSubjectAltName) };
    const nc = extensions.get(OID.nameConstraints);
    if (nc) this.nameConstraints = { critical: nc.critical, ...decodeExtension(nc, decodeNameConstraints) };
  }

  get subjectKeyIdentifier(): Buffer | undefined {
    if (this.#ski === null) {
      const ext = this.extensions.get(OID.subjectKeyIdentifier);
      if (!ext) this.#ski = undefined;
      else {
        const t = expect(ext.value, 0, ext.value.length, 0x04, 'subjectKeyIdentifier');
        if (t.end !== ext.value.length) throw new RangeError('subjectKeyIdentifier has trailing bytes');
        this.#ski = ext.value.subarray(t.start, t.end);
      }
    }
    return this.#ski;
  }

  get authorityKeyIdentifier(): Buffer | undefined {
    if (this.#aki === null) {
      const ext = this.extensions.get(OID.authorityKeyIdentifier);
      const keyId = ext ? decodeExtension(ext, decodeAuthorityKeyIdentifier) : undefined;
      this.#aki = keyId ? Buffer.from(keyId.buffer, keyId.byteOffset, keyId.byteLength) : undefined;
    }
    return this.#aki;
  }
}

const fieldsCache = new WeakMap<X509Certificate, X509Fields>();

/**
 * The parsed fields of `cert`, computed once per certificate object.
 * Throws a RangeError naming the problem when the DER is malformed.
 */
export function x509Fields(cert: X509Certificate): X509Fields {
  let fields = fieldsCache.get(cert);
  if (!fields) {
    fields = new ParsedFields(cert.raw);
    fieldsCache.set(cert, fields);
  }
  return fields;
}

/** Bounded LRU of certificates by their DER bytes: Map iteration order is insertion order. */
const derCache = new Map<string, X509Certificate>();
const DER_CACHE_LIMIT = 512;
const DER_CACHE_MAX_BYTES = 8192;

function parseDer(bytes: Buffer): X509Certificate {
  const cert = new X509Certificate(bytes);
  // node:crypto accepts trailing garbage after the certificate; we do not.
  if (cert.raw.length !== bytes.length) throw new RangeError('trailing bytes after the certificate');
  return cert;
}

/**
 * An `X509Certificate` for `der`, reusing the object made earlier for the same bytes
 * (so its cached fields are reused too). Throws whatever node:crypto throws on bad DER.
 */
export function certificateFromDer(der: Uint8Array): X509Certificate {
  const bytes = Buffer.isBuffer(der) ? der : Buffer.from(der.buffer, der.byteOffset, der.byteLength);
  // Outsized inputs are parsed but not cached, so hostile peers cannot pin much memory.
  if (bytes.length > DER_CACHE_MAX_BYTES) return parseDer(bytes);
  const key = bytes.toString('base64');
  const hit = derCache.get(key);
  if (hit) {
    derCache.delete(key);
    derCache.set(key, hit);
    return hit;
  }
  const cert = parseDer(bytes);
  derCache.set(key, cert);
  if (derCache.size > DER_CACHE_LIMIT) derCache.delete(derCache.keys().next().value as string);
  return cert;
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 over the subjectPublicKey BIT STRING value (without unused-bits byte). */
export function keyIdentifierForSpki(spki: Uint8Array): Buffer {
  const outer = expect(spki, 0, spki.length, 0x30, 'SubjectPublicKeyInfo');
  const alg = expect(spki, outer.start, outer.end, 0x30, 'SubjectPublicKeyInfo.algorithm');
  const key = expect(spki, alg.end, outer.end, 0x03, 'subjectPublicKey');
  return createHash('sha1')
    .update(spki.subarray(key.start + 1, key.end))
    .digest();
}
