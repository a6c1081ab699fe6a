/**
 * A test certificate authority that issues spec-conformant X.509-SVIDs (conformance
 * X-1…X-10, shaped like SPIRE's) and, on request, deliberately broken ones, so that
 * every X509-SVID rule can be tested from both sides. Synchronous and fast (an EC P-256
 * SVID costs well under a millisecond); time comes from an injected {@link Clock}.
 * @module
 */
import { generateKeyPairSync, type KeyObject, X509Certificate } from 'node:crypto';
import { X509Bundle } from '../bundle/x509-bundle.js';
import { type Clock, systemClock } from '../clock.js';
import {
  CertificateIssuer,
  type CertificateSpec,
  type DistinguishedName,
  type ExtensionSpec,
  type KeyUsageName,
  selfSignCertificate,
} from '../internal/certificate-builder.js';
import { OID, x509Fields } from '../internal/x509-fields.js';
import { SpiffeId } from '../spiffeid/spiffe-id.js';
import { TrustDomain } from '../spiffeid/trust-domain.js';
import { X509Svid } from '../svid/x509-svid.js';

export type TestKeyType = 'ec-p256' | 'ec-p384' | 'rsa-2048';

/**
 * Ways to break an issued X.509-SVID on purpose, one per rule. Use them with
 * {@link TestCa.issueX509SvidRaw} when the result breaks a rule that `X509Svid.parse`
 * refuses; `expired`, `notYetValid`, `wrongSigner` and `notAfterBeyondCa` still parse.
 */
export interface X509Breakage {
  /** A second URI SAN; a string gives its value, default `spiffe://<td>/extra`. */
  readonly extraUriSan?: boolean | string;
  /** No URI SAN at all. */
  readonly noUriSan?: boolean;
  /** Replace the URI SANs with exactly these strings (anything, e.g. `SPIFFE://TD/x`). */
  readonly uriSans?: readonly string[];
  /** basicConstraints cA=true on the leaf. */
  readonly isCa?: boolean;
  /** keyCertSign in the leaf's keyUsage. */
  readonly keyCertSign?: boolean;
  /** cRLSign in the leaf's keyUsage. */
  readonly cRLSign?: boolean;
  /** keyUsage without digitalSignature. */
  readonly noDigitalSignature?: boolean;
  /** No keyUsage extension. */
  readonly noKeyUsage?: boolean;
  /** keyUsage not marked critical. */
  readonly nonCriticalKeyUsage?: boolean;
  /** The URI SAN is the trust domain's own ID `spiffe://td`, without a path. */
  readonly rootPathId?: boolean;
  /** The URI SAN uses `https://` instead of `spiffe://`. */
  readonly nonSpiffeScheme?: boolean;
  /** notAfter one hour before now. */
  readonly expired?: boolean;
  /** notBefore one hour after now. */
  readonly notYetValid?: boolean;
  /** Signed by an unrelated key that claims the CA's name and key identifier. */
  readonly wrongSigner?: boolean;
  /** extendedKeyUsage with serverAuth only. */
  readonly ekuServerOnly?: boolean;
  /** Empty subject with a non-critical subjectAltName. */
  readonly emptySubjectNonCriticalSan?: boolean;
  /** An unrecognised extension marked critical (RFC 5280 §4.2). */
  readonly unknownCriticalExtension?: boolean;
  /** Do not cap notAfter at the CA's notAfter, e.g. to outlive an expired CA. */
  readonly notAfterBeyondCa?: boolean;
}

/** Ways to break a CA certificate on purpose. */
export interface CaBreakage {
  /** notAfter one hour before now. */
  readonly expired?: boolean;
  /** notBefore one hour after now. */
  readonly notYetValid?: boolean;
  /** basicConstraints cA=false. */
  readonly notCa?: boolean;
  /** keyUsage cRLSign only, without keyCertSign. */
  readonly noKeyCertSign?: boolean;
}

export interface CreateTestCaOptions {
  readonly trustDomain: TrustDomain | string;
  /** Default systemClock; intermediates inherit their parent's clock. */
  readonly clock?: Clock;
  /** Default 'ec-p256'. */
  readonly keyType?: TestKeyType;
  /** Default 30 days for a root; an intermediate is capped at its parent's notAfter. */
  readonly ttlSeconds?: number;
  /** Makes this CA an intermediate signed by `parent`. */
  readonly parent?: TestCa;
  /** basicConstraints pathLenConstraint. */
  readonly pathLength?: number;
  /** URI/DNS name constraints; URI constraints are hosts, e.g. the trust domain name. */
  readonly nameConstraints?: {
    readonly permittedUris?: readonly string[];
    readonly excludedUris?: readonly string[];
    readonly permittedDns?: readonly string[];
    readonly excludedDns?: readonly string[];
  };
  readonly broken?: CaBreakage;
}

