/**
 * Every X509-SVID leaf rule and signing-certificate rule (conformance §2), checked on
 * both sides: X509Svid.parseRaw (our own SVID from the Workload API) and
 * verifyX509Svid (a peer's chain). Each case breaks exactly one rule of an otherwise
 * valid SVID, so each test fails if that rule's check is removed.
 */
import assert from 'node:assert/strict';
import { type KeyObject, X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { X509SvidError } from '../errors.js';
import { CertificateIssuer } from '../internal/certificate-builder.js';
import { concatBytes } from '../internal/der.js';
import { createTestCa, generateTestKey, type X509Breakage } from '../testing/test-ca.js';
import { X509Svid } from './x509-svid.js';
import { verifyX509Svid } from './x509-svid-verify.js';

const ca = createTestCa({ trustDomain: 'example.org' });
const bundle = ca.x509Bundle();
const ID = 'spiffe://example.org/workload';

function parseRaw(certificates: readonly X509Certificate[], privateKey: KeyObject): X509Svid {
  return X509Svid.parseRaw(
    concatBytes(certificates.map((c) => c.raw)),
    privateKey.export({ format: 'der', type: 'pkcs8' }),
  );
}

function assertInvalid(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof X509SvidError, `expected X509SvidError, got ${err}`);
    assert.equal(err.code, 'ERR_X509SVID_INVALID');
    assert.match(err.message, message);
    return true;
  });
}

interface LeafCase {
  readonly rule: string;
  readonly title: string;
  readonly broken: X509Breakage;
  readonly message: RegExp;
}

