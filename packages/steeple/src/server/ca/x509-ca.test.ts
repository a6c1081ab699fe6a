import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { SpiffeId, TrustDomain, verifyX509Svid, X509Bundle, X509Svid } from '@steeple/spiffe';
import { x509Fields } from '@steeple/spiffe/issuance';
import { ManualClock } from '@steeple/spiffe/testing';
import { DEFAULT_CA_SUBJECT, selfSignCaCertificate } from './ca-certificate.js';
import { CaError, SvidRequestError } from './ca-errors.js';
import { createCsr } from './create-csr.js';
import { parseCsr } from './csr.js';
import { opensslVerify, tempDir } from './test-support.js';
import { X509Ca } from './x509-ca.js';

const td = TrustDomain.parse('example.org');
const START = new Date('2030-01-01T00:00:00Z');
const HOUR = 3600;

function makeCa(clock: ManualClock, ttlSeconds = 24 * HOUR, keyType: 'ec-p256' | 'rsa-2048' = 'ec-p256') {
  const privateKey =
    keyType === 'ec-p256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
      : generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const certificate = selfSignCaCertificate({
    trustDomain: td,
    privateKey,
    subject: DEFAULT_CA_SUBJECT,
    now: clock.now(),
    ttlSeconds,
  });
  return { ca: new X509Ca({ trustDomain: td, certificate, privateKey, clock }), certificate, privateKey };
}

const workloadKey = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const web = SpiffeId.parse('spiffe://example.org/ns/prod/web');

