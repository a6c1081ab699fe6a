import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { CertificateIssuer, selfSignCertificate } from './certificate-builder.js';
import { certificateFromDer, decodeOid, readTlv, x509Fields } from './x509-fields.js';

const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const NOW = new Date('2030-01-01T00:00:00Z');
const LATER = new Date('2031-01-01T00:00:00Z');
const caDer = selfSignCertificate(
  {
    subject: [{ type: 'O', value: 'Fields' }],
    publicKey: keys.publicKey,
    notBefore: NOW,
    notAfter: LATER,
    basicConstraints: { ca: true },
    keyUsage: { usages: ['keyCertSign'] },
  },
  keys.privateKey,
);
const ca = new X509Certificate(caDer);
const issuer = new CertificateIssuer(ca, keys.privateKey);

describe('x509Fields', () => {
  it('reads URI SANs exactly, where node:crypto’s comma-joined string is ambiguous', () => {
    const tricky = 'https://example.org/a, URI:spiffe://evil.example/b';
    const cert = new X509Certificate(
      issuer.issue({
        subject: [{ type: 'O', value: 'x' }],
        publicKey: keys.publicKey,
        notBefore: NOW,
        notAfter: LATER,
        subjectAltName: { uris: [tricky] },
      }),
    );
    assert.ok(cert.subjectAltName?.includes('URI:spiffe://evil.example/b'), 'node shows what looks like two URIs');
    assert.deepEqual(x509Fields(cert).subjectAltName?.uris, [tricky]);
  });

  it('computes once per certificate object', () => {
    assert.equal(x509Fields(ca), x509Fields(ca));
  });

  it('reads times before 2000 (UTCTime 19xx) and after 2049 (GeneralizedTime)', () => {
    const cert = new X509Certificate(
      issuer.issue({
        subject: [],
        publicKey: keys.publicKey,
        notBefore: new Date('1999-12-31T23:59:59Z'),
        notAfter: new Date('2101-02-03T04:05:06Z'),
      }),
    );
    const f = x509Fields(cert);
    assert.equal(f.notBefore.toISOString(), '1999-12-31T23:59:59.000Z');
    assert.equal(f.notAfter.toISOString(), '2101-02-03T04:05:06.000Z');
    assert.equal(f.subjectIsEmpty, true);
  });

  it('rejects a certificate that repeats an extension (RFC 5280 §4.2)', () => {
    const der = issuer.issue({
      subject: [{ type: 'O', value: 'x' }],
      publicKey: keys.publicKey,
      notBefore: NOW,
      notAfter: LATER,
      keyUsage: { usages: ['digitalSignature'] },
      extensions: [{ oid: '2.5.29.15', critical: true, value: Buffer.from([0x03, 0x02, 0x05, 0xa0]) }],
    });
    assert.throws(() => x509Fields(new X509Certificate(der)), /extension 2\.5\.29\.15 appears more than once/);
  });

  it('rejects malformed extension values with a RangeError naming the extension', () => {
    const der = issuer.issue({
      subject: [{ type: 'O', value: 'x' }],
      publicKey: keys.publicKey,
      notBefore: NOW,
      notAfter: LATER,
      extensions: [{ oid: '2.5.29.19', critical: true, value: Buffer.from([0x30, 0x03, 0x01, 0x01, 0xff, 0x00]) }],
    });
    assert.throws(
      () => x509Fields(new X509Certificate(der)),
      (err: unknown) => err instanceof RangeError && /2\.5\.29\.19/.test(err.message),
    );
  });
});

describe('certificateFromDer', () => {
  it('returns the same object for the same bytes, so parsed fields are reused', () => {
    const a = certificateFromDer(new Uint8Array(caDer));
    const b = certificateFromDer(Buffer.from(caDer));
    assert.equal(a, b);
  });

  it('rejects trailing bytes, which node:crypto silently ignores', () => {
    const padded = Buffer.concat([caDer, Buffer.from([0, 0])]);
    assert.doesNotThrow(() => new X509Certificate(padded));
    assert.throws(() => certificateFromDer(padded), /trailing bytes/);
  });
});

describe('DER reader', () => {
  it('rejects non-minimal and truncated lengths', () => {
    assert.throws(() => readTlv(Uint8Array.from([0x30, 0x81, 0x05, 1, 2, 3, 4, 5]), 0), /non-minimal/);
    assert.throws(() => readTlv(Uint8Array.from([0x30, 0x82, 0x00, 0x90]), 0), /non-minimal|truncated|runs past/);
    assert.throws(() => readTlv(Uint8Array.from([0x30, 0x05, 1]), 0), /runs past/);
    assert.throws(() => readTlv(Uint8Array.from([0x30]), 0), /truncated/);
    assert.throws(() => readTlv(Uint8Array.from([0x1f, 0x01, 0x00]), 0), /multi-byte/);
  });

  it('decodes OIDs', () => {
    assert.equal(decodeOid(Uint8Array.from([0x55, 0x1d, 0x11]), 0, 3), '2.5.29.17');
    assert.equal(
      decodeOid(Uint8Array.from([0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]), 0, 8),
      '1.2.840.10045.4.3.2',
    );
    assert.throws(() => decodeOid(Uint8Array.from([0x55, 0x86]), 0, 2), /truncated/);
    assert.throws(() => decodeOid(Uint8Array.from([0x80, 0x01]), 0, 2), /non-minimal/);
  });
});
