/**
 * The X.509 signing authority: one CA certificate and its key, issuing X.509-SVIDs
 * exactly per the X509-SVID spec (conformance X-1…X-10, shaped like SPIRE's):
 *
 * - subject `C=US, O=Steeple` (configurable), CN = the first DNS name when there are any;
 * - exactly one URI SAN, the SPIFFE ID (a member of this trust domain, with a path, at
 *   most 2048 bytes), plus the DNS names;
 * - keyUsage critical digitalSignature|keyEncipherment|keyAgreement, basicConstraints
 *   critical cA=false, extKeyUsage serverAuth+clientAuth, subject/authority key IDs;
 * - a random positive 16-byte serial; notBefore = now − 10 s; notAfter = now + TTL, capped
 *   at the notAfter of every CA above the SVID, so no SVID outlives its signer.
 *
 * The hot path is one TBS encoding plus one signature: the issuer's name, algorithm and
 * key ID are encoded once ({@link CertificateIssuer}), the SVID subject is encoded once,
 * and nothing is parsed back into an `X509Certificate` (that costs more than signing).
 * @module
 */
import { createPublicKey, type KeyObject, randomBytes, type X509Certificate } from 'node:crypto';
import { type Clock, SpiffeId, systemClock, type TrustDomain } from '@steeple/spiffe';
import {
  CertificateIssuer,
  type DistinguishedName,
  encodeName,
  keyIdentifierForSpki,
  OID,
  x509Fields,
} from '@steeple/spiffe/issuance';
import {
  BACKDATE_MS,
  caCertificateSpec,
  DEFAULT_CA_SUBJECT,
  DEFAULT_SVID_SUBJECT,
  subjectWithSerial,
} from './ca-certificate.js';
import { CaError, SvidRequestError } from './ca-errors.js';
import { parseSubjectPublicKeyInfo, subjectKeyTypeOf } from './subject-public-key.js';

/** Longest SPIFFE ID the CA puts in a certificate (SPIFFE-ID §2.3, ID-5). */
export const MAX_SPIFFE_ID_BYTES = 2048;

/** SPIRE's default X.509-SVID TTL, used for the server's own SVID when none is given. */
export const DEFAULT_X509_SVID_TTL_SECONDS = 3600;

/** What builds an {@link X509Ca}. */
export interface X509CaInit {
  readonly trustDomain: TrustDomain;
  /** This CA's certificate: self-signed, or signed by an upstream authority. */
  readonly certificate: X509Certificate;
  /** This CA's private key; must match `certificate`. */
  readonly privateKey: KeyObject;
  /**
   * The upstream certificates between this CA and the upstream root, excluding the root
   * (empty when self-signed or signed by the upstream root itself).
   */
  readonly upstreamChain?: readonly X509Certificate[];
  readonly clock?: Clock;
  /** Subject of issued SVIDs; default `C=US, O=Steeple`. */
  readonly svidSubject?: DistinguishedName;
}

/** One X.509-SVID signing request. */
export interface X509SvidRequest {
  /** The key to certify: a KeyObject, or SubjectPublicKeyInfo DER (e.g. `ParsedCsr.subjectPublicKeyInfo`). */
  readonly publicKey: KeyObject | Uint8Array;
  readonly spiffeId: SpiffeId;
  /** Requested lifetime; capped at the CA's notAfter. */
  readonly ttlSeconds: number;
  /** DNS SANs; the first also becomes the subject CN. */
  readonly dnsNames?: readonly string[];
}

/** A signed X.509-SVID. */
export interface SignedX509Svid {
  readonly spiffeId: SpiffeId;
  /** DER: the leaf, then intermediates up to but excluding the root (what the Workload API sends). */
  readonly certificates: Buffer[];
  /** When it was signed (notBefore is 10 s earlier). */
  readonly issuedAt: Date;
  /** The leaf's notAfter. */
  readonly expiresAt: Date;
  /** The leaf's serial number, lowercase hex. */
  readonly serialNumber: string;
}

/** A signed intermediate CA certificate for a downstream server. */
export interface SignedX509Ca {
  /** DER: the new CA certificate, then intermediates up to but excluding the root. */
  readonly certificates: Buffer[];
  readonly expiresAt: Date;
  readonly serialNumber: string;
}

// DNS names as RFC 1123 host names, optionally with one leading wildcard label.
const DNS_LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const DNS_NAME = new RegExp(`^(?:\\*\\.)?${DNS_LABEL}(?:\\.${DNS_LABEL})*$`);

// A pool of random bytes, refilled every 256 serials: one CSPRNG call per serial cost ≈ 5 %.
let serialPool = Buffer.alloc(0);
let serialOffset = 0;

