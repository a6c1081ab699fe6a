/**
 * Builds and signs X.509 certificates quickly: the CA's hot path and the test CA both
 * use it. The convenience generators cost ≈ 1.8 ms per certificate and even one
 * @peculiar/asn1-schema serialisation of a whole certificate costs ≈ 0.4 ms, so the
 * parts that rarely change (names, algorithm identifiers, key usage, basic
 * constraints, EKU, the issuer's key identifier) are encoded once with asn1-schema and
 * memoised, and each certificate is assembled from those bytes plus its few variable
 * fields (serial, validity, public key, SAN, key identifier) with a tiny DER writer,
 * then signed with `crypto.sign`.
 *
 * Nothing here validates SPIFFE rules: callers decide what goes in, which is what
 * lets the test CA produce deliberately broken certificates.
 * @module
 */
import { createPublicKey, type KeyObject, randomBytes, sign, type X509Certificate } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  AttributeTypeAndValue,
  AttributeValue,
  AuthorityKeyIdentifier,
  BasicConstraints,
  ExtendedKeyUsage,
  KeyIdentifier,
  KeyUsage,
  Name,
  RelativeDistinguishedName,
} from '@peculiar/asn1-x509';
import { type KeyUsageName, KU, keyIdentifierForSpki, OID, x509Fields } from './x509-fields.js';

export type { KeyUsageName } from './x509-fields.js';

/** One attribute of a distinguished name; `type` is a short name (C, O, OU, CN, L, ST, serialNumber) or a dotted OID. */
export interface NameAttribute {
  readonly type: string;
  readonly value: string;
}

/** A distinguished name as an ordered list of single-attribute RDNs. `[]` is the empty name. */
export type DistinguishedName = readonly NameAttribute[];

/** An extension given as its already-encoded value (the DER inside extnValue). */
export interface ExtensionSpec {
  readonly oid: string;
  readonly critical: boolean;
  readonly value: Uint8Array;
}

/** What goes into one certificate. Omitted extensions are left out of the certificate. */
export interface CertificateSpec {
  /** The subject: attributes, or an already-encoded Name (e.g. copied from a CSR). */
  readonly subject: DistinguishedName | Uint8Array;
  /** The certified public key, as a KeyObject or SubjectPublicKeyInfo DER. */
  readonly publicKey: KeyObject | Uint8Array;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Positive serial number bytes; default 16 random bytes, positive and non-zero. */
  readonly serialNumber?: Uint8Array;
  readonly basicConstraints?: { readonly ca: boolean; readonly pathLength?: number; readonly critical?: boolean };
  /** Default critical. */
  readonly keyUsage?: { readonly usages: readonly KeyUsageName[]; readonly critical?: boolean };
  /** Key purpose OIDs; default not critical. */
  readonly extendedKeyUsage?: { readonly purposes: readonly string[]; readonly critical?: boolean };
  /** Default critical exactly when the subject is empty (RFC 5280 §4.1.2.6). */
  readonly subjectAltName?: {
    readonly uris?: readonly string[];
    readonly dnsNames?: readonly string[];
    readonly critical?: boolean;
  };
  /** Add a subjectKeyIdentifier (RFC 5280 method 1); default true. */
  readonly subjectKeyIdentifier?: boolean;
  /** Add an authorityKeyIdentifier naming the issuer's key; default true. */
  readonly authorityKeyIdentifier?: boolean;
  /** Further extensions, appended as given. */
  readonly extensions?: readonly ExtensionSpec[];
}

// ---------------------------------------------------------------------------
// A tiny DER writer for the per-certificate parts.

function header(tag: number, length: number): Buffer {
  if (length < 0x80) return Buffer.from([tag, length]);
  if (length < 0x100) return Buffer.from([tag, 0x81, length]);
  if (length < 0x10000) return Buffer.from([tag, 0x82, length >> 8, length & 0xff]);
  return Buffer.from([tag, 0x83, length >> 16, (length >> 8) & 0xff, length & 0xff]);
}

