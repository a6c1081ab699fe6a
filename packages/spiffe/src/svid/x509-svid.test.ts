import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { X509SvidError } from '../errors.js';
import { ManualClock } from '../testing/manual-clock.js';
import { createTestCa } from '../testing/test-ca.js';
import { X509Svid, type X509SvidSource } from './x509-svid.js';

const clock = new ManualClock(new Date('2030-01-01T00:00:00Z'));
const ca = createTestCa({ trustDomain: 'example.org', clock });
const inter = ca.createIntermediate();
const ID = 'spiffe://example.org/ns/prod/web';

function assertInvalid(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof X509SvidError, `expected X509SvidError, got ${err}`);
    assert.equal(err.code, 'ERR_X509SVID_INVALID');
    assert.match(err.message, message);
    return true;
  });
}

describe('X509Svid', () => {
  const svid = inter.issueX509Svid(ID, { ttlSeconds: 600, hint: 'internal' });

  it('exposes the ID, the chain (leaf first, no root), the key, the hint and the expiry', () => {
    assert.equal(svid.id.toString(), ID);
    assert.equal(svid.certificates.length, 2);
    assert.equal(svid.leaf, svid.certificates[0]);
    assert.equal(svid.certificates[1], inter.certificate);
    assert.equal(svid.privateKey.type, 'private');
    assert.equal(svid.hint, 'internal');
    assert.equal(svid.expiresAt.toISOString(), '2030-01-01T00:10:00.000Z');
    assert.ok(Object.isFrozen(svid.certificates));
  });

  it('is its own X509SvidSource', () => {
    const source: X509SvidSource = svid;
    assert.equal(source.getX509Svid(), svid);
  });

  it('round-trips through PEM (marshal/parse) and the Workload API encoding (marshalRaw/parseRaw)', () => {
    const pem = svid.marshal();
    assert.match(
      pem.certificates,
      /^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----/,
    );
    assert.match(pem.privateKey, /^-----BEGIN PRIVATE KEY-----\n/);
    const fromPem = X509Svid.parse(pem.certificates, pem.privateKey, { hint: 'h' });
    assert.equal(fromPem.id.toString(), ID);
    assert.equal(fromPem.hint, 'h');
    assert.deepEqual(
      fromPem.certificates.map((c) => c.fingerprint256),
      svid.certificates.map((c) => c.fingerprint256),
    );
    const raw = svid.marshalRaw();
    assert.ok(raw.certificates instanceof Uint8Array && raw.privateKey instanceof Uint8Array);
    const fromRaw = X509Svid.parseRaw(raw.certificates, raw.privateKey);
    assert.equal(fromRaw.id.toString(), ID);
    assert.equal(fromRaw.hint, undefined);
    assert.deepEqual(fromRaw.marshalRaw(), raw);
    // Bytes work as well as strings for PEM.
    assert.equal(X509Svid.parse(Buffer.from(pem.certificates), Buffer.from(pem.privateKey)).id.toString(), ID);
  });

  it('parses every key type the test CA issues', () => {
    for (const keyType of ['ec-p256', 'ec-p384', 'rsa-2048'] as const) {
      const s = ca.issueX509Svid(ID, { keyType });
      const pem = s.marshal();
      assert.equal(
        X509Svid.parse(pem.certificates, pem.privateKey).privateKey.asymmetricKeyType,
        keyType.startsWith('ec') ? 'ec' : 'rsa',
      );
    }
  });

  it('rejects an empty chain', () => {
    const key = svid.marshal().privateKey;
    assertInvalid(() => X509Svid.parse('', key), /certificate chain is empty/);
    assertInvalid(
      () => X509Svid.parseRaw(new Uint8Array(0), svid.marshalRaw().privateKey),
      /certificate chain is empty/,
    );
  });

  it('rejects PEM blocks other than CERTIFICATE in the chain', () => {
    const pem = svid.marshal();
    assertInvalid(
      () => X509Svid.parse(pem.certificates + pem.privateKey, pem.privateKey),
      /PEM block "PRIVATE KEY" found where only CERTIFICATE blocks are allowed/,
    );
  });

  it('requires an unencrypted PKCS#8 key and says how to convert SEC1/PKCS#1', () => {
    const { certificates } = svid.marshal();
    const sec1 = svid.privateKey.export({ type: 'sec1', format: 'pem' }) as string;
    assertInvalid(
      () => X509Svid.parse(certificates, sec1),
      /PEM block "EC PRIVATE KEY" found, expected an unencrypted PKCS#8 "PRIVATE KEY".*openssl pkcs8 -topk8 -nocrypt/,
    );
    const rsa = ca.issueX509Svid(ID, { keyType: 'rsa-2048' });
    const pkcs1 = rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string;
    assertInvalid(() => X509Svid.parse(rsa.marshal().certificates, pkcs1), /"RSA PRIVATE KEY".*openssl pkcs8/);
    const encrypted = svid.privateKey.export({
      type: 'pkcs8',
      format: 'pem',
      cipher: 'aes-256-cbc',
      passphrase: 'x',
    }) as string;
    assertInvalid(() => X509Svid.parse(certificates, encrypted), /"ENCRYPTED PRIVATE KEY".*must be unencrypted/);
    assertInvalid(() => X509Svid.parse(certificates, 'no pem here'), /private key: no PEM block found/);
    const key = svid.marshal().privateKey;
    assertInvalid(() => X509Svid.parse(certificates, key + key), /expected exactly one PEM block, found 2/);
    assertInvalid(
      () => X509Svid.parseRaw(svid.marshalRaw().certificates, new Uint8Array([1, 2, 3])),
      /not a valid unencrypted PKCS#8/,
    );
    const sec1Der = svid.privateKey.export({ type: 'sec1', format: 'der' });
    assertInvalid(() => X509Svid.parseRaw(svid.marshalRaw().certificates, sec1Der), /not a valid unencrypted PKCS#8/);
  });

  it('never puts key material in its error messages', () => {
    const key = svid.marshal().privateKey;
    const body = key.split('\n')[1] as string;
    try {
      X509Svid.parse(svid.marshal().certificates, key + key);
      assert.fail('expected an error');
    } catch (err) {
      assert.ok(!(err as Error).message.includes(body.slice(0, 20)));
    }
  });

  it('rejects garbage DER in the chain, naming the position', () => {
    const raw = svid.marshalRaw();
    assertInvalid(
      () => X509Svid.parseRaw(new Uint8Array([1, 2, 3]), raw.privateKey),
      /X\.509-SVID certificates: expected a DER SEQUENCE/,
    );
    const broken = Buffer.concat([Buffer.from(svid.leaf.raw), Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00])]);
    assertInvalid(() => X509Svid.parseRaw(broken, raw.privateKey), /chain\[1\]: not a valid DER certificate/);
  });

  it('fromCertificates validates like parse', () => {
    assert.equal(X509Svid.fromCertificates(svid.certificates, svid.privateKey).id.toString(), ID);
    assertInvalid(() => X509Svid.fromCertificates([], svid.privateKey), /chain is empty/);
    assert.throws(() => X509Svid.fromCertificates([ca.issueX509Svid(ID).leaf], svid.privateKey), {
      code: 'ERR_X509SVID_KEY_MISMATCH',
    });
  });

  it('does not check validity dates or signatures (that is verifyX509Svid’s job)', () => {
    const expired = ca.issueX509SvidRaw(ID, { broken: { expired: true } });
    assert.ok(X509Svid.fromCertificates(expired.certificates, expired.privateKey));
    const forged = ca.issueX509SvidRaw(ID, { broken: { wrongSigner: true } });
    assert.ok(X509Svid.fromCertificates(forged.certificates, forged.privateKey));
  });

  it('keeps the certificate objects it was given', () => {
    const { certificates, privateKey } = ca.issueX509SvidRaw(ID);
    const s = X509Svid.fromCertificates(certificates, privateKey);
    assert.equal(s.leaf, certificates[0]);
    assert.ok(s.leaf instanceof X509Certificate);
  });
});
