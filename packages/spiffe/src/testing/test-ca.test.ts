import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KU, OID, x509Fields } from '../internal/x509-fields.js';
import { SpiffeId } from '../spiffeid/spiffe-id.js';
import { verifyX509Svid } from '../svid/x509-svid-verify.js';
import { ManualClock } from './manual-clock.js';
import { createTestCa } from './test-ca.js';

const T0 = new Date('2030-06-01T12:00:00Z');

describe('createTestCa: issued X.509-SVIDs are spec-conformant (X-1…X-10)', () => {
  const clock = new ManualClock(T0);
  const ca = createTestCa({ trustDomain: 'example.org', clock });
  const svid = ca.issueX509Svid('spiffe://example.org/web', { dnsNames: ['web.example.org', 'web'] });
  const leaf = x509Fields(svid.leaf);

  it('X-1: exactly one URI SAN, the SPIFFE ID; DNS SANs allowed', () => {
    assert.deepEqual(leaf.subjectAltName?.uris, ['spiffe://example.org/web']);
    assert.deepEqual(leaf.subjectAltName?.dnsNames, ['web.example.org', 'web']);
  });

  it('X-3: basicConstraints critical, cA=false', () => {
    assert.deepEqual(leaf.basicConstraints, { critical: true, ca: false, pathLength: undefined });
  });

  it('X-4/X-5: keyUsage critical digitalSignature|keyEncipherment|keyAgreement', () => {
    assert.deepEqual(leaf.keyUsage, {
      critical: true,
      flags: KU.digitalSignature | KU.keyEncipherment | KU.keyAgreement,
    });
  });

  it('X-6: EKU serverAuth and clientAuth', () => {
    assert.deepEqual(leaf.extKeyUsage?.purposes, [OID.serverAuth, OID.clientAuth]);
  });

  it('X-7: a non-empty subject (C=US, O=Steeple Test, CN = first DNS name) and a non-critical SAN', () => {
    assert.equal(svid.leaf.subject, 'C=US\nO=Steeple Test\nCN=web.example.org');
    assert.equal(leaf.subjectAltName?.critical, false);
    const plain = x509Fields(ca.issueX509Svid('spiffe://example.org/x').leaf);
    assert.equal(plain.subjectIsEmpty, false);
  });

  it('X-10: notBefore = now − 10 s, notAfter = now + TTL (default 1 h), random positive 16-byte serials', () => {
    assert.equal(leaf.notBefore.toISOString(), '2030-06-01T11:59:50.000Z');
    assert.equal(leaf.notAfter.toISOString(), '2030-06-01T13:00:00.000Z');
    const serials = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const f = x509Fields(ca.issueX509Svid('spiffe://example.org/x').leaf);
      assert.equal(f.serialNumber.length, 16);
      assert.ok(((f.serialNumber[0] as number) & 0x80) === 0 && f.serialNumber.some((b) => b !== 0));
      serials.add(f.serialNumber.toString('hex'));
    }
    assert.equal(serials.size, 20);
  });

  it('X-10: SKI and AKI are set and chain the leaf to the CA', () => {
    const caFields = x509Fields(ca.certificate);
    assert.ok(leaf.subjectKeyIdentifier && leaf.subjectKeyIdentifier.length === 20);
    assert.deepEqual(leaf.authorityKeyIdentifier, caFields.subjectKeyIdentifier);
    assert.ok(svid.leaf.checkIssued(ca.certificate));
    assert.ok(svid.leaf.verify(ca.certificate.publicKey));
  });

  it('X-10: notAfter is capped at the issuing CA’s notAfter', () => {
    const short = createTestCa({ trustDomain: 'example.org', clock, ttlSeconds: 600 });
    const s = short.issueX509Svid('spiffe://example.org/x', { ttlSeconds: 86_400 });
    assert.equal(s.expiresAt.toISOString(), x509Fields(short.certificate).notAfter.toISOString());
    const inter = short.createIntermediate({ ttlSeconds: 86_400 });
    assert.equal(
      x509Fields(inter.certificate).notAfter.toISOString(),
      x509Fields(short.certificate).notAfter.toISOString(),
    );
  });

  it('X-8/ID-9: CA certificates are critical cA=true, keyCertSign|cRLSign, URI SAN spiffe://td', () => {
    for (const cert of [ca.certificate, ca.createIntermediate().certificate]) {
      const f = x509Fields(cert);
      assert.deepEqual(f.basicConstraints, { critical: true, ca: true, pathLength: undefined });
      assert.deepEqual(f.keyUsage, { critical: true, flags: KU.keyCertSign | KU.cRLSign });
      assert.deepEqual(f.subjectAltName?.uris, ['spiffe://example.org']);
      assert.ok(f.subjectKeyIdentifier);
    }
    assert.equal(x509Fields(ca.certificate).selfIssued, true);
  });

  it('follows the injected clock', () => {
    const c = new ManualClock(T0);
    const ca2 = createTestCa({ trustDomain: 'example.org', clock: c });
    c.advance(3_600_000);
    const s = ca2.issueX509Svid('spiffe://example.org/x', { ttlSeconds: 60 });
    assert.equal(s.expiresAt.toISOString(), '2030-06-01T13:01:00.000Z');
    const nb = ca2.issueX509Svid('spiffe://example.org/x', { notBefore: new Date('2030-06-01T12:30:00Z') });
    assert.equal(x509Fields(nb.leaf).notBefore.toISOString(), '2030-06-01T12:30:00.000Z');
  });
});