export type CreateIntermediateOptions = Omit<CreateTestCaOptions, 'parent' | 'clock' | 'trustDomain'> & {
  /** Default: the parent's trust domain. */
  readonly trustDomain?: TrustDomain | string;
};

export interface IssueX509SvidOptions {
  /** Default 3600 (SPIRE's default X509-SVID TTL); capped at the CA's notAfter. */
  readonly ttlSeconds?: number;
  /** Default now − 10 s, like SPIRE. */
  readonly notBefore?: Date;
  /** Extra DNS SANs; the first also becomes the subject CN, as SPIRE does. */
  readonly dnsNames?: readonly string[];
  /** Key type of the SVID's key; default 'ec-p256'. */
  readonly keyType?: TestKeyType;
  /** Certify this key instead of generating one. */
  readonly privateKey?: KeyObject;
  /** Workload API hint carried by the returned X509Svid. */
  readonly hint?: string;
  readonly broken?: X509Breakage;
}

/** A certificate authority for tests. */
export interface TestCa {
  readonly trustDomain: TrustDomain;
  readonly clock: Clock;
  readonly certificate: X509Certificate;
  readonly privateKey: KeyObject;
  /** This CA and its ancestors up to, but excluding, the root (empty for a root). */
  readonly chain: readonly X509Certificate[];
  /** The root of this CA's hierarchy (itself for a root). */
  readonly root: TestCa;
  /** The root's certificate as the X.509 bundle of this CA's trust domain. */
  x509Bundle(): X509Bundle;
  /** An intermediate CA signed by this one (same trust domain and clock unless told otherwise). */
  createIntermediate(opts?: CreateIntermediateOptions): TestCa;
  /** Issues an X.509-SVID whose chain holds the intermediates up to but excluding the root. */
  issueX509Svid(id: SpiffeId | string, opts?: IssueX509SvidOptions): X509Svid;
  /** Like {@link issueX509Svid} without any validation, for certificates that break rules on purpose. */
  issueX509SvidRaw(
    id: SpiffeId | string,
    opts?: IssueX509SvidOptions,
  ): { certificates: X509Certificate[]; privateKey: KeyObject };
}

const HOUR = 3_600_000;
const DEFAULT_CA_TTL_SECONDS = 30 * 24 * 3600;
const DEFAULT_SVID_TTL_SECONDS = 3600;
const BACKDATE_MS = 10_000;
const UNKNOWN_EXTENSION_OID = '1.3.6.1.4.1.55555.1.1';
const DER_NULL = Buffer.from([0x05, 0x00]);

export function generateTestKey(keyType: TestKeyType = 'ec-p256'): { publicKey: KeyObject; privateKey: KeyObject } {
  switch (keyType) {
    case 'ec-p256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' });
    case 'ec-p384':
      return generateKeyPairSync('ec', { namedCurve: 'P-384' });
    case 'rsa-2048':
      return generateKeyPairSync('rsa', { modulusLength: 2048 });
    default:
      throw new TypeError(`unknown key type ${JSON.stringify(keyType)}`);
  }
}

function randomLabel(): string {
  return Math.floor(Math.random() * 0x1_0000_0000)
    .toString(16)
    .padStart(8, '0');
}

/** DER of an OCTET STRING holding `bytes`, as the subjectKeyIdentifier extension value. */
function octetString(bytes: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x04, bytes.length]), bytes]);
}

/** DER GeneralSubtrees for URI (tag 6) and DNS (tag 2) bases. */
function nameConstraintsValue(nc: NonNullable<CreateTestCaOptions['nameConstraints']>): Buffer {
  const der = (tag: number, body: Buffer): Buffer => {
    const len = body.length;
    const head = len < 0x80 ? Buffer.from([tag, len]) : Buffer.from([tag, 0x81, len]);
    return Buffer.concat([head, body]);
  };
  const subtrees = (uris: readonly string[] = [], dns: readonly string[] = []): Buffer =>
    Buffer.concat([
      ...uris.map((u) => der(0x30, der(0x86, Buffer.from(u, 'latin1')))),
      ...dns.map((d) => der(0x30, der(0x82, Buffer.from(d, 'latin1')))),
    ]);
  const parts: Buffer[] = [];
  const permitted = subtrees(nc.permittedUris, nc.permittedDns);
  const excluded = subtrees(nc.excludedUris, nc.excludedDns);
  if (permitted.length > 0) parts.push(der(0xa0, permitted));
  if (excluded.length > 0) parts.push(der(0xa1, excluded));
  return der(0x30, Buffer.concat(parts));
}