function nextSerial(): Buffer {
  if (serialOffset + 16 > serialPool.length) {
    serialPool = randomBytes(4096);
    serialOffset = 0;
  }
  const serial = Buffer.from(serialPool.subarray(serialOffset, serialOffset + 16));
  serialOffset += 16;
  serial[0] = ((serial[0] as number) & 0x7f) | 0x40; // positive, 16 bytes, never zero
  return serial;
}

const LEAF_USAGES = ['digitalSignature', 'keyEncipherment', 'keyAgreement'] as const;
const LEAF_PURPOSES = [OID.serverAuth, OID.clientAuth];

function checkTtl(ttlSeconds: number): number {
  if (typeof ttlSeconds !== 'number' || !Number.isFinite(ttlSeconds) || ttlSeconds <= 0) {
    throw new SvidRequestError(`TTL ${String(ttlSeconds)} must be a positive number of seconds`);
  }
  return ttlSeconds;
}

/**
 * An X.509 CA that signs SVIDs of one trust domain. Immutable; cheap to hold many of
 * (the CA manager keeps the active one and the prepared next one).
 */
export class X509Ca {
  readonly trustDomain: TrustDomain;
  readonly certificate: X509Certificate;
  /** Hex subjectKeyIdentifier of this CA: the "authority ID" SPIRE shows. */
  readonly authorityId: string;
  readonly notBefore: Date;
  /** The earliest notAfter of this CA and the upstream chain: no SVID outlives it. */
  readonly notAfter: Date;
  /** Certificates sent after each leaf: empty when self-signed, else this CA and the upstream chain. */
  readonly chain: readonly X509Certificate[];
  readonly #chainDer: readonly Buffer[];
  readonly #issuer: CertificateIssuer;
  readonly #clock: Clock;
  readonly #svidSubject: DistinguishedName;
  readonly #svidSubjectDer: Buffer;
  readonly #serverId: string;

  /** Throws a TypeError when the certificate is not a CA with keyCertSign or the key does not match it. */
  constructor(init: X509CaInit) {
    const fields = x509Fields(init.certificate);
    if (!fields.basicConstraints?.ca)
      throw new TypeError('X509Ca: the certificate is not a CA (basicConstraints cA=false)');
    if (((fields.keyUsage?.flags ?? 0) & 32) === 0) throw new TypeError('X509Ca: the certificate lacks keyCertSign');
    this.#issuer = new CertificateIssuer(init.certificate, init.privateKey);
    this.trustDomain = init.trustDomain;
    this.certificate = init.certificate;
    this.authorityId = (fields.subjectKeyIdentifier ?? keyIdentifierForSpki(fields.subjectPublicKeyInfo)).toString(
      'hex',
    );
    this.notBefore = fields.notBefore;
    const upstream = init.upstreamChain ?? [];
    this.chain = Object.freeze(fields.selfIssued && upstream.length === 0 ? [] : [init.certificate, ...upstream]);
    this.#chainDer = Object.freeze(this.chain.map((c) => c.raw));
    let notAfter = fields.notAfter.getTime();
    for (const c of upstream) notAfter = Math.min(notAfter, x509Fields(c).notAfter.getTime());
    this.notAfter = new Date(notAfter);
    this.#clock = init.clock ?? systemClock;
    this.#svidSubject = init.svidSubject ?? DEFAULT_SVID_SUBJECT;
    this.#svidSubjectDer = encodeName(this.#svidSubject);
    this.#serverId = `${init.trustDomain.idString()}/spire/server`;
  }

  /**
   * Signs an X.509-SVID. Throws {@link SvidRequestError} for an ID outside this trust
   * domain, without a path or over 2048 bytes, a non-positive TTL, a malformed DNS name
   * or an unsupported key; {@link CaError} `ERR_CA_NOT_READY` when this CA has expired.
   */
  signX509Svid(request: X509SvidRequest): SignedX509Svid {
    const id = this.#checkId(request.spiffeId);
    const ttlSeconds = checkTtl(request.ttlSeconds);
    const dnsNames = checkDnsNames(request.dnsNames);
    const spki = subjectKey(request.publicKey);
    const now = this.#clock.now().getTime();
    const notAfter = this.#notAfter(now, ttlSeconds);
    const serial = nextSerial();
    const subject =
      dnsNames.length > 0 ? [...this.#svidSubject, { type: 'CN', value: dnsNames[0] as string }] : this.#svidSubjectDer;
    const leaf = this.#issuer.issue({
      subject,
      publicKey: spki,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter,
      serialNumber: serial,
      basicConstraints: { ca: false, critical: true },
      keyUsage: { usages: LEAF_USAGES, critical: true },
      extendedKeyUsage: { purposes: LEAF_PURPOSES },
      subjectAltName: dnsNames.length > 0 ? { uris: [id], dnsNames } : { uris: [id] },
    });
    return {
      spiffeId: request.spiffeId,
      certificates: [leaf, ...this.#chainDer],
      issuedAt: new Date(now),
      expiresAt: notAfter,
      serialNumber: serial.toString('hex'),
    };
  }