describe('createTestCa: hierarchy', () => {
  const clock = new ManualClock(T0);
  const root = createTestCa({ trustDomain: 'example.org', clock });
  const i1 = root.createIntermediate();
  const i2 = i1.createIntermediate();

  it('chain holds the CA and its ancestors up to, but excluding, the root', () => {
    assert.deepEqual(root.chain, []);
    assert.deepEqual(i1.chain, [i1.certificate]);
    assert.deepEqual(i2.chain, [i2.certificate, i1.certificate]);
    assert.equal(i2.root, root);
    assert.equal(i2.trustDomain.name, 'example.org');
  });

  it('issues SVIDs whose chain includes the intermediates, verifiable against the root’s bundle', () => {
    const s = i2.issueX509Svid('spiffe://example.org/deep');
    assert.deepEqual(s.certificates.slice(1), [i2.certificate, i1.certificate]);
    assert.deepEqual(i2.x509Bundle().authorities, [root.certificate]);
    assert.equal(verifyX509Svid(s.certificates, i2.x509Bundle(), { now: T0 }).verifiedChain.length, 4);
  });

  it('a CA with parent passed explicitly is an intermediate', () => {
    const child = createTestCa({ trustDomain: 'example.org', parent: root });
    assert.deepEqual(child.chain, [child.certificate]);
    assert.equal(child.clock, clock);
  });

  it('supports P-384 and RSA keys', () => {
    for (const keyType of ['ec-p384', 'rsa-2048'] as const) {
      const ca = createTestCa({ trustDomain: 'example.org', clock, keyType });
      assert.equal(ca.privateKey.asymmetricKeyType, keyType === 'ec-p384' ? 'ec' : 'rsa');
      const s = ca.issueX509Svid(SpiffeId.parse('spiffe://example.org/k'));
      assert.ok(verifyX509Svid(s.certificates, ca.x509Bundle(), { now: T0 }));
    }
  });
});

describe('createTestCa: breakages do what they say', () => {
  const clock = new ManualClock(T0);
  const ca = createTestCa({ trustDomain: 'example.org', clock });
  const id = 'spiffe://example.org/w';
  const leafOf = (broken: Parameters<typeof ca.issueX509SvidRaw>[1]) =>
    x509Fields(ca.issueX509SvidRaw(id, broken).certificates[0]!);

  it('URI SAN breakages', () => {
    assert.deepEqual(leafOf({ broken: { extraUriSan: true } }).subjectAltName?.uris, [
      id,
      'spiffe://example.org/extra',
    ]);
    assert.deepEqual(leafOf({ broken: { noUriSan: true } }).subjectAltName?.uris, []);
    assert.deepEqual(leafOf({ broken: { rootPathId: true } }).subjectAltName?.uris, ['spiffe://example.org']);
    assert.deepEqual(leafOf({ broken: { nonSpiffeScheme: true } }).subjectAltName?.uris, ['https://example.org/w']);
    assert.deepEqual(leafOf({ broken: { uriSans: ['x:y'] } }).subjectAltName?.uris, ['x:y']);
  });

  it('usage breakages', () => {
    assert.equal(leafOf({ broken: { isCa: true } }).basicConstraints?.ca, true);
    assert.ok(leafOf({ broken: { keyCertSign: true } }).keyUsage!.flags & KU.keyCertSign);
    assert.ok(leafOf({ broken: { cRLSign: true } }).keyUsage!.flags & KU.cRLSign);
    assert.equal(leafOf({ broken: { noDigitalSignature: true } }).keyUsage!.flags & KU.digitalSignature, 0);
    assert.equal(leafOf({ broken: { noKeyUsage: true } }).keyUsage, undefined);
    assert.equal(leafOf({ broken: { nonCriticalKeyUsage: true } }).keyUsage?.critical, false);
    assert.deepEqual(leafOf({ broken: { ekuServerOnly: true } }).extKeyUsage?.purposes, [OID.serverAuth]);
    const empty = leafOf({ broken: { emptySubjectNonCriticalSan: true } });
    assert.equal(empty.subjectIsEmpty, true);
    assert.equal(empty.subjectAltName?.critical, false);
    assert.ok(
      [...leafOf({ broken: { unknownCriticalExtension: true } }).extensions.values()].some(
        (e) => e.critical && e.oid.startsWith('1.3.6.1.4.1.'),
      ),
    );
  });

  it('validity and signer breakages', () => {
    assert.ok(leafOf({ broken: { expired: true } }).notAfter.getTime() < T0.getTime());
    assert.ok(leafOf({ broken: { notYetValid: true } }).notBefore.getTime() > T0.getTime());
    const forged = ca.issueX509SvidRaw(id, { broken: { wrongSigner: true } }).certificates[0]!;
    assert.ok(forged.checkIssued(ca.certificate), 'claims the CA as issuer');
    assert.equal(forged.verify(ca.certificate.publicKey), false, 'but the CA did not sign it');
  });

  it('issueX509Svid refuses what parse refuses; issueX509SvidRaw does not', () => {
    assert.throws(() => ca.issueX509Svid(id, { broken: { extraUriSan: true } }), { code: 'ERR_X509SVID_INVALID' });
    assert.equal(ca.issueX509SvidRaw(id, { broken: { extraUriSan: true } }).certificates.length, 1);
  });
});