function tlv(tag: number, parts: readonly Uint8Array[]): Buffer {
  let length = 0;
  for (const p of parts) length += p.length;
  return Buffer.concat([header(tag, length), ...parts]);
}

function encodeOid(oid: string): Buffer {
  const arcs = oid.split('.').map(Number);
  if (arcs.length < 2 || arcs.some((a) => !Number.isSafeInteger(a) || a < 0)) throw new TypeError(`invalid OID ${oid}`);
  const out: number[] = [];
  const push = (value: number) => {
    const bytes = [value & 0x7f];
    for (let v = Math.floor(value / 128); v > 0; v = Math.floor(v / 128)) bytes.unshift((v & 0x7f) | 0x80);
    out.push(...bytes);
  };
  push((arcs[0] as number) * 40 + (arcs[1] as number));
  for (const a of arcs.slice(2)) push(a);
  return tlv(0x06, [Buffer.from(out)]);
}

function encodeInteger(bytes: Uint8Array): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0 && ((bytes[start + 1] as number) & 0x80) === 0) start++;
  const body = Buffer.from(bytes.subarray(start));
  if (body.length === 0) throw new TypeError('serial number must not be empty');
  return ((body[0] as number) & 0x80) === 0 ? tlv(0x02, [body]) : tlv(0x02, [Buffer.from([0]), body]);
}

const two = (n: number) => (n < 10 ? `0${n}` : `${n}`);

// A CA issuing thousands of certificates per second repeats the same few timestamps.
const timeMemo = memo<Buffer>(64);

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050, whole seconds, Zulu. */
function encodeTime(d: Date): Buffer {
  const ms = d.getTime();
  if (!Number.isFinite(ms)) throw new TypeError('certificate validity must be a valid Date');
  const seconds = Math.floor(ms / 1000);
  return timeMemo(String(seconds), () => encodeSeconds(seconds));
}

function encodeSeconds(seconds: number): Buffer {
  const t = new Date(seconds * 1000);
  const y = t.getUTCFullYear();
  if (y < 1950 || y > 9999) throw new RangeError(`certificate time ${t.toISOString()} is out of range`);
  const rest = `${two(t.getUTCMonth() + 1)}${two(t.getUTCDate())}${two(t.getUTCHours())}${two(t.getUTCMinutes())}${two(t.getUTCSeconds())}Z`;
  return y < 2050
    ? tlv(0x17, [Buffer.from(`${two(y % 100)}${rest}`, 'latin1')])
    : tlv(0x18, [Buffer.from(`${y}${rest}`, 'latin1')]);
}

const TRUE = Buffer.from([0x01, 0x01, 0xff]);

function encodeExtension(oid: string, critical: boolean, value: Uint8Array): Buffer {
  const id = encodedOid(oid);
  const octets = tlv(0x04, [value]);
  return critical ? tlv(0x30, [id, TRUE, octets]) : tlv(0x30, [id, octets]);
}

// ---------------------------------------------------------------------------
// Memoised encodings of the parts that repeat from certificate to certificate.

/** A small bounded memo: these encodings have few distinct values in practice. */
function memo<T>(limit = 256): (key: string, make: () => T) => T {
  const map = new Map<string, T>();
  return (key, make) => {
    let v = map.get(key);
    if (v === undefined) {
      v = make();
      if (map.size >= limit) map.clear();
      map.set(key, v);
    }
    return v;
  };
}

const oidMemo = memo<Buffer>();
const encodedOid = (oid: string) => oidMemo(oid, () => encodeOid(oid));

const ATTRIBUTE_TYPES: Record<string, string> = {
  CN: '2.5.4.3',
  serialNumber: '2.5.4.5',
  C: '2.5.4.6',
  L: '2.5.4.7',
  ST: '2.5.4.8',
  O: '2.5.4.10',
  OU: '2.5.4.11',
};
/** Attributes that X.520 restricts to PrintableString. */
const PRINTABLE = new Set(['2.5.4.5', '2.5.4.6']);

