import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject, type X509Certificate } from 'node:crypto';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { JwtSvid, type SpiffeBundle, SpiffeId, TrustDomain, verifyX509Svid } from '@steeple/spiffe';
import { keyIdentifierForSpki, x509Fields } from '@steeple/spiffe/issuance';
import { createTestCa, ManualClock } from '@steeple/spiffe/testing';
import { MemoryBundlePublisher } from './bundle-publisher.js';
import { CaError } from './ca-errors.js';
import { fileJournalStorage, journalPath, MemoryJournalStorage } from './ca-journal.js';
import { CaManager, type CaManagerOptions } from './ca-manager.js';
import { createCsr } from './create-csr.js';
import { parseCsr } from './csr.js';
import { DiskKeyManager, MemoryKeyManager } from './key-manager.js';
import { opensslVerify, tempDir, toPem } from './test-support.js';
import { createDiskUpstreamAuthority, type UpstreamAuthority } from './upstream-authority.js';

const td = TrustDomain.parse('example.org');
const START = new Date('2030-01-01T00:00:00Z');
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const web = SpiffeId.parse('spiffe://example.org/web');
const workloadKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;

function manager(clock: ManualClock, options: Partial<CaManagerOptions> = {}) {
  const publisher = new MemoryBundlePublisher({ trustDomain: td, clock });
  const ca = new CaManager({
    trustDomain: td,
    keyManager: new MemoryKeyManager(),
    journal: new MemoryJournalStorage(),
    publisher,
    clock,
    ...options,
  });
  return { ca, publisher };
}

/** Moves the clock and waits for whatever rotation step that started. */
async function advance(clock: ManualClock, ca: CaManager, ms: number): Promise<void> {
  clock.advance(ms);
  await ca.whenIdle();
}

const authorityIdOf = (cert: X509Certificate) => {
  const f = x509Fields(cert);
  return (f.subjectKeyIdentifier ?? keyIdentifierForSpki(f.subjectPublicKeyInfo)).toString('hex');
};

function sign(ca: CaManager, ttlSeconds = 3600) {
  return ca.x509Ca().signX509Svid({ publicKey: workloadKey, spiffeId: web, ttlSeconds });
}

describe('CaManager: start', () => {
  it('creates and publishes a current X.509 CA and JWT key, with nothing prepared yet', async () => {
    const clock = new ManualClock(START);
    const { ca } = manager(clock);
    await ca.start();
    const status = ca.status();
    assert.equal(status.state, 'ready');
    assert.equal(status.ready, true);
    assert.ok(status.x509.current && status.jwt.current);
    assert.equal(status.x509.next, undefined);
    assert.equal(status.jwt.next, undefined);
    assert.deepEqual(status.x509.current.notAfter, new Date(START.getTime() + 24 * HOUR), 'ca_ttl defaults to 24 h');
    assert.deepEqual(status.x509.current.nextStepAt, new Date(START.getTime() + 12 * HOUR - 5_000), 'prepare at 1/2');
    const bundle = ca.bundle();
    assert.equal(bundle.x509Authorities.length, 1);
    assert.equal(authorityIdOf(bundle.x509Authorities[0] as X509Certificate), status.x509.current.id);
    assert.deepEqual([...bundle.jwtAuthorities.keys()], [status.jwt.current.id]);
    assert.equal(bundle.sequenceNumber, 1n);
    ca.stop();
  });

  it('refuses to sign before it is started (ERR_CA_NOT_READY)', () => {
    const { ca } = manager(new ManualClock(START));
    for (const call of [() => ca.x509Ca(), () => ca.jwtSigner(), () => ca.bundle()]) {
      assert.throws(call, (e: unknown) => e instanceof CaError && e.code === 'ERR_CA_NOT_READY');
    }
    assert.equal(ca.status().ready, false);
  });

  it('issues SVIDs from CSRs that the SDK and openssl verify against ca.bundle()', async () => {
    const clock = new ManualClock(new Date());
    const { ca } = manager(clock);
    await ca.start();
    const csr = await parseCsr(createCsr(workloadKey));
    const svid = ca.x509Ca().signX509Svid({ publicKey: csr.subjectPublicKeyInfo, spiffeId: web, ttlSeconds: 3600 });
    assert.equal(verifyX509Svid(svid.certificates, ca.bundle(), { now: clock.now() }).id.toString(), web.toString());
    const dir = await tempDir('ca-manager');
    try {
      const r = await opensslVerify({
        dir: dir.path,
        roots: ca.bundle().x509Authorities,
        leaf: svid.certificates[0] as Buffer,
      });
      assert.ok(r.ok, r.output);
    } finally {
      await dir.remove();
    }
    const server = ca.signServerSvid(workloadKey);
    assert.equal(
      verifyX509Svid(server.certificates, ca.bundle(), { now: clock.now() }).id.toString(),
      'spiffe://example.org/spire/server',
    );
    ca.stop();
  });

  it('uses ca_key_type for the CA and JWT keys, and jwt_issuer for iss', async () => {
    const clock = new ManualClock(START);
    const { ca } = manager(clock, { caKeyType: 'ec-p384', jwtIssuer: 'https://issuer.example.org' });
    await ca.start();
    assert.equal(ca.x509Ca().certificate.publicKey.asymmetricKeyDetails?.namedCurve, 'secp384r1');
    assert.equal(ca.jwtSigner().alg, 'ES384');
    const { token } = ca.jwtSigner().mintJwtSvid({ spiffeId: web, audience: ['db'], ttlSeconds: 300 });
    const svid = await JwtSvid.parseAndValidate(token, ca.bundle(), ['db'], { now: clock.now() });
    assert.equal(svid.claims['iss'], 'https://issuer.example.org');
    ca.stop();
  });

  it('uses the configured CA subject plus a serial number, as SPIRE does', async () => {
    const clock = new ManualClock(START);
    const { ca } = manager(clock, { caSubject: [{ type: 'O', value: 'Acme' }] });
    await ca.start();
    assert.match(ca.x509Ca().certificate.subject, /^O=Acme\nserialNumber=\d+$/);
    ca.stop();
  });
});