describe('X509Ca.signX509Svid', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    dir = await tempDir('x509ca');
  });
  after(() => dir.remove());

  it('issues an SVID from a CSR that the SDK parses and verifies against the CA (X-1…X-6)', async () => {
    const clock = new ManualClock(START);
    const { ca, certificate } = makeCa(clock);
    const key = workloadKey();
    const csr = await parseCsr(createCsr(key));
    const signed = ca.signX509Svid({ publicKey: csr.subjectPublicKeyInfo, spiffeId: web, ttlSeconds: HOUR });
    assert.equal(signed.certificates.length, 1, 'a self-signed CA sends no intermediates');
    const certs = signed.certificates.map((d) => new X509Certificate(d));
    const svid = X509Svid.fromCertificates(certs, key);
    assert.equal(svid.id.toString(), web.toString());
    const bundle = X509Bundle.fromAuthorities(td, [certificate]);
    const { verifiedChain } = verifyX509Svid(certs, bundle, { now: clock.now() });
    assert.equal(verifiedChain.length, 2);
  });

  it('shapes the leaf like SPIRE: subject, key usage, constraints, EKU, SAN, key IDs, serial, validity (X-3…X-10)', () => {
    const clock = new ManualClock(START);
    const { ca, certificate } = makeCa(clock);
    const signed = ca.signX509Svid({ publicKey: workloadKey(), spiffeId: web, ttlSeconds: HOUR });
    const leaf = new X509Certificate(signed.certificates[0] as Buffer);
    const f = x509Fields(leaf);
    assert.equal(leaf.subject, 'C=US\nO=Steeple');
    assert.deepEqual(
      f.keyUsage,
      { critical: true, flags: 1 | 4 | 16 },
      'digitalSignature|keyEncipherment|keyAgreement',
    );
    assert.deepEqual(f.basicConstraints, { critical: true, ca: false, pathLength: undefined });
    assert.deepEqual(f.extKeyUsage?.purposes, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    assert.deepEqual(f.subjectAltName?.uris, [web.toString()]);
    assert.deepEqual(f.subjectAltName?.dnsNames, []);
    assert.ok(f.subjectKeyIdentifier && f.subjectKeyIdentifier.length === 20);
    assert.deepEqual(f.authorityKeyIdentifier, x509Fields(certificate).subjectKeyIdentifier);
    assert.equal(f.serialNumber.length, 16);
    assert.equal((f.serialNumber[0] as number) & 0x80, 0, 'positive serial');
    assert.equal(signed.serialNumber, f.serialNumber.toString('hex'));
    assert.deepEqual(f.notBefore, new Date(START.getTime() - 10_000));
    assert.deepEqual(f.notAfter, new Date(START.getTime() + HOUR * 1000));
    assert.deepEqual(signed.expiresAt, f.notAfter);
    assert.deepEqual(signed.issuedAt, START);
  });

  it('gives each SVID a different random serial', () => {
    const { ca } = makeCa(new ManualClock(START));
    const key = workloadKey();
    const serials = new Set(
      Array.from({ length: 50 }, () => ca.signX509Svid({ publicKey: key, spiffeId: web, ttlSeconds: 60 }).serialNumber),
    );
    assert.equal(serials.size, 50);
  });

  it('puts DNS names in the SAN and the first one in the subject CN, as SPIRE does', () => {
    const { ca } = makeCa(new ManualClock(START));
    const signed = ca.signX509Svid({
      publicKey: workloadKey(),
      spiffeId: web,
      ttlSeconds: HOUR,
      dnsNames: ['web.example.org', '*.web.example.org'],
    });
    const leaf = new X509Certificate(signed.certificates[0] as Buffer);
    assert.equal(leaf.subject, 'C=US\nO=Steeple\nCN=web.example.org');
    assert.deepEqual(x509Fields(leaf).subjectAltName?.dnsNames, ['web.example.org', '*.web.example.org']);
    assert.deepEqual(x509Fields(leaf).subjectAltName?.uris, [web.toString()]);
  });

  it('caps the TTL at the CA notAfter so no SVID outlives its CA (X-10)', () => {
    const clock = new ManualClock(START);
    const { ca } = makeCa(clock, 2 * HOUR);
    clock.advance(90 * 60_000); // 30 minutes of CA life left
    const signed = ca.signX509Svid({ publicKey: workloadKey(), spiffeId: web, ttlSeconds: HOUR });
    assert.deepEqual(signed.expiresAt, ca.notAfter);
    const leaf = new X509Certificate(signed.certificates[0] as Buffer);
    assert.deepEqual(x509Fields(leaf).notAfter, ca.notAfter);
  });

  it('refuses IDs outside its trust domain and the trust domain ID itself (X-2)', () => {
    const { ca } = makeCa(new ManualClock(START));
    const key = workloadKey();
    assert.throws(
      () => ca.signX509Svid({ publicKey: key, spiffeId: SpiffeId.parse('spiffe://other.org/web'), ttlSeconds: 60 }),
      (e: unknown) =>
        e instanceof SvidRequestError &&
        e.code === 'ERR_SVID_REQUEST_INVALID' &&
        /spiffe:\/\/other\.org\/web is outside the trust domain "example\.org"/.test(e.message),
    );
    assert.throws(
      () => ca.signX509Svid({ publicKey: key, spiffeId: SpiffeId.parse('spiffe://example.org'), ttlSeconds: 60 }),
      /has no path/,
    );
  });

  it('signs an ID of exactly 2048 bytes (ID-5; SpiffeId itself refuses longer ones)', () => {
    const { ca } = makeCa(new ManualClock(START));
    const prefix = 'spiffe://example.org/';
    const id = SpiffeId.parse(prefix + 'a'.repeat(2048 - prefix.length));
    const signed = ca.signX509Svid({ publicKey: workloadKey(), spiffeId: id, ttlSeconds: 60 });
    const leaf = new X509Certificate(signed.certificates[0] as Buffer);
    assert.equal(x509Fields(leaf).subjectAltName?.uris[0]?.length, 2048);
  });

  it('refuses bad TTLs, DNS names and key types with SvidRequestError', () => {
    const { ca } = makeCa(new ManualClock(START));
    const key = workloadKey();
    for (const ttlSeconds of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => ca.signX509Svid({ publicKey: key, spiffeId: web, ttlSeconds }), SvidRequestError);
    }
    for (const dns of ['', 'bad name', 'a..b', '-x.org', 'ü.org']) {
      assert.throws(
        () => ca.signX509Svid({ publicKey: key, spiffeId: web, ttlSeconds: 60, dnsNames: [dns] }),
        /is not a valid host name/,
      );
    }
    const ed = generateKeyPairSync('ed25519').publicKey;
    assert.throws(
      () => ca.signX509Svid({ publicKey: ed, spiffeId: web, ttlSeconds: 60 }),
      /public key: key type ed25519/,
    );
    assert.throws(
      () => ca.signX509Svid({ publicKey: Buffer.from('junk'), spiffeId: web, ttlSeconds: 60 }),
      SvidRequestError,
    );
  });

  it('refuses to sign once the CA has expired (ERR_CA_NOT_READY)', () => {
    const clock = new ManualClock(START);
    const { ca } = makeCa(clock, HOUR);
    clock.advance(HOUR * 1000);
    assert.throws(
      () => ca.signX509Svid({ publicKey: workloadKey(), spiffeId: web, ttlSeconds: 60 }),
      (e: unknown) => e instanceof CaError && e.code === 'ERR_CA_NOT_READY',
    );
  });

  it('issues SVIDs that openssl verifies for TLS client and server use', async () => {
    const clock = new ManualClock(new Date());
    const { ca, certificate } = makeCa(clock);
    const signed = ca.signX509Svid({ publicKey: workloadKey(), spiffeId: web, ttlSeconds: HOUR, dnsNames: ['web'] });
    for (const purpose of ['sslclient', 'sslserver'] as const) {
      const r = await opensslVerify({
        dir: dir.path,
        roots: [certificate],
        leaf: signed.certificates[0] as Buffer,
        purpose,
      });
      assert.ok(r.ok, r.output);
    }
  });

  it('signs with RSA CA keys too', () => {
    const clock = new ManualClock(START);
    const { ca, certificate } = makeCa(clock, HOUR, 'rsa-2048');
    const signed = ca.signX509Svid({ publicKey: workloadKey(), spiffeId: web, ttlSeconds: 60 });
    verifyX509Svid(signed.certificates, X509Bundle.fromAuthorities(td, [certificate]), { now: clock.now() });
  });
});

