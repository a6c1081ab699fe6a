import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { CertificateIssuer, type CertificateSpec, encodeName, selfSignCertificate } from './certificate-builder.js';
import { KU, OID, x509Fields } from './x509-fields.js';

const NOW = new Date('2030-01-01T00:00:00Z');
const LATER = new Date('2030-01-02T00:00:00Z');
const p256 = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });

function makeCa(keys = p256()) {
  const der = selfSignCertificate(
    {
      subject: [
        { type: 'C', value: 'US' },
        { type: 'O', value: 'Builder Test' },
      ],
      publicKey: keys.publicKey,
      notBefore: NOW,
      notAfter: LATER,
      basicConstraints: { ca: true, pathLength: 1 },
      keyUsage: { usages: ['keyCertSign', 'cRLSign'] },
      subjectAltName: { uris: ['spiffe://example.org'] },
    },
    keys.privateKey,
  );
  const certificate = new X509Certificate(der);
  return { certificate, keys, issuer: new CertificateIssuer(certificate, keys.privateKey) };
}

const leafSpec = (overrides: Partial<CertificateSpec> = {}): CertificateSpec => ({
  subject: [{ type: 'O', value: 'Leaf' }],
  publicKey: p256().publicKey,
  notBefore: NOW,
  notAfter: LATER,
  basicConstraints: { ca: false },
  keyUsage: { usages: ['digitalSignature'] },
  extendedKeyUsage: { purposes: [OID.serverAuth, OID.clientAuth] },
  subjectAltName: { uris: ['spiffe://example.org/w'], dnsNames: ['w.local'] },
  ...overrides,
});

