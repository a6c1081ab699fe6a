import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import type { X509BundleSource } from '../bundle/source.js';
import { X509Bundle } from '../bundle/x509-bundle.js';
import { X509SvidError } from '../errors.js';
import { CertificateIssuer, selfSignCertificate } from '../internal/certificate-builder.js';
import type { TrustDomain } from '../spiffeid/trust-domain.js';
import { ManualClock } from '../testing/manual-clock.js';
import { createTestCa, generateTestKey, type TestCa } from '../testing/test-ca.js';
import { verifyX509Svid } from './x509-svid-verify.js';

const T0 = new Date('2030-01-01T00:00:00Z');
const clock = new ManualClock(T0);
const caA = createTestCa({ trustDomain: 'a.example', clock });
const caB = createTestCa({ trustDomain: 'b.example', clock });
const bundleA = caA.x509Bundle();
const bundleB = caB.x509Bundle();

function sourceOf(...bundles: X509Bundle[]): X509BundleSource {
  const map = new Map(bundles.map((b) => [b.trustDomain.name, b]));
  return { getX509BundleForTrustDomain: (td: TrustDomain) => map.get(td.name) };
}
const both = sourceOf(bundleA, bundleB);

function assertCode(fn: () => unknown, code: X509SvidError['code'], message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof X509SvidError, `expected X509SvidError, got ${err}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    return true;
  });
}

const at = (offsetMs: number) => ({ now: new Date(T0.getTime() + offsetMs) });
const HOUR = 3_600_000;

describe('verifyX509Svid: trust domain of the anchors (X-13)', () => {
  it('accepts an SVID of A against A’s bundle and returns the ID and the verified chain', () => {
    const svid = caA.issueX509Svid('spiffe://a.example/web');
    const r = verifyX509Svid(svid.certificates, bundleA, at(0));
    assert.equal(r.id.toString(), 'spiffe://a.example/web');
    assert.equal(r.verifiedChain.length, 2);
    assert.equal(r.verifiedChain[0], svid.leaf, 'the leaf object itself, not a copy');
    assert.equal(r.verifiedChain[1], caA.certificate);
  });

  it('X-13: A’s CA cannot vouch for spiffe://b.example/x when A’s bundle is the only one given', () => {
    const { certificates } = caA.issueX509SvidRaw('spiffe://b.example/x');
    assertCode(
      () => verifyX509Svid(certificates, bundleA, at(0)),
      'ERR_X509SVID_UNTRUSTED',
      /no X\.509 bundle for trust domain "b\.example"/,
    );
  });

  it('X-13: nor when the source holds both bundles (leaf claims B, chains to A)', () => {
    const { certificates } = caA.issueX509SvidRaw('spiffe://b.example/x');
    assertCode(
      () => verifyX509Svid(certificates, both, at(0)),
      'ERR_X509SVID_UNTRUSTED',
      /does not lead to an authority of trust domain "b\.example"/,
    );
  });

  it('X-13: nor through an intermediate of A that claims trust domain B', () => {
    const rogue = caA.createIntermediate({ trustDomain: 'b.example' });
    const { certificates } = rogue.issueX509SvidRaw('spiffe://b.example/x');
    assertCode(() => verifyX509Svid(certificates, both, at(0)), 'ERR_X509SVID_UNTRUSTED', /trust domain "b\.example"/);
  });

  it('X-13: a source that answers with another trust domain’s bundle is not trusted', () => {
    const wrong: X509BundleSource = { getX509BundleForTrustDomain: () => bundleA };
    const { certificates } = caA.issueX509SvidRaw('spiffe://b.example/x');
    assertCode(() => verifyX509Svid(certificates, wrong, at(0)), 'ERR_X509SVID_UNTRUSTED', /"b\.example"/);
  });

  it('X-13: uses only the leaf’s own bundle even when B’s CA is in it under the wrong name', () => {
    // A bundle for a.example that (wrongly) holds only B's root: B-signed SVIDs of A fail.
    const confused = X509Bundle.fromAuthorities('a.example', [caB.certificate]);
    const svid = caA.issueX509Svid('spiffe://a.example/web');
    assertCode(() => verifyX509Svid(svid.certificates, confused, at(0)), 'ERR_X509SVID_UNTRUSTED', /a\.example/);
  });

  it('B-2: an empty bundle trusts nothing', () => {
    const svid = caA.issueX509Svid('spiffe://a.example/web');
    const empty = X509Bundle.fromAuthorities('a.example', []);
    assertCode(
      () => verifyX509Svid(svid.certificates, empty, at(0)),
      'ERR_X509SVID_UNTRUSTED',
      /bundle of "a\.example" is empty/,
    );
  });
});

describe('verifyX509Svid: signatures and path building (X-11)', () => {
  it('X-11: rejects a leaf signed by an unrelated key posing as the CA', () => {
    const { certificates } = caA.issueX509SvidRaw('spiffe://a.example/web', { broken: { wrongSigner: true } });
    assertCode(
      () => verifyX509Svid(certificates, bundleA, at(0)),
      'ERR_X509SVID_UNTRUSTED',
      /leaf: signature does not verify with the key of X\.509-SVID trust anchor/,
    );
  });

  it('X-11: rejects a leaf issued by another CA of the same trust domain that is not in the bundle', () => {
    const other = createTestCa({ trustDomain: 'a.example', clock });
    const svid = other.issueX509Svid('spiffe://a.example/web');
    assertCode(() => verifyX509Svid(svid.certificates, bundleA, at(0)), 'ERR_X509SVID_UNTRUSTED', /does not lead/);
  });

  it('follows one and two intermediates to the root', () => {
    const i1 = caA.createIntermediate();
    const i2 = i1.createIntermediate();
    const s1 = i1.issueX509Svid('spiffe://a.example/one');
    const s2 = i2.issueX509Svid('spiffe://a.example/two');
    assert.deepEqual(verifyX509Svid(s1.certificates, bundleA, at(0)).verifiedChain, [
      s1.leaf,
      i1.certificate,
      caA.certificate,
    ]);
    assert.deepEqual(verifyX509Svid(s2.certificates, bundleA, at(0)).verifiedChain, [
      s2.leaf,
      i2.certificate,
      i1.certificate,
      caA.certificate,
    ]);
  });

  it('accepts intermediates in any order, and the root sent along', () => {
    const i1 = caA.createIntermediate();
    const i2 = i1.createIntermediate();
    const s = i2.issueX509Svid('spiffe://a.example/two');
    const shuffled = [s.leaf, i1.certificate, caA.certificate, i2.certificate];
    const r = verifyX509Svid(shuffled, bundleA, at(0));
    assert.deepEqual(r.verifiedChain, [s.leaf, i2.certificate, i1.certificate, caA.certificate]);
  });

  it('rejects a chain missing its intermediate', () => {
    const i1 = caA.createIntermediate();
    const s = i1.issueX509Svid('spiffe://a.example/one');
    assertCode(() => verifyX509Svid([s.leaf], bundleA, at(0)), 'ERR_X509SVID_UNTRUSTED', /does not lead/);
  });

  it('an intermediate in the bundle anchors the path directly', () => {
    const i1 = caA.createIntermediate();
    const s = i1.issueX509Svid('spiffe://a.example/one');
    const pinned = X509Bundle.fromAuthorities('a.example', [i1.certificate]);
    assert.deepEqual(verifyX509Svid(s.certificates, pinned, at(0)).verifiedChain, [s.leaf, i1.certificate]);
    assert.deepEqual(verifyX509Svid([s.leaf], pinned, at(0)).verifiedChain, [s.leaf, i1.certificate]);
  });

  it('picks the right authority among several in the bundle (rotation)', () => {
    const next = createTestCa({ trustDomain: 'a.example', clock });
    const rotated = bundleA.withAuthority(next.certificate);
    const oldSvid = caA.issueX509Svid('spiffe://a.example/old');
    const newSvid = next.issueX509Svid('spiffe://a.example/new');
    assert.equal(verifyX509Svid(oldSvid.certificates, rotated, at(0)).verifiedChain[1], caA.certificate);
    assert.equal(verifyX509Svid(newSvid.certificates, rotated, at(0)).verifiedChain[1], next.certificate);
  });

  it('accepts the chain as DER, as X509Certificate objects, or mixed', () => {
    const i1 = caA.createIntermediate();
    const s = i1.issueX509Svid('spiffe://a.example/one');
    const der = s.certificates.map((c) => new Uint8Array(c.raw));
    assert.equal(verifyX509Svid(der, bundleA, at(0)).id.toString(), 'spiffe://a.example/one');
    assert.equal(verifyX509Svid([der[0] as Uint8Array, i1.certificate], bundleA, at(0)).verifiedChain.length, 3);
    assert.equal(verifyX509Svid(s.certificates, bundleA, at(0)).verifiedChain[0], s.leaf);
  });

  it('rejects DER that is not a certificate, naming the position', () => {
    const s = caA.issueX509Svid('spiffe://a.example/web');
    assertCode(
      () => verifyX509Svid([new Uint8Array([1, 2, 3])], bundleA),
      'ERR_X509SVID_INVALID',
      /leaf: not a valid DER certificate/,
    );
    assertCode(
      () => verifyX509Svid([s.leaf, new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01])], bundleA),
      'ERR_X509SVID_INVALID',
      /chain\[1\]: not a valid DER certificate/,
    );
    const withTrailing = Buffer.concat([s.leaf.raw, Buffer.from([0])]);
    assertCode(
      () => verifyX509Svid([withTrailing], bundleA),
      'ERR_X509SVID_INVALID',
      /leaf: not a valid DER certificate/,
    );
  });

  it('rejects an empty chain', () => {
    assertCode(() => verifyX509Svid([], bundleA), 'ERR_X509SVID_INVALID', /chain is empty/);
  });

  it('RFC 5280 §4.2: rejects a leaf with an unrecognised critical extension', () => {
    const { certificates } = caA.issueX509SvidRaw('spiffe://a.example/web', {
      broken: { unknownCriticalExtension: true },
    });
    assertCode(
      () => verifyX509Svid(certificates, bundleA, at(0)),
      'ERR_X509SVID_INVALID',
      /leaf: unrecognised critical extension 1\.3\.6\.1\.4\.1\.55555\.1\.1/,
    );
  });

  it('RFC 5280 §4.1.1.2: rejects a certificate whose inner and outer signature algorithms differ', () => {
    const svid = caA.issueX509Svid('spiffe://a.example/web');
    const der = Buffer.from(svid.leaf.raw);
    const sha256 = Buffer.from('06082a8648ce3d040302', 'hex');
    const outer = der.lastIndexOf(sha256);
    assert.ok(outer > der.indexOf(sha256), 'found the outer AlgorithmIdentifier');
    der[outer + sha256.length - 1] = 0x03; // ecdsa-with-SHA384 outside, SHA256 inside
    assertCode(
      () => verifyX509Svid([der], bundleA, at(0)),
      'ERR_X509SVID_INVALID',
      /leaf: the signature algorithm inside and outside/,
    );
  });

  it('works with P-384 and RSA CAs and leaf keys', () => {
    const p384 = createTestCa({ trustDomain: 'a.example', clock, keyType: 'ec-p384' });
    const rsa = createTestCa({ trustDomain: 'a.example', clock, keyType: 'rsa-2048' });
    const bundle = X509Bundle.fromAuthorities('a.example', [p384.certificate, rsa.certificate]);
    for (const ca of [p384, rsa]) {
      for (const keyType of ['ec-p256', 'ec-p384', 'rsa-2048'] as const) {
        const s = ca.issueX509Svid('spiffe://a.example/k', { keyType });
        assert.equal(verifyX509Svid(s.certificates, bundle, at(0)).verifiedChain[1], ca.certificate);
      }
    }
  });
});

describe('verifyX509Svid: validity of every certificate on the path (X-11)', () => {
  const svid = caA.issueX509Svid('spiffe://a.example/web', { ttlSeconds: 3600 });

  it('accepts at the edges of the validity period', () => {
    const notAfter = svid.expiresAt.getTime();
    assert.ok(verifyX509Svid(svid.certificates, bundleA, { now: new Date(notAfter) }));
    assert.ok(verifyX509Svid(svid.certificates, bundleA, at(-10_000)));
  });

  it('rejects an expired leaf, naming it and its notAfter', () => {
    const notAfter = svid.expiresAt;
    assertCode(
      () => verifyX509Svid(svid.certificates, bundleA, { now: new Date(notAfter.getTime() + 1000) }),
      'ERR_X509SVID_EXPIRED',
      new RegExp(`^X\\.509-SVID leaf: expired at ${notAfter.toISOString().replace(/\./g, '\\.')}`),
    );
  });

  it('rejects a leaf that is not yet valid', () => {
    assertCode(
      () => verifyX509Svid(svid.certificates, bundleA, at(-HOUR)),
      'ERR_X509SVID_EXPIRED',
      /leaf: not valid before/,
    );
    const { certificates } = caA.issueX509SvidRaw('spiffe://a.example/web', { broken: { notYetValid: true } });
    assertCode(
      () => verifyX509Svid(certificates, bundleA, at(0)),
      'ERR_X509SVID_EXPIRED',
      /leaf: not valid before .*not yet valid/,
    );
  });

  it('rejects a leaf issued already expired', () => {
    const { certificates } = caA.issueX509SvidRaw('spiffe://a.example/web', { broken: { expired: true } });
    assertCode(() => verifyX509Svid(certificates, bundleA, at(0)), 'ERR_X509SVID_EXPIRED', /leaf: expired at/);
  });

  it('rejects an expired intermediate while the leaf is still valid', () => {
    const inter = caA.createIntermediate({ broken: { expired: true } });
    const { certificates } = inter.issueX509SvidRaw('spiffe://a.example/web', { broken: { notAfterBeyondCa: true } });
    assertCode(
      () => verifyX509Svid(certificates, bundleA, at(0)),
      'ERR_X509SVID_EXPIRED',
      /^X\.509-SVID chain\[1\] \(subject ".*Intermediate CA.*"\): expired at /,
    );
  });

  it('rejects an intermediate that is not yet valid', () => {
    const inter = caA.createIntermediate({ broken: { notYetValid: true } });
    const { certificates } = inter.issueX509SvidRaw('spiffe://a.example/web');
    assertCode(
      () => verifyX509Svid(certificates, bundleA, at(0)),
      'ERR_X509SVID_EXPIRED',
      /chain\[1\] .*not valid before/,
    );
  });

  it('rejects an expired trust anchor', () => {
    const root = createTestCa({ trustDomain: 'a.example', clock, broken: { expired: true } });
    const { certificates } = root.issueX509SvidRaw('spiffe://a.example/web', { broken: { notAfterBeyondCa: true } });
    assertCode(
      () => verifyX509Svid(certificates, root.x509Bundle(), at(0)),
      'ERR_X509SVID_EXPIRED',
      /^X\.509-SVID trust anchor of "a\.example" \(subject ".*Root CA.*"\): expired at /,
    );
  });

  it('rejects a trust anchor that is not yet valid', () => {
    const root = createTestCa({ trustDomain: 'a.example', clock, broken: { notYetValid: true } });
    const { certificates } = root.issueX509SvidRaw('spiffe://a.example/web');
    assertCode(
      () => verifyX509Svid(certificates, root.x509Bundle(), at(0)),
      'ERR_X509SVID_EXPIRED',
      /trust anchor .*not valid before/,
    );
  });

  it('uses the current time when `now` is not given', () => {
    const past = createTestCa({ trustDomain: 'a.example', clock: new ManualClock(new Date('2001-01-01T00:00:00Z')) });
    const s = past.issueX509Svid('spiffe://a.example/web');
    assertCode(
      () => verifyX509Svid(s.certificates, past.x509Bundle()),
      'ERR_X509SVID_EXPIRED',
      /leaf: expired at 2001-/,
    );
  });
});

describe('verifyX509Svid: CA constraints along the path (X-11)', () => {
  function chainOf(ca: TestCa): X509Certificate[] {
    return ca.issueX509SvidRaw(`spiffe://${ca.trustDomain.name}/w`).certificates;
  }

  it('X-11: honours pathLenConstraint 0 on the root', () => {
    const root = createTestCa({ trustDomain: 'a.example', clock, pathLength: 0 });
    assert.ok(verifyX509Svid(chainOf(root), root.x509Bundle(), at(0)));
    assertCode(
      () => verifyX509Svid(chainOf(root.createIntermediate()), root.x509Bundle(), at(0)),
      'ERR_X509SVID_INVALID',
      /trust anchor .*pathLenConstraint 0 allows 0 intermediate\(s\) below it, found 1/,
    );
  });

  it('X-11: honours pathLenConstraint on an intermediate', () => {
    const root = createTestCa({ trustDomain: 'a.example', clock, pathLength: 1 });
    const i1 = root.createIntermediate({ pathLength: 0 });
    assert.ok(verifyX509Svid(chainOf(i1), root.x509Bundle(), at(0)));
    assertCode(
      () => verifyX509Svid(chainOf(i1.createIntermediate()), root.x509Bundle(), at(0)),
      'ERR_X509SVID_INVALID',
      /pathLenConstraint 0/,
    );
  });

  it('X-9: URI name constraints that permit the trust domain are honoured', () => {
    const root = createTestCa({ trustDomain: 'a.example', clock, nameConstraints: { permittedUris: ['a.example'] } });
    assert.ok(verifyX509Svid(chainOf(root.createIntermediate()), root.x509Bundle(), at(0)));
  });

  it('X-9: a URI name constraint excludes SPIFFE IDs outside it', () => {
    const root = createTestCa({ trustDomain: 'a.example', clock });
    const narrow = root.createIntermediate({ nameConstraints: { permittedUris: ['other.example'] } });
    assertCode(
      () => verifyX509Svid(chainOf(narrow), root.x509Bundle(), at(0)),
      'ERR_X509SVID_INVALID',
      /chain\[1\] .*name constraints do not permit URI "spiffe:\/\/a\.example\/w"/,
    );
    const excluding = root.createIntermediate({ nameConstraints: { excludedUris: ['a.example'] } });
    assertCode(
      () => verifyX509Svid(chainOf(excluding), root.x509Bundle(), at(0)),
      'ERR_X509SVID_INVALID',
      /name constraints/,
    );
  });

  it('X-9: DNS name constraints apply to DNS SANs', () => {
    const root = createTestCa({ trustDomain: 'a.example', clock, nameConstraints: { permittedDns: ['svc.local'] } });
    const ok = root.issueX509SvidRaw('spiffe://a.example/w', { dnsNames: ['api.svc.local'] }).certificates;
    const bad = root.issueX509SvidRaw('spiffe://a.example/w', { dnsNames: ['evil.example'] }).certificates;
    assert.ok(verifyX509Svid(ok, root.x509Bundle(), at(0)));
    assertCode(() => verifyX509Svid(bad, root.x509Bundle(), at(0)), 'ERR_X509SVID_INVALID', /DNS name "evil\.example"/);
  });

  it('X-9: refuses name constraints of a form it cannot evaluate instead of ignoring them', () => {
    const keys = generateTestKey();
    const rfc822 = Buffer.from('example.org', 'latin1');
    // NameConstraints { permittedSubtrees [0] { GeneralSubtree { rfc822Name [1] "example.org" } } }
    const subtree = Buffer.concat([Buffer.from([0x30, rfc822.length + 2, 0x81, rfc822.length]), rfc822]);
    const value = Buffer.concat([Buffer.from([0x30, subtree.length + 2, 0xa0, subtree.length]), subtree]);
    const root = new X509Certificate(
      selfSignCertificate(
        {
          subject: [{ type: 'O', value: 'Constrained' }],
          publicKey: keys.publicKey,
          notBefore: new Date(T0.getTime() - HOUR),
          notAfter: new Date(T0.getTime() + HOUR),
          basicConstraints: { ca: true },
          keyUsage: { usages: ['keyCertSign'] },
          extensions: [{ oid: '2.5.29.30', critical: true, value }],
        },
        keys.privateKey,
      ),
    );
    const leafKey = generateTestKey();
    const leaf = new CertificateIssuer(root, keys.privateKey).issue({
      subject: [{ type: 'O', value: 'Leaf' }],
      publicKey: leafKey.publicKey,
      notBefore: T0,
      notAfter: new Date(T0.getTime() + HOUR),
      basicConstraints: { ca: false },
      keyUsage: { usages: ['digitalSignature'] },
      subjectAltName: { uris: ['spiffe://a.example/w'] },
    });
    const bundle = X509Bundle.fromAuthorities('a.example', [root]);
    assertCode(
      () => verifyX509Svid([leaf], bundle, at(0)),
      'ERR_X509SVID_INVALID',
      /name constraints of form rfc822Name are not supported/,
    );
  });

  it('X-11: a trust anchor that is not a CA cannot issue', () => {
    const root = createTestCa({ trustDomain: 'a.example', clock, broken: { notCa: true } });
    assertCode(
      () => verifyX509Svid(chainOf(root), root.x509Bundle(), at(0)),
      'ERR_X509SVID_INVALID',
      /trust anchor .*is not a CA certificate/,
    );
  });
});