describe('X509Ca.signServerSvid', () => {
  it('names the server spiffe://<td>/spire/server, like SPIRE', () => {
    const clock = new ManualClock(START);
    const { ca, certificate } = makeCa(clock);
    const signed = ca.signServerSvid(workloadKey());
    const { id } = verifyX509Svid(signed.certificates, X509Bundle.fromAuthorities(td, [certificate]), {
      now: clock.now(),
    });
    assert.equal(id.toString(), 'spiffe://example.org/spire/server');
    assert.deepEqual(signed.expiresAt, new Date(START.getTime() + 3600_000));
  });
});

describe('X509Ca.signX509Ca', () => {
  it('signs a downstream CA whose SVIDs chain to the root (X-8)', () => {
    const clock = new ManualClock(START);
    const { ca, certificate } = makeCa(clock);
    const downstreamKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const signed = ca.signX509Ca({ publicKey: downstreamKey, ttlSeconds: 48 * HOUR });
    assert.deepEqual(signed.expiresAt, ca.notAfter, 'capped at the parent');
    const [downCert] = signed.certificates.map((d) => new X509Certificate(d));
    const f = x509Fields(downCert as X509Certificate);
    assert.deepEqual(f.basicConstraints?.ca, true);
    assert.equal(f.keyUsage?.flags, 32 | 64);
    assert.deepEqual(f.subjectAltName?.uris, ['spiffe://example.org']);
    const downstream = new X509Ca({
      trustDomain: td,
      certificate: downCert as X509Certificate,
      privateKey: downstreamKey,
      clock,
    });
    const leaf = downstream.signX509Svid({ publicKey: workloadKey(), spiffeId: web, ttlSeconds: 60 });
    assert.equal(leaf.certificates.length, 2, 'leaf + downstream CA');
    verifyX509Svid(leaf.certificates, X509Bundle.fromAuthorities(td, [certificate]), { now: clock.now() });
  });

  it('is a TypeError to build a CA from a key that does not match its certificate', () => {
    const clock = new ManualClock(START);
    const { certificate } = makeCa(clock);
    assert.throws(() => new X509Ca({ trustDomain: td, certificate, privateKey: workloadKey(), clock }), TypeError);
  });
});