  /** The server's own SVID, `spiffe://<td>/spire/server` as SPIRE names it, for its TLS listeners. */
  signServerSvid(publicKey: KeyObject | Uint8Array, ttlSeconds = DEFAULT_X509_SVID_TTL_SECONDS): SignedX509Svid {
    return this.signX509Svid({ publicKey, spiffeId: SpiffeId.parse(this.#serverId), ttlSeconds });
  }

  /**
   * Signs an intermediate CA for a downstream server of this trust domain (X-8: cA=true,
   * keyCertSign|cRLSign, the trust domain's ID as URI SAN), capped at this CA's notAfter.
   */
  signX509Ca(request: {
    readonly publicKey: KeyObject | Uint8Array;
    readonly ttlSeconds: number;
    readonly subject?: DistinguishedName;
  }): SignedX509Ca {
    const ttlSeconds = checkTtl(request.ttlSeconds);
    const spki = subjectKey(request.publicKey);
    const now = this.#clock.now().getTime();
    const notAfter = this.#notAfter(now, ttlSeconds);
    const serial = nextSerial();
    const der = this.#issuer.issue(
      caCertificateSpec({
        subject: subjectWithSerial(request.subject ?? DEFAULT_CA_SUBJECT, serial),
        publicKey: spki,
        trustDomain: this.trustDomain,
        notBefore: new Date(now - BACKDATE_MS),
        notAfter,
        serialNumber: serial,
      }),
    );
    return { certificates: [der, ...this.#chainDer], expiresAt: notAfter, serialNumber: serial.toString('hex') };
  }

  #checkId(id: SpiffeId): string {
    if (!(id instanceof SpiffeId)) throw new TypeError('spiffeId must be a SpiffeId');
    const text = id.toString();
    if (!id.memberOf(this.trustDomain)) {
      throw new SvidRequestError(`${text} is outside the trust domain "${this.trustDomain.name}" of this CA`);
    }
    if (id.isTrustDomainId()) throw new SvidRequestError(`${text} has no path; an SVID's ID needs one (X-2)`);
    if (text.length > MAX_SPIFFE_ID_BYTES || Buffer.byteLength(text) > MAX_SPIFFE_ID_BYTES) {
      throw new SvidRequestError(`the SPIFFE ID is longer than ${MAX_SPIFFE_ID_BYTES} bytes (ID-5)`);
    }
    return text;
  }

  /** now + TTL, in whole seconds, capped at this CA's notAfter; the CA must not have expired. */
  #notAfter(now: number, ttlSeconds: number): Date {
    const cap = this.notAfter.getTime();
    if (cap <= now) {
      throw new CaError(
        'ERR_CA_NOT_READY',
        `the X.509 CA ${this.authorityId} expired at ${this.notAfter.toISOString()}; nothing can be signed with it`,
      );
    }
    return new Date(Math.floor(Math.min(now + ttlSeconds * 1000, cap) / 1000) * 1000);
  }
}

function checkDnsNames(dnsNames: readonly string[] | undefined): readonly string[] {
  if (dnsNames === undefined) return [];
  if (!Array.isArray(dnsNames)) throw new TypeError('dnsNames must be an array of strings');
  for (const name of dnsNames) {
    if (typeof name !== 'string' || name.length > 253 || !DNS_NAME.test(name)) {
      throw new SvidRequestError(
        `DNS name ${JSON.stringify(String(name).slice(0, 80))} is not a valid host name (letters, digits, "-", dots; optional leading "*.")`,
      );
    }
  }
  return dnsNames;
}

const spkiCache = new WeakMap<KeyObject, Buffer>();

/** The SubjectPublicKeyInfo DER for the key, checked to be a type the CA certifies. */
function subjectKey(publicKey: KeyObject | Uint8Array): Buffer {
  try {
    if (publicKey instanceof Uint8Array) return parseSubjectPublicKeyInfo(publicKey).spki;
    if (publicKey?.type !== 'public' && publicKey?.type !== 'private') {
      throw new TypeError('publicKey must be a public or private KeyObject, or SubjectPublicKeyInfo DER');
    }
    let spki = spkiCache.get(publicKey);
    if (!spki) {
      subjectKeyTypeOf(publicKey);
      const pub = publicKey.type === 'private' ? createPublicKey(publicKey) : publicKey;
      spki = pub.export({ format: 'der', type: 'spki' });
      spkiCache.set(publicKey, spki);
    }
    return spki;
  } catch (cause) {
    if (cause instanceof RangeError) throw new SvidRequestError(`public key: ${cause.message}`, { cause });
    throw cause;
  }
}