const nameMemo = memo<Buffer>();

/** DER of a distinguished name (memoised; asn1-schema does the encoding). */
export function encodeName(name: DistinguishedName): Buffer {
  return nameMemo(JSON.stringify(name), () => {
    const rdns = name.map((attr) => {
      const type = ATTRIBUTE_TYPES[attr.type] ?? attr.type;
      if (!/^\d+(\.\d+)+$/.test(type)) throw new TypeError(`unknown name attribute type ${JSON.stringify(attr.type)}`);
      const value = PRINTABLE.has(type)
        ? new AttributeValue({ printableString: attr.value })
        : new AttributeValue({ utf8String: attr.value });
      return new RelativeDistinguishedName([new AttributeTypeAndValue({ type, value })]);
    });
    return Buffer.from(AsnConvert.serialize(new Name(rdns)));
  });
}

const extMemo = memo<Buffer>();

function basicConstraintsExtension(bc: NonNullable<CertificateSpec['basicConstraints']>): Buffer {
  const critical = bc.critical ?? true;
  return extMemo(`bc:${bc.ca}:${bc.pathLength}:${critical}`, () => {
    const value = new BasicConstraints({ cA: bc.ca });
    if (bc.pathLength !== undefined) value.pathLenConstraint = bc.pathLength;
    return encodeExtension(OID.basicConstraints, critical, Buffer.from(AsnConvert.serialize(value)));
  });
}

function keyUsageExtension(ku: NonNullable<CertificateSpec['keyUsage']>): Buffer {
  let flags = 0;
  for (const u of ku.usages) {
    const bit = KU[u];
    if (bit === undefined) throw new TypeError(`unknown key usage ${JSON.stringify(u)}`);
    flags |= bit;
  }
  const critical = ku.critical ?? true;
  return extMemo(`ku:${flags}:${critical}`, () =>
    encodeExtension(OID.keyUsage, critical, Buffer.from(AsnConvert.serialize(new KeyUsage(flags)))),
  );
}

function extKeyUsageExtension(eku: NonNullable<CertificateSpec['extendedKeyUsage']>): Buffer {
  const critical = eku.critical ?? false;
  return extMemo(`eku:${eku.purposes.join(',')}:${critical}`, () =>
    encodeExtension(
      OID.extKeyUsage,
      critical,
      Buffer.from(AsnConvert.serialize(new ExtendedKeyUsage([...eku.purposes]))),
    ),
  );
}

function subjectAltNameExtension(san: NonNullable<CertificateSpec['subjectAltName']>, critical: boolean): Buffer {
  const names: Buffer[] = [];
  // IA5String contents: reject anything outside 7-bit ASCII instead of emitting invalid DER.
  const ia5 = (s: string) => {
    if (!/^[\x00-\x7f]*$/.test(s)) throw new TypeError(`SAN ${JSON.stringify(s)} is not ASCII`);
    return Buffer.from(s, 'latin1');
  };
  for (const dns of san.dnsNames ?? []) names.push(tlv(0x82, [ia5(dns)]));
  for (const uri of san.uris ?? []) names.push(tlv(0x86, [ia5(uri)]));
  return encodeExtension(OID.subjectAltName, critical, tlv(0x30, names));
}

// ---------------------------------------------------------------------------
// Keys and signature algorithms.

interface SignatureScheme {
  /** Hash for crypto.sign; null for EdDSA. */
  readonly hash: string | null;
  /** DER AlgorithmIdentifier. */
  readonly algorithm: Buffer;
}

const schemeMemo = memo<SignatureScheme>();

function algorithmIdentifier(oid: string, nullParameters: boolean): Buffer {
  const alg = new AlgorithmIdentifier({ algorithm: oid });
  if (nullParameters) alg.parameters = null;
  return Buffer.from(AsnConvert.serialize(alg));
}