describe('CaManager: rotation over three CA lifetimes, minute by minute', () => {
  it('publishes the next authority at 1/2, signs with it from 5/6, prunes at expiry: no trust gap', async () => {
    const clock = new ManualClock(START);
    const ttl = 6 * HOUR;
    const { ca } = manager(clock, { caTtlSeconds: ttl / 1000 });
    await ca.start();
    const t0 = START.getTime();
    // A workload that refreshed its bundle this long ago must still verify what is signed now:
    // the next authority is published a third of a lifetime (120 min) before it signs.
    const LAG = 110;
    const bundles: SpiffeBundle[] = [];
    const svids: Buffer[][] = [];
    const firstSeen = new Map<string, number>();
    const firstSigned = new Map<string, number>();
    const lastSeen = new Map<string, number>();
    const kidFirstSeen = new Map<string, number>();
    const kidFirstSigned = new Map<string, number>();
    let changes = 0;
    ca.onBundleChange(() => changes++);

    const steps = (3 * ttl) / MINUTE;
    for (let m = 0; m <= steps; m++) {
      if (m > 0) await advance(clock, ca, MINUTE);
      const now = clock.now().getTime();
      const bundle = ca.bundle();
      bundles.push(bundle);

      // Never an expired authority, never more than current + next (or current + retired).
      assert.ok(bundle.x509Authorities.length <= 2, `minute ${m}: ${bundle.x509Authorities.length} X.509 authorities`);
      for (const cert of bundle.x509Authorities) {
        assert.ok(x509Fields(cert).notAfter.getTime() > now, `minute ${m}: an expired CA is still in the bundle`);
        const id = authorityIdOf(cert);
        if (!firstSeen.has(id)) firstSeen.set(id, now);
        lastSeen.set(id, now);
      }
      for (const kid of bundle.jwtAuthorities.keys()) if (!kidFirstSeen.has(kid)) kidFirstSeen.set(kid, now);

      const x509 = ca.x509Ca();
      if (!firstSigned.has(x509.authorityId)) firstSigned.set(x509.authorityId, now);
      const svid = x509.signX509Svid({ publicKey: workloadKey, spiffeId: web, ttlSeconds: 3600 });
      svids.push(svid.certificates);
      verifyX509Svid(svid.certificates, bundle, { now: clock.now() });
      if (m >= LAG) verifyX509Svid(svid.certificates, bundles[m - LAG] as SpiffeBundle, { now: clock.now() });
      // What was signed 59 minutes ago (1 h TTL) still verifies against today's bundle.
      if (m >= 59) verifyX509Svid(svids[m - 59] as Buffer[], bundle, { now: clock.now() });

      const signer = ca.jwtSigner();
      const isNewKid = !kidFirstSigned.has(signer.kid);
      if (isNewKid) kidFirstSigned.set(signer.kid, now);
      const { token } = signer.mintJwtSvid({ spiffeId: web, audience: ['db'], ttlSeconds: 300 });
      await JwtSvid.parseAndValidate(token, bundle, ['db'], { now: clock.now() });
      if (m >= LAG)
        await JwtSvid.parseAndValidate(token, bundles[m - LAG] as SpiffeBundle, ['db'], { now: clock.now() });
      if (isNewKid && m > 0) {
        // A token minted right after activation validates against the bundle published before it.
        await JwtSvid.parseAndValidate(token, bundles[m - 1] as SpiffeBundle, ['db'], { now: clock.now() });
      }

      if (m === 179) assert.equal(ca.status().x509.next, undefined, 'not prepared before half-life');
      if (m === 180) assert.ok(ca.status().x509.next && ca.status().jwt.next, 'prepared at half-life');
      if (m === 299) assert.equal(firstSigned.size, 1, 'the first authority still signs just before 5/6');
      if (m === 300) {
        assert.equal(firstSigned.size, 2, 'the next authority signs from 5/6');
        assert.equal(ca.status().x509.next, undefined);
        assert.equal(ca.status().x509.old.length, 1, 'the previous one is retired, still published');
      }
    }

    const authorities = [...firstSigned.keys()];
    assert.ok(authorities.length >= 6, `${authorities.length} X.509 authorities over three lifetimes`);
    const [first, second] = authorities;
    assert.equal(firstSeen.get(second as string), t0 + 180 * MINUTE, 'the second CA appears at 1/2 of the first');
    assert.equal(firstSigned.get(second as string), t0 + 300 * MINUTE, 'and signs from 5/6');
    assert.equal(lastSeen.get(first as string), t0 + ttl - MINUTE, 'the first CA is pruned when it expires');
    for (const id of authorities.slice(1)) {
      const published = firstSigned.get(id)! - firstSeen.get(id)!;
      assert.ok(published >= 119 * MINUTE, `CA ${id} was published only ${published / MINUTE} min before signing`);
    }
    for (const kid of [...kidFirstSigned.keys()].slice(1)) {
      const published = kidFirstSigned.get(kid)! - kidFirstSeen.get(kid)!;
      assert.ok(
        published >= 119 * MINUTE,
        `JWT key ${kid} was published only ${published / MINUTE} min before signing`,
      );
    }
    assert.ok(changes >= authorities.length - 1, `listeners heard ${changes} bundle changes`);
    ca.stop();
  });

  it('tells listeners about the bundle with the next authority, and stops when unsubscribed', async () => {
    const clock = new ManualClock(START);
    const { ca } = manager(clock, { caTtlSeconds: 6 * 3600 });
    await ca.start();
    const seen: SpiffeBundle[] = [];
    const unsubscribe = ca.onBundleChange((b) => seen.push(b));
    await advance(clock, ca, 3 * HOUR);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]?.x509Authorities.length, 2);
    assert.equal(seen[0]?.jwtAuthorities.size, 2);
    assert.equal(seen[0], ca.bundle());
    unsubscribe();
    await advance(clock, ca, 3 * HOUR + MINUTE);
    assert.equal(seen.length, 1);
    ca.stop();
  });

  it('keeps signing with the current authority while preparing fails, and retries', async () => {
    const clock = new ManualClock(START);
    const inner = createTestCa({ trustDomain: td, clock, ttlSeconds: 30 * 24 * 3600 });
    let failNext = false;
    const upstream: UpstreamAuthority = {
      name: 'flaky',
      async mintX509Ca(request) {
        if (failNext) throw new CaError('ERR_UPSTREAM_AUTHORITY_INVALID', 'upstream unavailable');
        const { CertificateIssuer } = await import('@steeple/spiffe/issuance');
        const { caCertificateSpec } = await import('./ca-certificate.js');
        const { X509Certificate } = await import('node:crypto');
        const now = clock.now().getTime();
        const der = new CertificateIssuer(inner.certificate, inner.privateKey).issue(
          caCertificateSpec({
            subject: request.subject,
            publicKey: request.publicKey,
            trustDomain: request.trustDomain,
            notBefore: new Date(now - 10_000),
            notAfter: new Date(now + request.ttlSeconds * 1000),
          }),
        );
        return { chain: [new X509Certificate(der)], upstreamRoots: [inner.certificate] };
      },
    };
    const { ca } = manager(clock, { caTtlSeconds: 6 * 3600, upstreamAuthority: upstream });
    await ca.start();
    const firstId = ca.x509Ca().authorityId;
    failNext = true;
    await advance(clock, ca, 3 * HOUR);
    assert.match(ca.status().lastError ?? '', /upstream unavailable/);
    assert.equal(ca.status().x509.next, undefined);
    assert.equal(ca.x509Ca().authorityId, firstId, 'the current CA keeps signing');
    failNext = false;
    await advance(clock, ca, 30_000);
    assert.equal(ca.status().lastError, undefined);
    assert.ok(ca.status().x509.next, 'prepared on retry');
    ca.stop();
  });
});

