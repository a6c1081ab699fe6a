/**
 * What the server's CA certificates look like (conformance X-8, shaped like SPIRE's):
 * basicConstraints critical cA=true, keyUsage critical keyCertSign|cRLSign, the trust
 * domain's own SPIFFE ID (no path) as the only URI SAN, subject and authority key
 * identifiers, a random serial that also goes into the subject's serialNumber so every
 * CA of the trust domain has a distinct name (as SPIRE does), and notBefore backdated by
 * 10 s against clock skew.
 * @module
 */
import { createPublicKey, type KeyObject, randomBytes, X509Certificate } from 'node:crypto';
import type { TrustDomain } from '@steeple/spiffe';
import { type CertificateSpec, type DistinguishedName, selfSignCertificate } from '@steeple/spiffe/issuance';

/** Default `ca_subject`. */
export const DEFAULT_CA_SUBJECT: DistinguishedName = Object.freeze([
  Object.freeze({ type: 'C', value: 'US' }),
  Object.freeze({ type: 'O', value: 'Steeple' }),
]);

/** Subject of X.509-SVIDs (SPIRE uses C=US, O=SPIRE); the first DNS name is added as CN. */
export const DEFAULT_SVID_SUBJECT: DistinguishedName = DEFAULT_CA_SUBJECT;

/** notBefore is set this far in the past, against clock skew between machines. */
export const BACKDATE_MS = 10_000;

/** 16 random bytes, positive (top bit clear) and never zero or shorter (second bit set). */
export function randomSerialNumber(): Buffer {
  const b = randomBytes(16);
  b[0] = ((b[0] as number) & 0x7f) | 0x40;
  return b;
}

/** The subject with a serialNumber attribute equal to `serial` (decimal), unless it already has one. */
export function subjectWithSerial(subject: DistinguishedName, serial: Uint8Array): DistinguishedName {
  if (subject.some((a) => a.type === 'serialNumber' || a.type === '2.5.4.5')) return subject;
  const decimal = BigInt(`0x${Buffer.from(serial).toString('hex')}`).toString(10);
  return [...subject, { type: 'serialNumber', value: decimal }];
}

/** The certificate of a CA for `trustDomain` (self-signed or signed by a parent). */
export function caCertificateSpec(params: {
  readonly subject: DistinguishedName;
  readonly publicKey: KeyObject | Uint8Array;
  readonly trustDomain: TrustDomain;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly serialNumber?: Uint8Array;
}): CertificateSpec {
  return {
    subject: params.subject,
    publicKey: params.publicKey,
    notBefore: params.notBefore,
    notAfter: params.notAfter,
    ...(params.serialNumber ? { serialNumber: params.serialNumber } : {}),
    basicConstraints: { ca: true, critical: true },
    keyUsage: { usages: ['keyCertSign', 'cRLSign'], critical: true },
    subjectAltName: { uris: [params.trustDomain.idString()] },
  };
}

/**
 * A self-signed root CA certificate for `privateKey`: valid from `now` − 10 s for
 * `ttlSeconds`, subject `subject` plus its serial number.
 */
export function selfSignCaCertificate(params: {
  readonly trustDomain: TrustDomain;
  readonly privateKey: KeyObject;
  readonly subject: DistinguishedName;
  readonly now: Date;
  readonly ttlSeconds: number;
}): X509Certificate {
  const serialNumber = randomSerialNumber();
  const now = params.now.getTime();
  const spec = caCertificateSpec({
    subject: subjectWithSerial(params.subject, serialNumber),
    publicKey: createPublicKey(params.privateKey),
    trustDomain: params.trustDomain,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + params.ttlSeconds * 1000),
    serialNumber,
  });
  return new X509Certificate(selfSignCertificate(spec, params.privateKey));
}

/** `ca_subject` as SPIRE writes it in its config. */
export interface SubjectConfig {
  readonly country?: readonly string[];
  readonly organization?: readonly string[];
  readonly organizational_unit?: readonly string[];
  readonly province?: readonly string[];
  readonly locality?: readonly string[];
  readonly common_name?: string;
}

/** A `ca_subject` config object as a distinguished name; an empty one gives the default. */
export function subjectFromConfig(config: SubjectConfig | undefined): DistinguishedName {
  if (!config) return DEFAULT_CA_SUBJECT;
  const name: { type: string; value: string }[] = [];
  for (const value of config.country ?? []) name.push({ type: 'C', value });
  for (const value of config.organization ?? []) name.push({ type: 'O', value });
  for (const value of config.organizational_unit ?? []) name.push({ type: 'OU', value });
  for (const value of config.province ?? []) name.push({ type: 'ST', value });
  for (const value of config.locality ?? []) name.push({ type: 'L', value });
  if (config.common_name) name.push({ type: 'CN', value: config.common_name });
  return name.length > 0 ? name : DEFAULT_CA_SUBJECT;
}
