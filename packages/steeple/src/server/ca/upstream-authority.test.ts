import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject, type X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TrustDomain, verifyX509Svid, X509Bundle } from '@steeple/spiffe';
import { x509Fields } from '@steeple/spiffe/issuance';
import { createTestCa, ManualClock } from '@steeple/spiffe/testing';
import { DEFAULT_CA_SUBJECT } from './ca-certificate.js';
import { CaError } from './ca-errors.js';
import { tempDir, toPem } from './test-support.js';
import { createDiskUpstreamAuthority, type DiskUpstreamAuthorityConfig } from './upstream-authority.js';
import { X509Ca } from './x509-ca.js';

const td = TrustDomain.parse('example.org');
const DAY = 24 * 3600;

describe('disk upstream authority', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let n = 0;
  before(async () => {
    dir = await tempDir('upstream');
  });
  after(() => dir.remove());

  async function files(certs: X509Certificate[], key: KeyObject | string, bundle?: X509Certificate[]) {
    const base = join(dir.path, `u${n++}`);
    await writeFile(`${base}.crt`, toPem(certs));
    await writeFile(`${base}.key`, typeof key === 'string' ? key : key.export({ format: 'pem', type: 'pkcs8' }));
    if (bundle) await writeFile(`${base}.bundle`, toPem(bundle));
    const config: DiskUpstreamAuthorityConfig = {
      cert_file_path: `${base}.crt`,
      key_file_path: `${base}.key`,
      ...(bundle ? { bundle_file_path: `${base}.bundle` } : {}),
    };
    return config;
  }

  const request = (ttlSeconds = DAY) => ({
    publicKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey,
    subject: DEFAULT_CA_SUBJECT,
    trustDomain: td,
    ttlSeconds,
  });

  async function refused(config: DiskUpstreamAuthorityConfig, message: RegExp, clock = new ManualClock(new Date())) {
    await assert.rejects(
      createDiskUpstreamAuthority(config, { clock }).mintX509Ca(request()),
      (e: unknown) => e instanceof CaError && e.code === 'ERR_UPSTREAM_AUTHORITY_INVALID' && message.test(e.message),
    );
  }

  it('signs a CA certificate (X-8) under a self-signed root; the root is the bundle', async () => {
    const clock = new ManualClock(new Date('2030-01-01T00:00:00Z'));
    const root = createTestCa({ trustDomain: td, clock, ttlSeconds: 30 * DAY });
    const minted = await createDiskUpstreamAuthority(await files([root.certificate], root.privateKey), {
      clock,
    }).mintX509Ca(request());
    assert.equal(minted.chain.length, 1);
    assert.deepEqual(
      minted.upstreamRoots.map((c) => c.raw),
      [root.certificate.raw],
    );
    const ca = minted.chain[0] as X509Certificate;
    const f = x509Fields(ca);
    assert.ok(ca.verify(root.certificate.publicKey));
    assert.equal(f.basicConstraints?.ca, true);
    assert.equal(f.keyUsage?.flags, 32 | 64);
    assert.deepEqual(f.subjectAltName?.uris, ['spiffe://example.org']);
    assert.deepEqual(f.notAfter, new Date(clock.now().getTime() + DAY * 1000));
  });

  it('caps the CA at the upstream chain notAfter and returns the upstream intermediates', async () => {
    const clock = new ManualClock(new Date('2030-01-01T00:00:00Z'));
    const root = createTestCa({ trustDomain: td, clock, ttlSeconds: 30 * DAY });
    const mid = root.createIntermediate({ ttlSeconds: 3600 });
    const leafCa = mid.createIntermediate();
    const config = await files([leafCa.certificate, mid.certificate], leafCa.privateKey, [root.certificate]);
    const minted = await createDiskUpstreamAuthority(config, { clock }).mintX509Ca(request());
    assert.deepEqual(
      minted.chain.slice(1).map((c) => c.raw),
      [leafCa.certificate.raw, mid.certificate.raw],
    );
    assert.deepEqual(x509Fields(minted.chain[0] as X509Certificate).notAfter, x509Fields(mid.certificate).notAfter);
    // The minted CA signs SVIDs that chain to the upstream root.
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const again = await createDiskUpstreamAuthority(config, { clock }).mintX509Ca({
      ...request(),
      publicKey: key.publicKey,
    });
    const ca = new X509Ca({
      trustDomain: td,
      certificate: again.chain[0] as X509Certificate,
      privateKey: key.privateKey,
      upstreamChain: again.chain.slice(1),
      clock,
    });
    const svid = ca.signX509Svid({
      publicKey: key.publicKey,
      spiffeId: (await import('@steeple/spiffe')).SpiffeId.parse('spiffe://example.org/w'),
      ttlSeconds: 60,
    });
    verifyX509Svid(svid.certificates, X509Bundle.fromAuthorities(td, again.upstreamRoots), { now: clock.now() });
  });

  it('refuses a key that does not match the certificate', async () => {
    const root = createTestCa({ trustDomain: td });
    await refused(
      await files([root.certificate], generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey),
      /does not match/,
    );
  });

  it('refuses an intermediate without bundle_file_path', async () => {
    const root = createTestCa({ trustDomain: td });
    const mid = root.createIntermediate();
    await refused(await files([mid.certificate], mid.privateKey), /not a self-signed root; set bundle_file_path/);
  });

  it('refuses a chain that does not lead to the bundle', async () => {
    const root = createTestCa({ trustDomain: td });
    const mid = root.createIntermediate();
    const stranger = createTestCa({ trustDomain: td });
    await refused(await files([mid.certificate], mid.privateKey, [stranger.certificate]), /does not lead to a root/);
  });

  it('refuses a certificate that is not a CA', async () => {
    const root = createTestCa({ trustDomain: td, broken: { notCa: true } });
    await refused(await files([root.certificate], root.privateKey), /not a CA allowed to sign/);
  });

  it('refuses an expired upstream certificate', async () => {
    const clock = new ManualClock(new Date('2030-01-01T00:00:00Z'));
    const root = createTestCa({ trustDomain: td, clock, ttlSeconds: 3600 });
    const config = await files([root.certificate], root.privateKey);
    clock.advance(2 * 3600_000);
    await refused(config, /is not valid now/, clock);
  });

  it('refuses unreadable and unparsable files, naming them', async () => {
    const root = createTestCa({ trustDomain: td });
    const config = await files([root.certificate], root.privateKey);
    await refused(
      { ...config, cert_file_path: join(dir.path, 'missing.crt') },
      /cannot read certificate file .*missing\.crt/,
    );
    await refused(await files([root.certificate], 'not a key'), /does not hold an unencrypted PEM private key/);
    await writeFile(join(dir.path, 'empty.crt'), 'nothing here');
    await refused({ ...config, cert_file_path: join(dir.path, 'empty.crt') }, /holds no PEM CERTIFICATE block/);
  });

  it('requires both file paths', () => {
    assert.throws(
      () => createDiskUpstreamAuthority({ cert_file_path: '', key_file_path: 'k' }),
      (e: unknown) => e instanceof CaError && /cert_file_path and key_file_path are required/.test(e.message),
    );
  });
});