describe('CaManager: restart', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    dir = await tempDir('ca-restart');
  });
  after(() => dir.remove());

  function diskManager(clock: ManualClock, dataDir: string) {
    return new CaManager({
      trustDomain: td,
      keyManager: new DiskKeyManager(dataDir),
      journal: fileJournalStorage(journalPath(dataDir)),
      publisher: new MemoryBundlePublisher({ trustDomain: td, clock }),
      clock,
      caTtlSeconds: 6 * 3600,
    });
  }

  it('resumes the same CA, JWT key and schedule with the disk key manager (journal 0600, keys 0600)', async () => {
    const dataDir = join(dir.path, 'same');
    const clock = new ManualClock(START);
    const first = diskManager(clock, dataDir);
    await first.start();
    await advance(clock, first, 3 * HOUR); // the next authorities are prepared
    const before = first.status();
    const svid = sign(first);
    first.stop();

    assert.equal((await stat(journalPath(dataDir))).mode & 0o777, 0o600);
    for (const id of ['x509-ca-a', 'x509-ca-b', 'jwt-signer-a', 'jwt-signer-b']) {
      assert.equal((await stat(join(dataDir, 'keys', `${id}.pem`))).mode & 0o777, 0o600, id);
    }

    clock.advance(MINUTE);
    const second = diskManager(clock, dataDir);
    await second.start();
    const after = second.status();
    assert.equal(after.x509.current?.id, before.x509.current?.id, 'same current X.509 CA');
    assert.equal(after.x509.next?.id, before.x509.next?.id, 'same prepared X.509 CA');
    assert.equal(after.jwt.current?.id, before.jwt.current?.id, 'same current JWT key');
    assert.equal(after.jwt.next?.id, before.jwt.next?.id, 'same prepared JWT key');
    verifyX509Svid(svid.certificates, second.bundle(), { now: clock.now() });
    const { token } = second.jwtSigner().mintJwtSvid({ spiffeId: web, audience: ['a'], ttlSeconds: 60 });
    assert.equal(
      JSON.parse(Buffer.from(token.split('.')[0] as string, 'base64url').toString()).kid,
      before.jwt.current?.id,
    );

    await advance(clock, second, 2 * HOUR); // the resumed schedule activates at 5/6
    assert.equal(second.status().x509.current?.id, before.x509.next?.id);
    second.stop();
  });

  it('makes a new CA after a restart with the memory key manager, keeping the old one published until it expires', async () => {
    const clock = new ManualClock(START);
    const journal = new MemoryJournalStorage(); // stands in for the journal file that survives
    const make = () =>
      new CaManager({
        trustDomain: td,
        keyManager: new MemoryKeyManager(),
        journal,
        publisher: new MemoryBundlePublisher({ trustDomain: td, clock }),
        clock,
      });
    const first = make();
    await first.start();
    const oldId = first.status().x509.current?.id;
    const svid = sign(first);
    first.stop();

    clock.advance(HOUR);
    const second = make();
    await second.start();
    const status = second.status();
    assert.notEqual(status.x509.current?.id, oldId, 'a new CA');
    assert.deepEqual(
      status.x509.old.map((a) => a.id),
      [oldId],
    );
    assert.equal(second.bundle().x509Authorities.length, 2);
    verifyX509Svid(svid.certificates, second.bundle(), { now: clock.now() });

    // The old CA's expiry falls off the new CA's schedule: it is pruned on its own timer.
    const oldNotAfter = status.x509.old[0]?.notAfter.getTime() as number;
    await advance(clock, second, oldNotAfter - clock.now().getTime() - MINUTE);
    assert.ok(second.bundle().x509Authorities.some((c) => authorityIdOf(c) === oldId));
    await advance(clock, second, MINUTE);
    assert.ok(!second.bundle().x509Authorities.some((c) => authorityIdOf(c) === oldId), 'pruned at its notAfter');
    assert.ok(!second.status().x509.old.some((a) => a.id === oldId), 'and dropped from the journal');
    assert.equal(second.bundle().jwtAuthorities.size, 2, 'the first JWT key is pruned too (retired + current remain)');
    second.stop();
  });

  it('refuses a journal of another trust domain, and a corrupt one (ERR_CA_STATE_INVALID)', async () => {
    const clock = new ManualClock(START);
    const journal = new MemoryJournalStorage();
    const { ca } = manager(clock, { journal });
    await ca.start();
    ca.stop();
    const other = new CaManager({
      trustDomain: 'other.org',
      keyManager: new MemoryKeyManager(),
      journal,
      publisher: new MemoryBundlePublisher({ trustDomain: 'other.org', clock }),
      clock,
    });
    await assert.rejects(
      other.start(),
      (e: unknown) => e instanceof CaError && e.code === 'ERR_CA_STATE_INVALID' && /"example\.org"/.test(e.message),
    );
    assert.equal(other.status().state, 'failed');

    const dataDir = join(dir.path, 'corrupt');
    const corrupt = diskManager(clock, dataDir);
    await corrupt.start();
    corrupt.stop();
    await writeFile(journalPath(dataDir), '{"version":1,');
    await assert.rejects(
      diskManager(clock, dataDir).start(),
      (e: unknown) =>
        e instanceof CaError && e.code === 'ERR_CA_STATE_INVALID' && e.message.includes('ca-journal.json'),
    );
  });
});