class TestCaImpl implements TestCa {
  readonly trustDomain: TrustDomain;
  readonly clock: Clock;
  readonly certificate: X509Certificate;
  readonly privateKey: KeyObject;
  readonly chain: readonly X509Certificate[];
  readonly root: TestCa;
  readonly #issuer: CertificateIssuer;
  readonly #notAfter: Date;
  #bundle: X509Bundle | undefined;
  #decoy: CertificateIssuer | undefined;

  constructor(opts: CreateTestCaOptions) {
    this.trustDomain = TrustDomain.from(opts.trustDomain);
    const parent = opts.parent as TestCaImpl | undefined;
    this.clock = opts.clock ?? parent?.clock ?? systemClock;
    const keys = generateTestKey(opts.keyType);
    this.privateKey = keys.privateKey;
    const now = this.clock.now().getTime();
    const broken = opts.broken ?? {};
    let notBefore = now - BACKDATE_MS;
    let notAfter = now + (opts.ttlSeconds ?? DEFAULT_CA_TTL_SECONDS) * 1000;
    if (parent && !broken.expired) notAfter = Math.min(notAfter, parent.#notAfter.getTime());
    if (broken.expired) {
      notBefore = now - 2 * HOUR;
      notAfter = now - HOUR;
    }
    if (broken.notYetValid) {
      notBefore = now + HOUR;
      notAfter = Math.max(notAfter, now + 2 * HOUR);
    }
    const extensions: ExtensionSpec[] = [];
    if (opts.nameConstraints) {
      extensions.push({ oid: OID.nameConstraints, critical: true, value: nameConstraintsValue(opts.nameConstraints) });
    }
    const subject: DistinguishedName = [
      { type: 'C', value: 'US' },
      { type: 'O', value: 'Steeple Test' },
      {
        type: 'CN',
        value: `Steeple Test ${parent ? 'Intermediate' : 'Root'} CA ${this.trustDomain.name} ${randomLabel()}`,
      },
    ];
    const spec: CertificateSpec = {
      subject,
      publicKey: keys.publicKey,
      notBefore: new Date(notBefore),
      notAfter: new Date(notAfter),
      basicConstraints:
        opts.pathLength === undefined ? { ca: !broken.notCa } : { ca: !broken.notCa, pathLength: opts.pathLength },
      keyUsage: { usages: broken.noKeyCertSign ? ['cRLSign'] : ['keyCertSign', 'cRLSign'] },
      subjectAltName: { uris: [this.trustDomain.idString()] },
      extensions,
    };
    const der = parent ? parent.#issuer.issue(spec) : selfSignCertificate(spec, keys.privateKey);
    this.certificate = new X509Certificate(der);
    this.#notAfter = new Date(notAfter);
    this.#issuer = new CertificateIssuer(this.certificate, keys.privateKey);
    this.chain = Object.freeze(parent ? [this.certificate, ...parent.chain] : []);
    this.root = parent ? parent.root : this;
  }

  x509Bundle(): X509Bundle {
    this.#bundle ??= X509Bundle.fromAuthorities(this.trustDomain, [this.root.certificate]);
    return this.#bundle;
  }

  createIntermediate(opts: CreateIntermediateOptions = {}): TestCa {
    return new TestCaImpl({ ...opts, trustDomain: opts.trustDomain ?? this.trustDomain, parent: this });
  }

  issueX509Svid(id: SpiffeId | string, opts: IssueX509SvidOptions = {}): X509Svid {
    const { certificates, privateKey } = this.issueX509SvidRaw(id, opts);
    return X509Svid.fromCertificates(certificates, privateKey, opts.hint === undefined ? {} : { hint: opts.hint });
  }

  issueX509SvidRaw(
    id: SpiffeId | string,
    opts: IssueX509SvidOptions = {},
  ): { certificates: X509Certificate[]; privateKey: KeyObject } {
    const spiffeId = SpiffeId.from(id);
    const broken = opts.broken ?? {};
    const privateKey = opts.privateKey ?? generateTestKey(opts.keyType).privateKey;
    const now = this.clock.now().getTime();

    let notBefore = opts.notBefore?.getTime() ?? now - BACKDATE_MS;
    let notAfter = now + (opts.ttlSeconds ?? DEFAULT_SVID_TTL_SECONDS) * 1000;
    if (!broken.notAfterBeyondCa) notAfter = Math.min(notAfter, this.#notAfter.getTime());
    if (broken.expired) {
      notBefore = now - 2 * HOUR;
      notAfter = now - HOUR;
    }
    if (broken.notYetValid) {
      notBefore = now + HOUR;
      notAfter = Math.max(notAfter, now + 2 * HOUR);
    }

    const td = spiffeId.trustDomain.name;
    let uris: string[] = [spiffeId.toString()];
    if (broken.rootPathId) uris = [spiffeId.trustDomain.idString()];
    if (broken.nonSpiffeScheme) uris = [`https://${td}${spiffeId.path || '/'}`];
    if (broken.extraUriSan) {
      uris.push(typeof broken.extraUriSan === 'string' ? broken.extraUriSan : `spiffe://${td}/extra`);
    }
    if (broken.noUriSan) uris = [];
    if (broken.uriSans) uris = [...broken.uriSans];

    const usages: KeyUsageName[] = broken.noDigitalSignature
      ? ['keyEncipherment', 'keyAgreement']
      : ['digitalSignature', 'keyEncipherment', 'keyAgreement'];
    if (broken.keyCertSign) usages.push('keyCertSign');
    if (broken.cRLSign) usages.push('cRLSign');

    const dnsNames = opts.dnsNames ?? [];
    const subject: DistinguishedName = broken.emptySubjectNonCriticalSan
      ? []
      : [
          { type: 'C', value: 'US' },
          { type: 'O', value: 'Steeple Test' },
          ...(dnsNames.length > 0 ? [{ type: 'CN', value: dnsNames[0] as string }] : []),
        ];

    const spec: CertificateSpec = {
      subject,
      publicKey: privateKey,
      notBefore: new Date(notBefore),
      notAfter: new Date(notAfter),
      basicConstraints: { ca: broken.isCa === true },
      ...(broken.noKeyUsage ? {} : { keyUsage: { usages, critical: !broken.nonCriticalKeyUsage } }),
      extendedKeyUsage: { purposes: broken.ekuServerOnly ? [OID.serverAuth] : [OID.serverAuth, OID.clientAuth] },
      subjectAltName: {
        uris,
        dnsNames,
        ...(broken.emptySubjectNonCriticalSan ? { critical: false } : {}),
      },
      ...(broken.unknownCriticalExtension
        ? { extensions: [{ oid: UNKNOWN_EXTENSION_OID, critical: true, value: DER_NULL }] }
        : {}),
    };
    const issuer = broken.wrongSigner ? this.#decoyIssuer() : this.#issuer;
    const leaf = new X509Certificate(issuer.issue(spec));
    return { certificates: [leaf, ...this.chain], privateKey };
  }

  /**
   * An issuer with this CA's name and key identifier but an unrelated key: what it
   * signs looks issued by this CA, yet the signature does not verify.
   */
  #decoyIssuer(): CertificateIssuer {
    if (!this.#decoy) {
      const keys = generateTestKey('ec-p256');
      const real = x509Fields(this.certificate);
      const keyId = real.subjectKeyIdentifier;
      const now = this.clock.now().getTime();
      const der = selfSignCertificate(
        {
          subject: real.subject,
          publicKey: keys.publicKey,
          notBefore: new Date(now - HOUR),
          notAfter: new Date(now + 24 * HOUR),
          basicConstraints: { ca: true },
          keyUsage: { usages: ['keyCertSign', 'cRLSign'] },
          subjectKeyIdentifier: false,
          ...(keyId
            ? { extensions: [{ oid: OID.subjectKeyIdentifier, critical: false, value: octetString(keyId) }] }
            : {}),
        },
        keys.privateKey,
      );
      this.#decoy = new CertificateIssuer(new X509Certificate(der), keys.privateKey);
    }
    return this.#decoy;
  }
}

/**
 * Creates a test CA: a self-signed root, or an intermediate when `parent` is given.
 *
 * @example
 * const ca = createTestCa({ trustDomain: 'example.org', clock });
 * const svid = ca.issueX509Svid('spiffe://example.org/web');
 * verifyX509Svid(svid.certificates, ca.x509Bundle());
 */
export function createTestCa(opts: CreateTestCaOptions): TestCa {
  return new TestCaImpl(opts);
}