const leafCases: LeafCase[] = [
  {
    rule: 'X-1',
    title: 'a leaf with two URI SANs',
    broken: { extraUriSan: true },
    message: /^X\.509-SVID leaf: must have exactly one URI SAN, found 2 \(X509-SVID §2/,
  },
  {
    rule: 'X-1',
    title: 'a leaf without a URI SAN',
    broken: { noUriSan: true },
    message: /leaf: must have exactly one URI SAN, found 0/,
  },
  {
    rule: 'X-12',
    title: 'a second URI SAN of another scheme',
    broken: { extraUriSan: 'https://example.org/other' },
    message: /leaf: must have exactly one URI SAN, found 2/,
  },
  {
    rule: 'X-12',
    title: 'a URI SAN whose scheme is not spiffe',
    broken: { nonSpiffeScheme: true },
    message: /leaf: URI SAN is not a valid SPIFFE ID: .*scheme is missing or invalid/,
  },
  {
    rule: 'X-12/ID-6',
    title: 'an upper-case SPIFFE scheme',
    broken: { uriSans: ['SPIFFE://example.org/workload'] },
    message: /leaf: URI SAN is not a valid SPIFFE ID/,
  },
  {
    rule: 'X-12/ID-4',
    title: 'a URI SAN with an invalid path',
    broken: { uriSans: ['spiffe://example.org/a/../b'] },
    message: /leaf: URI SAN is not a valid SPIFFE ID: .*dot segments/,
  },
  {
    rule: 'X-2',
    title: 'a leaf whose SPIFFE ID has no path',
    broken: { rootPathId: true },
    message: /leaf: SPIFFE ID "spiffe:\/\/example\.org" must have a non-root path \(X509-SVID §3\.1, X-2\)/,
  },
  {
    rule: 'X-3/X-14',
    title: 'a leaf that is a CA',
    broken: { isCa: true },
    message: /leaf: must not be a CA \(basicConstraints cA=true\)/,
  },
  {
    rule: 'X-4',
    title: 'a leaf without keyUsage',
    broken: { noKeyUsage: true },
    message: /leaf: keyUsage extension is missing \(X509-SVID §4\.3, X-4\)/,
  },
  {
    rule: 'X-4',
    title: 'a leaf whose keyUsage is not critical',
    broken: { nonCriticalKeyUsage: true },
    message: /leaf: keyUsage extension must be critical/,
  },
  {
    rule: 'X-5/X-12',
    title: 'a leaf with keyCertSign',
    broken: { keyCertSign: true },
    message: /leaf: keyUsage must not include keyCertSign/,
  },
  {
    rule: 'X-5/X-12',
    title: 'a leaf with cRLSign',
    broken: { cRLSign: true },
    message: /leaf: keyUsage must not include cRLSign/,
  },
  {
    rule: 'X-5',
    title: 'a leaf without digitalSignature',
    broken: { noDigitalSignature: true },
    message: /leaf: keyUsage must include digitalSignature/,
  },
  {
    rule: 'X-6',
    title: 'a leaf whose EKU lacks clientAuth',
    broken: { ekuServerOnly: true },
    message: /leaf: extendedKeyUsage must include both serverAuth and clientAuth/,
  },
  {
    rule: 'X-7',
    title: 'an empty subject with a non-critical SAN',
    broken: { emptySubjectNonCriticalSan: true },
    message: /leaf: subject is empty, so the subjectAltName extension must be critical/,
  },
];

describe('X509-SVID leaf rules, in X509Svid.parseRaw and verifyX509Svid', () => {
  it('a conformant SVID passes both (the baseline every case below departs from)', () => {
    const { certificates, privateKey } = ca.issueX509SvidRaw(ID);
    assert.equal(parseRaw(certificates, privateKey).id.toString(), ID);
    assert.equal(verifyX509Svid(certificates, bundle).id.toString(), ID);
  });

  for (const c of leafCases) {
    it(`${c.rule}: parse rejects ${c.title}`, () => {
      const { certificates, privateKey } = ca.issueX509SvidRaw(ID, { broken: c.broken });
      assertInvalid(() => parseRaw(certificates, privateKey), c.message);
    });
    it(`${c.rule}: verify rejects ${c.title}`, () => {
      const { certificates } = ca.issueX509SvidRaw(ID, { broken: c.broken });
      assertInvalid(() => verifyX509Svid(certificates, bundle), c.message);
    });
  }

  it('X-14: a CA certificate presented as the leaf is rejected by parse and verify', () => {
    const inter = ca.createIntermediate();
    assertInvalid(
      () => parseRaw([inter.certificate], inter.privateKey),
      /leaf: SPIFFE ID .* non-root path|must not be a CA/,
    );
    assertInvalid(() => verifyX509Svid([inter.certificate, ...inter.chain.slice(1)], bundle), /leaf:/);
    // Even a CA that claims a workload ID with a path is refused as a leaf.
    const { certificates } = ca.issueX509SvidRaw(ID, { broken: { isCa: true, keyCertSign: true } });
    assertInvalid(() => verifyX509Svid(certificates, bundle), /leaf: must not be a CA/);
  });

  it('X-6: a leaf without any EKU is accepted (the extension is only a SHOULD)', () => {
    const key = generateTestKey();
    const now = Date.now();
    const der = new CertificateIssuer(ca.certificate, ca.privateKey).issue({
      subject: [{ type: 'O', value: 'Steeple Test' }],
      publicKey: key.publicKey,
      notBefore: new Date(now - 10_000),
      notAfter: new Date(now + 3_600_000),
      basicConstraints: { ca: false },
      keyUsage: { usages: ['digitalSignature'] },
      subjectAltName: { uris: [ID] },
    });
    const leaf = new X509Certificate(der);
    assert.equal(parseRaw([leaf], key.privateKey).id.toString(), ID);
    assert.equal(verifyX509Svid([leaf], bundle).id.toString(), ID);
  });

  it('a leaf that node:crypto accepts but that repeats an extension is malformed (RFC 5280 §4.2)', () => {
    const key = generateTestKey();
    const now = Date.now();
    const der = new CertificateIssuer(ca.certificate, ca.privateKey).issue({
      subject: [{ type: 'O', value: 'Steeple Test' }],
      publicKey: key.publicKey,
      notBefore: new Date(now - 10_000),
      notAfter: new Date(now + 3_600_000),
      keyUsage: { usages: ['digitalSignature'] },
      subjectAltName: { uris: [ID] },
      extensions: [{ oid: '2.5.29.15', critical: true, value: Buffer.from([0x03, 0x02, 0x07, 0x80]) }],
    });
    const leaf = new X509Certificate(der);
    const malformed = /^X\.509-SVID leaf: malformed certificate: extension 2\.5\.29\.15 appears more than once/;
    assertInvalid(() => parseRaw([leaf], key.privateKey), malformed);
    assertInvalid(() => verifyX509Svid([der], bundle), malformed);
  });

  it('key ↔ leaf: parse rejects a private key that does not match the leaf (ERR_X509SVID_KEY_MISMATCH)', () => {
    const { certificates } = ca.issueX509SvidRaw(ID);
    const other = ca.issueX509SvidRaw(ID).privateKey;
    assert.throws(
      () => parseRaw(certificates, other),
      (err: unknown) =>
        err instanceof X509SvidError &&
        err.code === 'ERR_X509SVID_KEY_MISMATCH' &&
        /private key does not match the public key of the leaf/.test(err.message) &&
        err.message.includes(ID),
    );
  });

  it('key ↔ leaf: a key of another type is a mismatch too', () => {
    const { certificates } = ca.issueX509SvidRaw(ID);
    const rsa = ca.issueX509SvidRaw(ID, { keyType: 'rsa-2048' }).privateKey;
    assert.throws(() => parseRaw(certificates, rsa), { code: 'ERR_X509SVID_KEY_MISMATCH' });
  });
});

describe('X509-SVID signing-certificate rules (X-8), in X509Svid.parseRaw and verifyX509Svid', () => {
  it('X-8: parse rejects a chain certificate that is not a CA', () => {
    const inter = ca.createIntermediate({ broken: { notCa: true } });
    const { certificates, privateKey } = inter.issueX509SvidRaw(ID);
    assertInvalid(
      () => parseRaw(certificates, privateKey),
      /^X\.509-SVID chain\[1\] \(subject ".*Intermediate CA.*"\): a signing certificate must be a CA/,
    );
  });

  it('X-8: verify rejects an intermediate that is not a CA', () => {
    const inter = ca.createIntermediate({ broken: { notCa: true } });
    const { certificates } = inter.issueX509SvidRaw(ID);
    assertInvalid(() => verifyX509Svid(certificates, bundle), /chain\[1\] .*must be a CA \(basicConstraints cA=true\)/);
  });

  it('X-8: parse rejects a chain certificate without keyCertSign', () => {
    const inter = ca.createIntermediate({ broken: { noKeyCertSign: true } });
    const { certificates, privateKey } = inter.issueX509SvidRaw(ID);
    assertInvalid(() => parseRaw(certificates, privateKey), /chain\[1\] .*must have keyUsage keyCertSign/);
  });

  it('X-8: verify rejects an intermediate without keyCertSign', () => {
    const inter = ca.createIntermediate({ broken: { noKeyCertSign: true } });
    const { certificates } = inter.issueX509SvidRaw(ID);
    assertInvalid(() => verifyX509Svid(certificates, bundle), /chain\[1\] .*must have keyUsage keyCertSign/);
  });

  it('X-8: the rule applies at every chain position, naming it', () => {
    const good = ca.createIntermediate();
    const bad = good.createIntermediate({ broken: { notCa: true } });
    const { certificates, privateKey } = bad.issueX509SvidRaw(ID);
    assert.equal(certificates.length, 3);
    assertInvalid(() => parseRaw(certificates, privateKey), /chain\[1\]/);
    // A non-CA at position 2 of an otherwise fine chain.
    const fine = good.issueX509SvidRaw(ID);
    const chain = [...fine.certificates, fine.certificates[0] as X509Certificate];
    assertInvalid(() => parseRaw(chain, fine.privateKey), /chain\[2\] .*must be a CA/);
    assertInvalid(() => verifyX509Svid(chain, bundle), /chain\[2\] .*must be a CA/);
  });
});