describe('CaManager: upstream authority (disk)', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    dir = await tempDir('ca-upstream');
  });
  after(() => dir.remove());

  async function files(name: string, certs: X509Certificate[], key: KeyObject, bundle?: X509Certificate[]) {
    const base = join(dir.path, name);
    await writeFile(`${base}.crt`, toPem(certs));
    await writeFile(`${base}.key`, key.export({ format: 'pem', type: 'pkcs8' }));
    if (bundle) await writeFile(`${base}-bundle.crt`, toPem(bundle));
    return {
      cert_file_path: `${base}.crt`,
      key_file_path: `${base}.key`,
      ...(bundle ? { bundle_file_path: `${base}-bundle.crt` } : {}),
    };
  }

  it('makes the CA an intermediate of a root on disk: chain = leaf + our CA, bundle = the upstream root', async () => {
    const clock = new ManualClock(new Date());
    const root = createTestCa({ trustDomain: td, clock, ttlSeconds: 30 * 24 * 3600 });
    const config = await files('root', [root.certificate], root.privateKey);
    const { ca } = manager(clock, { upstreamAuthority: createDiskUpstreamAuthority(config, { clock }) });
    await ca.start();
    assert.deepEqual(
      ca.bundle().x509Authorities.map((c) => c.raw),
      [root.certificate.raw],
      'the bundle holds the upstream root, not our intermediate',
    );
    const svid = sign(ca);
    assert.equal(svid.certificates.length, 2);
    assert.deepEqual(svid.certificates[1], ca.x509Ca().certificate.raw);
    verifyX509Svid(svid.certificates, ca.bundle(), { now: clock.now() });
    const r = await opensslVerify({
      dir: dir.path,
      roots: ca.bundle().x509Authorities,
      untrusted: svid.certificates.slice(1),
      leaf: svid.certificates[0] as Buffer,
    });
    assert.ok(r.ok, r.output);
    assert.equal(ca.status().upstreamAuthority, 'disk');
    ca.stop();
  });

  it('carries the upstream intermediates in the chain and caps the CA at the upstream notAfter', async () => {
    const clock = new ManualClock(new Date());
    const root = createTestCa({ trustDomain: td, clock, ttlSeconds: 30 * 24 * 3600 });
    const intermediate = root.createIntermediate({ ttlSeconds: 12 * 3600 });
    const config = await files('intermediate', [intermediate.certificate], intermediate.privateKey, [root.certificate]);
    const { ca } = manager(clock, { upstreamAuthority: createDiskUpstreamAuthority(config, { clock }) });
    await ca.start();
    const svid = sign(ca);
    assert.equal(svid.certificates.length, 3, 'leaf, our CA, the upstream intermediate');
    assert.deepEqual(svid.certificates[2], intermediate.certificate.raw);
    assert.deepEqual(ca.x509Ca().notAfter, x509Fields(intermediate.certificate).notAfter, 'capped at the upstream');
    verifyX509Svid(svid.certificates, ca.bundle(), { now: clock.now() });
    const r = await opensslVerify({
      dir: dir.path,
      roots: [root.certificate],
      untrusted: svid.certificates.slice(1),
      leaf: svid.certificates[0] as Buffer,
      purpose: 'sslserver',
    });
    assert.ok(r.ok, r.output);
    ca.stop();
  });
});
