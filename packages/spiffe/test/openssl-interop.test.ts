/**
 * Interop with OpenSSL in both directions:
 * - SVIDs from our test CA (built by our own certificate builder) pass
 *   `openssl verify` and show the SPIFFE extensions in `openssl x509 -text`;
 * - certificates made with the `openssl` command line, one rule broken each, are
 *   rejected by verifyX509Svid with the right code, and a well-formed one is accepted.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { X509BundleSource } from '../src/bundle/source.js';
import { X509Bundle } from '../src/bundle/x509-bundle.js';
import { X509SvidError } from '../src/errors.js';
import { keyIdentifierForSpki, x509Fields } from '../src/internal/x509-fields.js';
import type { TrustDomain } from '../src/spiffeid/trust-domain.js';
import { X509Svid } from '../src/svid/x509-svid.js';
import { verifyX509Svid } from '../src/svid/x509-svid-verify.js';
import { createTestCa, type TestKeyType } from '../src/testing/test-ca.js';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
const skip = hasOpenssl ? false : 'the openssl command is not installed';

let dir = '';
const file = (name: string) => join(dir, name);
const openssl = (...args: string[]) =>
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }).toString('utf8');
const pem = (certs: readonly X509Certificate[]) => certs.map((c) => c.toString()).join('');

before(() => {
  if (hasOpenssl) dir = mkdtempSync(join(tmpdir(), 'steeple-openssl-'));
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('test-CA SVIDs as OpenSSL sees them', { skip }, () => {
  for (const keyType of ['ec-p256', 'ec-p384', 'rsa-2048'] as TestKeyType[]) {
    it(`X-1…X-10: a ${keyType} SVID passes openssl verify as client and server`, () => {
      const ca = createTestCa({ trustDomain: 'example.org', keyType });
      const svid = ca.issueX509Svid('spiffe://example.org/web', { keyType });
      writeFileSync(file('root.pem'), ca.certificate.toString());
      writeFileSync(file('leaf.pem'), svid.leaf.toString());
      for (const purpose of ['sslclient', 'sslserver']) {
        assert.match(openssl('verify', '-purpose', purpose, '-CAfile', 'root.pem', 'leaf.pem'), /leaf\.pem: OK/);
      }
    });
  }

  it('X-11: SVIDs under one and two intermediates pass openssl verify -untrusted', () => {
    const root = createTestCa({ trustDomain: 'example.org' });
    const i1 = root.createIntermediate();
    const i2 = i1.createIntermediate();
    writeFileSync(file('root.pem'), root.certificate.toString());
    for (const ca of [i1, i2]) {
      const svid = ca.issueX509Svid('spiffe://example.org/deep');
      writeFileSync(file('leaf.pem'), svid.leaf.toString());
      writeFileSync(file('inter.pem'), pem(svid.certificates.slice(1)));
      assert.match(openssl('verify', '-CAfile', 'root.pem', '-untrusted', 'inter.pem', 'leaf.pem'), /leaf\.pem: OK/);
    }
  });

  it('a forged SVID (wrong signer) fails openssl verify just as it fails ours', () => {
    const ca = createTestCa({ trustDomain: 'example.org' });
    const forged = ca.issueX509SvidRaw('spiffe://example.org/web', { broken: { wrongSigner: true } });
    writeFileSync(file('root.pem'), ca.certificate.toString());
    writeFileSync(file('leaf.pem'), forged.certificates[0]!.toString());
    const r = spawnSync('openssl', ['verify', '-CAfile', 'root.pem', 'leaf.pem'], { cwd: dir });
    assert.notEqual(r.status, 0);
    assert.throws(() => verifyX509Svid(forged.certificates, ca.x509Bundle()), { code: 'ERR_X509SVID_UNTRUSTED' });
  });

  it('openssl x509 -text shows the leaf extensions X-1…X-7 and X-10 require', () => {
    const ca = createTestCa({ trustDomain: 'example.org' });
    const svid = ca.issueX509Svid('spiffe://example.org/web', { dnsNames: ['web.example.org'] });
    writeFileSync(file('leaf.pem'), svid.leaf.toString());
    const text = openssl('x509', '-noout', '-text', '-in', 'leaf.pem');
    assert.match(text, /Subject: C = US, O = Steeple Test, CN = web\.example\.org/);
    assert.match(text, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
    assert.match(text, /X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment, Key Agreement\n/);
    assert.match(
      text,
      /X509v3 Extended Key Usage: \s*\n\s+TLS Web Server Authentication, TLS Web Client Authentication\n/,
    );
    assert.match(
      text,
      /X509v3 Subject Alternative Name: \s*\n\s+DNS:web\.example\.org, URI:spiffe:\/\/example\.org\/web\n/,
    );
    assert.match(text, /X509v3 Subject Key Identifier:/);
    assert.match(text, /X509v3 Authority Key Identifier:/);
    assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
    const serial = /Serial Number:\s*\n\s+([0-9a-f:]+)\n/.exec(text)?.[1] ?? '';
    assert.equal(serial.split(':').length, 16, `16-byte serial, got ${serial}`);
  });

  it('openssl x509 -text shows the CA extensions X-8 requires', () => {
    const ca = createTestCa({ trustDomain: 'example.org' });
    writeFileSync(file('root.pem'), ca.createIntermediate().certificate.toString());
    const text = openssl('x509', '-noout', '-text', '-in', 'root.pem');
    assert.match(text, /X509v3 Basic Constraints: critical\s+CA:TRUE/);
    assert.match(text, /X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign\n/);
    assert.match(text, /URI:spiffe:\/\/example\.org\n/);
  });
});

describe('OpenSSL-made certificates through verifyX509Svid', { skip }, () => {
  const GOOD = [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment,keyAgreement',
    'extendedKeyUsage=serverAuth,clientAuth',
    'subjectAltName=URI:spiffe://example.org/web',
    'subjectKeyIdentifier=hash',
    'authorityKeyIdentifier=keyid',
  ];
  /** GOOD with the lines for the given keys replaced. */
  const mutate = (changes: Record<string, string>) =>
    GOOD.map((line) => {
      const key = line.slice(0, line.indexOf('='));
      return key in changes ? `${key}=${changes[key]}` : line;
    });

  let bundles: X509BundleSource;
  let bundleA: X509Bundle;

  function makeCa(name: string, td: string, extra: string[] = []): void {
    openssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.pem`,
      '-subj',
      `/O=OpenSSL Test/CN=${name}`,
      '-days',
      '30',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-addext',
      `subjectAltName=URI:spiffe://${td}`,
      ...extra.flatMap((e) => ['-addext', e]),
    );
  }

  /** Signs leaf.csr with CA `ca` using the given extension lines; returns the certificate. */
  function sign(ca: string, extLines: string[], out = 'leaf.pem', digest = '-sha256'): X509Certificate {
    writeFileSync(file('ext.cnf'), `${extLines.join('\n')}\n`);
    openssl(
      'x509',
      '-req',
      digest,
      '-in',
      'leaf.csr',
      '-CA',
      `${ca}.pem`,
      '-CAkey',
      `${ca}.key`,
      '-days',
      '1',
      '-extfile',
      'ext.cnf',
      '-out',
      out,
    );
    return new X509Certificate(readFileSync(file(out)));
  }

  before(() => {
    if (!hasOpenssl) return;
    makeCa('ca-a', 'example.org');
    makeCa('ca-b', 'other.example');
    openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'leaf.key');
    openssl('req', '-new', '-key', 'leaf.key', '-subj', '/O=OpenSSL Leaf', '-out', 'leaf.csr');
    bundleA = X509Bundle.parse('example.org', readFileSync(file('ca-a.pem')));
    const bundleB = X509Bundle.parse('other.example', readFileSync(file('ca-b.pem')));
    bundles = {
      getX509BundleForTrustDomain: (td: TrustDomain) =>
        td.name === 'example.org' ? bundleA : td.name === 'other.example' ? bundleB : undefined,
    };
  });

  function rejects(leaf: X509Certificate, code: X509SvidError['code'], message: RegExp, now?: Date): void {
    assert.throws(
      () => verifyX509Svid([leaf], bundles, now ? { now } : {}),
      (err: unknown) => err instanceof X509SvidError && err.code === code && message.test(err.message),
    );
  }

  it('accepts a well-formed OpenSSL-made SVID, and parses it with its openssl genpkey key', () => {
    const leaf = sign('ca-a', GOOD);
    const r = verifyX509Svid([leaf], bundles);
    assert.equal(r.id.toString(), 'spiffe://example.org/web');
    assert.equal(r.verifiedChain[1]?.raw.equals(bundleA.authorities[0]!.raw), true);
    const svid = X509Svid.parse(readFileSync(file('leaf.pem')), readFileSync(file('leaf.key')));
    assert.equal(svid.id.toString(), 'spiffe://example.org/web');
    // Our key identifier method matches OpenSSL's subjectKeyIdentifier=hash.
    const f = x509Fields(leaf);
    assert.deepEqual(keyIdentifierForSpki(f.subjectPublicKeyInfo), f.subjectKeyIdentifier);
  });

  it('accepts an OpenSSL-made chain through an intermediate with pathlen:0', () => {
    openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'inter.key');
    openssl('req', '-new', '-key', 'inter.key', '-subj', '/O=OpenSSL Test/CN=inter', '-out', 'inter.csr');
    writeFileSync(
      file('inter.cnf'),
      'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectAltName=URI:spiffe://example.org\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n',
    );
    openssl(
      'x509',
      '-req',
      '-in',
      'inter.csr',
      '-CA',
      'ca-a.pem',
      '-CAkey',
      'ca-a.key',
      '-days',
      '2',
      '-extfile',
      'inter.cnf',
      '-out',
      'inter.pem',
    );
    const inter = new X509Certificate(readFileSync(file('inter.pem')));
    const leaf = sign('inter', GOOD, 'leaf-i.pem');
    assert.equal(verifyX509Svid([leaf, inter], bundles).verifiedChain.length, 3);
    rejects(leaf, 'ERR_X509SVID_UNTRUSTED', /does not lead to an authority of trust domain "example\.org"/);
  });

  it('X-1/X-12: rejects two URI SANs', () => {
    const leaf = sign(
      'ca-a',
      mutate({ subjectAltName: 'URI:spiffe://example.org/web,URI:spiffe://example.org/other' }),
    );
    rejects(leaf, 'ERR_X509SVID_INVALID', /leaf: must have exactly one URI SAN, found 2/);
  });

  it('X-3/X-14: rejects CA:TRUE on the leaf', () => {
    rejects(
      sign('ca-a', mutate({ basicConstraints: 'critical,CA:TRUE' })),
      'ERR_X509SVID_INVALID',
      /leaf: must not be a CA/,
    );
  });

  it('X-5/X-12: rejects keyCertSign on the leaf', () => {
    const leaf = sign('ca-a', mutate({ keyUsage: 'critical,digitalSignature,keyCertSign' }));
    rejects(leaf, 'ERR_X509SVID_INVALID', /leaf: keyUsage must not include keyCertSign/);
  });

  it('X-5: rejects a leaf without digitalSignature', () => {
    const leaf = sign('ca-a', mutate({ keyUsage: 'critical,keyEncipherment' }));
    rejects(leaf, 'ERR_X509SVID_INVALID', /leaf: keyUsage must include digitalSignature/);
  });

  it('X-2: rejects a root-path SPIFFE ID', () => {
    const leaf = sign('ca-a', mutate({ subjectAltName: 'URI:spiffe://example.org' }));
    rejects(leaf, 'ERR_X509SVID_INVALID', /leaf: SPIFFE ID "spiffe:\/\/example\.org" must have a non-root path/);
  });

  it('X-13: rejects an example.org ID signed by other.example’s CA, though both bundles are known', () => {
    rejects(
      sign('ca-b', GOOD),
      'ERR_X509SVID_UNTRUSTED',
      /does not lead to an authority of trust domain "example\.org"/,
    );
  });

  it('X-11: rejects a leaf signed with ECDSA-SHA1', () => {
    const leaf = sign('ca-a', GOOD, 'leaf-sha1.pem', '-sha1');
    rejects(leaf, 'ERR_X509SVID_INVALID', /leaf: signature algorithm 1\.2\.840\.10045\.4\.1 is not accepted/);
  });

  it('X-11: rejects an expired leaf, naming its notAfter', () => {
    const leaf = sign('ca-a', GOOD);
    const notAfter = x509Fields(leaf).notAfter;
    rejects(leaf, 'ERR_X509SVID_EXPIRED', /leaf: expired at \d{4}-/, new Date(notAfter.getTime() + 1000));
  });
});