/** The signature scheme a CA key signs with: ECDSA with the curve's hash, RSA PKCS#1 v1.5 SHA-256, or Ed25519. */
export function signatureSchemeFor(key: KeyObject): SignatureScheme {
  const details = key.asymmetricKeyDetails;
  const type = key.asymmetricKeyType;
  if (type === 'ec') {
    const curve = details?.namedCurve;
    const [hash, oid] =
      curve === 'prime256v1'
        ? ['sha256', '1.2.840.10045.4.3.2']
        : curve === 'secp384r1'
          ? ['sha384', '1.2.840.10045.4.3.3']
          : curve === 'secp521r1'
            ? ['sha512', '1.2.840.10045.4.3.4']
            : [undefined, undefined];
    if (!hash || !oid) throw new TypeError(`unsupported EC curve ${curve} for certificate signing`);
    return schemeMemo(oid, () => ({ hash, algorithm: algorithmIdentifier(oid, false) }));
  }
  if (type === 'rsa') {
    return schemeMemo('rsa-sha256', () => ({
      hash: 'sha256',
      algorithm: algorithmIdentifier('1.2.840.113549.1.1.11', true),
    }));
  }
  if (type === 'ed25519') {
    return schemeMemo('ed25519', () => ({ hash: null, algorithm: algorithmIdentifier('1.3.101.112', false) }));
  }
  throw new TypeError(`unsupported key type ${type} for certificate signing`);
}

interface PublicKeyInfo {
  readonly spki: Buffer;
  readonly keyIdentifier: Buffer;
}

const keyInfoCache = new WeakMap<KeyObject, PublicKeyInfo>();

function publicKeyInfo(key: KeyObject | Uint8Array): PublicKeyInfo {
  if (!(key instanceof Uint8Array)) {
    let info = keyInfoCache.get(key);
    if (!info) {
      const pub = key.type === 'private' ? createPublicKey(key) : key;
      const spki = pub.export({ format: 'der', type: 'spki' });
      info = { spki, keyIdentifier: keyIdentifierForSpki(spki) };
      keyInfoCache.set(key, info);
    }
    return info;
  }
  const spki = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  return { spki, keyIdentifier: keyIdentifierForSpki(spki) };
}

// One randomBytes call per 256 serials: the per-call overhead of the CSPRNG binding
// was ≈ 10 % of an issuance.
let randomPool = Buffer.alloc(0);
let randomOffset = 0;

/** 16 random bytes, positive (top bit clear) and minimal (second-highest bit set, so never zero). */
function randomSerial(): Buffer {
  if (randomOffset + 16 > randomPool.length) {
    randomPool = randomBytes(4096);
    randomOffset = 0;
  }
  const b = Buffer.from(randomPool.subarray(randomOffset, randomOffset + 16));
  randomPool.fill(0, randomOffset, randomOffset + 16);
  randomOffset += 16;
  b[0] = ((b[0] as number) & 0x7f) | 0x40;
  return b;
}

// ---------------------------------------------------------------------------