describe('certificate-builder', () => {
  it('builds a self-signed CA with the requested extensions', () => {
    const { certificate } = makeCa();
    const f = x509Fields(certificate);
    assert.equal(certificate.subject, 'C=US\nO=Builder Test');
    assert.equal(certificate.issuer, certificate.subject);
    assert.ok(certificate.verify(certificate.publicKey), 'self-signature verifies');
    assert.equal(f.version, 3);
    assert.deepEqual(f.basicConstraints, { critical: true, ca: true, pathLength: 1 });
    assert.deepEqual(f.keyUsage, { critical: true, flags: KU.keyCertSign | KU.cRLSign });
    assert.deepEqual(f.authorityKeyIdentifier, f.subjectKeyIdentifier);
    assert.equal(f.notBefore.toISOString(), NOW.toISOString());
    assert.equal(f.notAfter.toISOString(), LATER.toISOString());
  });

  it('issues a leaf signed by the CA, with defaults: SAN non-critical under a subject, EKU non-critical, SKI/AKI', () => {
    const { certificate: ca, issuer } = makeCa();
    const leaf = new X509Certificate(issuer.issue(leafSpec()));
    const f = x509Fields(leaf);
    assert.ok(leaf.verify(ca.publicKey));
    assert.ok(leaf.checkIssued(ca));
    assert.deepEqual(f.subjectAltName, {
      critical: false,
      uris: ['spiffe://example.org/w'],
      dnsNames: ['w.local'],
      ipAddresses: [],
      otherCount: 0,
    });
    assert.deepEqual(f.extKeyUsage, { critical: false, purposes: [OID.serverAuth, OID.clientAuth] });
    assert.deepEqual(f.basicConstraints, { critical: true, ca: false, pathLength: undefined });
    assert.deepEqual(f.authorityKeyIdentifier, x509Fields(ca).subjectKeyIdentifier);
    assert.equal(f.subjectKeyIdentifier?.length, 20);
    assert.equal(f.signatureAlgorithm, '1.2.840.10045.4.3.2');
  });

  it('marks the SAN critical when the subject is empty (RFC 5280 §4.1.2.6)', () => {
    const { issuer } = makeCa();
    const f = x509Fields(new X509Certificate(issuer.issue(leafSpec({ subject: [] }))));
    assert.equal(f.subjectIsEmpty, true);
    assert.equal(f.subjectAltName?.critical, true);
  });

  it('leaves out extensions that are not asked for', () => {
    const { issuer } = makeCa();
    const spec: CertificateSpec = {
      subject: [{ type: 'CN', value: 'bare' }],
      publicKey: p256().publicKey,
      notBefore: NOW,
      notAfter: LATER,
      subjectKeyIdentifier: false,
      authorityKeyIdentifier: false,
    };
    assert.equal(x509Fields(new X509Certificate(issuer.issue(spec))).extensions.size, 0);
  });

  it('makes random, positive, 16-byte serial numbers, and encodes given ones minimally', () => {
    const { issuer } = makeCa();
    const seen = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const serial = x509Fields(new X509Certificate(issuer.issue(leafSpec()))).serialNumber;
      assert.equal(serial.length, 16);
      assert.equal((serial[0] as number) & 0xc0, 0x40);
      seen.add(serial.toString('hex'));
    }
    assert.equal(seen.size, 300);
    const given = new X509Certificate(issuer.issue(leafSpec({ serialNumber: Uint8Array.from([0, 0, 0x01, 0x02]) })));
    assert.equal(given.serialNumber, '0102');
    const high = new X509Certificate(issuer.issue(leafSpec({ serialNumber: Uint8Array.from([0x80]) })));
    assert.deepEqual(x509Fields(high).serialNumber, Buffer.from([0x00, 0x80]));
  });

  it('encodes times as UTCTime through 2049 and GeneralizedTime from 2050, truncated to seconds', () => {
    const { issuer } = makeCa();
    const der = issuer.issue(
      leafSpec({ notBefore: new Date('2049-12-31T23:59:59.900Z'), notAfter: new Date('2050-01-01T00:00:00Z') }),
    );
    assert.ok(der.includes(Buffer.from('\x17\x0d491231235959Z', 'latin1')));
    assert.ok(der.includes(Buffer.from('\x18\x0f20500101000000Z', 'latin1')));
    const f = x509Fields(new X509Certificate(der));
    assert.equal(f.notBefore.toISOString(), '2049-12-31T23:59:59.000Z');
    assert.equal(f.notAfter.toISOString(), '2050-01-01T00:00:00.000Z');
    assert.throws(() => issuer.issue(leafSpec({ notAfter: new Date(Number.NaN) })), TypeError);
  });

  it('signs with the hash that fits the CA key: P-384 → SHA-384, RSA → SHA-256, Ed25519', () => {
    const cases = [
      [generateKeyPairSync('ec', { namedCurve: 'P-384' }), '1.2.840.10045.4.3.3'],
      [generateKeyPairSync('rsa', { modulusLength: 2048 }), '1.2.840.113549.1.1.11'],
      [generateKeyPairSync('ed25519'), '1.3.101.112'],
    ] as const;
    for (const [keys, oid] of cases) {
      const { certificate: ca, issuer } = makeCa(keys);
      const leaf = new X509Certificate(issuer.issue(leafSpec()));
      assert.equal(x509Fields(leaf).signatureAlgorithm, oid);
      assert.equal(x509Fields(leaf).signatureAlgorithmsMatch, true);
      assert.ok(leaf.verify(ca.publicKey), oid);
    }
  });

  it('accepts the public key as SPKI DER (as a CSR carries it)', () => {
    const { issuer } = makeCa();
    const keys = p256();
    const spki = keys.publicKey.export({ format: 'der', type: 'spki' });
    const leaf = new X509Certificate(issuer.issue(leafSpec({ publicKey: spki })));
    assert.ok(leaf.publicKey.equals(keys.publicKey));
  });

  it('appends raw extensions and takes a pre-encoded subject', () => {
    const { issuer } = makeCa();
    const subject = encodeName([{ type: 'O', value: 'Raw' }]);
    const leaf = new X509Certificate(
      issuer.issue(leafSpec({ subject, extensions: [{ oid: '1.2.3.4', critical: true, value: Buffer.from([5, 0]) }] })),
    );
    assert.equal(leaf.subject, 'O=Raw');
    assert.deepEqual(x509Fields(leaf).extensions.get('1.2.3.4'), {
      oid: '1.2.3.4',
      critical: true,
      value: Buffer.from([5, 0]),
    });
  });

  it('refuses an issuer key that does not match the issuer certificate', () => {
    const { certificate } = makeCa();
    assert.throws(() => new CertificateIssuer(certificate, p256().privateKey), /does not match the issuer certificate/);
  });

  it('refuses what it cannot encode faithfully', () => {
    const { issuer } = makeCa();
    assert.throws(() => issuer.issue(leafSpec({ subjectAltName: { uris: ['spiffe://exämple.org/w'] } })), /not ASCII/);
    assert.throws(() => encodeName([{ type: 'Nickname', value: 'x' }]), /unknown name attribute type/);
    assert.throws(() => issuer.issue(leafSpec({ keyUsage: { usages: ['fly' as 'cRLSign'] } })), /unknown key usage/);
  });
});