function buildTbs(
  spec: CertificateSpec,
  issuerName: Buffer,
  scheme: SignatureScheme,
  authorityKeyId: Buffer | undefined,
) {
  const subject = spec.subject instanceof Uint8Array ? Buffer.from(spec.subject) : encodeName(spec.subject);
  const key = publicKeyInfo(spec.publicKey);
  const subjectEmpty = subject.length === 2;
  const extensions: Buffer[] = [];
  if (spec.basicConstraints) extensions.push(basicConstraintsExtension(spec.basicConstraints));
  if (spec.keyUsage) extensions.push(keyUsageExtension(spec.keyUsage));
  if (spec.extendedKeyUsage) extensions.push(extKeyUsageExtension(spec.extendedKeyUsage));
  if (spec.subjectAltName) {
    extensions.push(subjectAltNameExtension(spec.subjectAltName, spec.subjectAltName.critical ?? subjectEmpty));
  }
  if (spec.subjectKeyIdentifier ?? true) {
    extensions.push(encodeExtension(OID.subjectKeyIdentifier, false, tlv(0x04, [key.keyIdentifier])));
  }
  if ((spec.authorityKeyIdentifier ?? true) && authorityKeyId) extensions.push(authorityKeyId);
  for (const e of spec.extensions ?? []) extensions.push(encodeExtension(e.oid, e.critical, e.value));

  const parts: Buffer[] = [
    VERSION_3,
    encodeInteger(spec.serialNumber ?? randomSerial()),
    scheme.algorithm,
    issuerName,
    tlv(0x30, [encodeTime(spec.notBefore), encodeTime(spec.notAfter)]),
    subject,
    key.spki,
  ];
  if (extensions.length > 0) parts.push(tlv(0xa3, [tlv(0x30, extensions)]));
  return tlv(0x30, parts);
}

const VERSION_3 = Buffer.from([0xa0, 0x03, 0x02, 0x01, 0x02]);

const NO_UNUSED_BITS = Buffer.from([0]);

function signTbs(tbs: Buffer, scheme: SignatureScheme, privateKey: KeyObject): Buffer {
  const signature = sign(scheme.hash, tbs, privateKey);
  return tlv(0x30, [tbs, scheme.algorithm, tlv(0x03, [NO_UNUSED_BITS, signature])]);
}

function authorityKeyIdExtension(keyId: Buffer): Buffer {
  const value = new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(keyId) });
  return encodeExtension(OID.authorityKeyIdentifier, false, Buffer.from(AsnConvert.serialize(value)));
}

/**
 * Signs certificates with one CA key. The issuer name, signature algorithm and
 * authorityKeyIdentifier are encoded once here, so each {@link issue} only encodes the
 * certificate's own fields and signs. Returns DER: wrapping it in an `X509Certificate`
 * costs more than building it, so callers do that only when they need the object.
 */
export class CertificateIssuer {
  readonly #privateKey: KeyObject;
  readonly #name: Buffer;
  readonly #scheme: SignatureScheme;
  readonly #authorityKeyId: Buffer | undefined;

  /** `certificate` is the issuing CA's certificate and `privateKey` its key; a key that does not match is a TypeError. */
  constructor(certificate: X509Certificate, privateKey: KeyObject) {
    const fields = x509Fields(certificate);
    if (!publicKeyInfo(privateKey).spki.equals(fields.subjectPublicKeyInfo)) {
      throw new TypeError('CertificateIssuer: the private key does not match the issuer certificate');
    }
    this.#privateKey = privateKey;
    this.#name = fields.subject;
    this.#scheme = signatureSchemeFor(privateKey);
    const keyId = fields.subjectKeyIdentifier ?? keyIdentifierForSpki(fields.subjectPublicKeyInfo);
    this.#authorityKeyId = authorityKeyIdExtension(keyId);
  }

  /** Builds and signs one certificate; returns its DER. */
  issue(spec: CertificateSpec): Buffer {
    return signTbs(buildTbs(spec, this.#name, this.#scheme, this.#authorityKeyId), this.#scheme, this.#privateKey);
  }
}

/** Builds a self-signed certificate (issuer = subject, signed by `privateKey`, AKI = its own key ID). */
export function selfSignCertificate(spec: CertificateSpec, privateKey: KeyObject): Buffer {
  const scheme = signatureSchemeFor(privateKey);
  const subject = spec.subject instanceof Uint8Array ? Buffer.from(spec.subject) : encodeName(spec.subject);
  const keyId = publicKeyInfo(spec.publicKey).keyIdentifier;
  return signTbs(buildTbs({ ...spec, subject }, subject, scheme, authorityKeyIdExtension(keyId)), scheme, privateKey);
}
