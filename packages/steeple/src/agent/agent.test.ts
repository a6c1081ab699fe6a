import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Code } from '@connectrpc/connect';
import { JwtBundle, JwtSvid, X509Svid } from '@steeple/spiffe';
import { ManualClock } from '@steeple/spiffe/testing';
import { createSilentLogger } from '../common/logger.js';
import { type Agent, type StartAgentOptions, startAgent } from './agent.js';
import { AgentConfigSchema } from './config.js';
import { type FakeAgentApi, startFakeAgentApi } from './testing/fake-agent-api.js';
import { createRawWorkloadClient } from './testing/raw-workload-client.js';
import { capturingLogger, eventually, StreamReader } from './testing/test-helpers.js';

const uid = process.getuid?.() ?? 0;
const mySelector = `unix:uid:${uid}`;

function configFor(fake: FakeAgentApi, dir: string, token: string) {
  const bundlePath = join(dir, 'bootstrap.pem');
  writeFileSync(bundlePath, fake.bundlePem);
  return AgentConfigSchema.parse({
    server_address: '127.0.0.1',
    server_port: fake.port,
    trust_domain: fake.trustDomain,
    trust_bundle_path: bundlePath,
    join_token: token,
    data_dir: join(dir, 'data'),
    socket_path: join(dir, 'public', 'api.sock'),
  });
}

describe('agent against a fake Agent API server', () => {
  let dir: string;
  let fake: FakeAgentApi;
  let agent: Agent;
  let config: ReturnType<typeof configFor>;
  const clock = new ManualClock(new Date());
  const options: StartAgentOptions = { logger: createSilentLogger(), clock, syncIntervalMs: 5000 };
  let entryId: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'steeple-agent-'));
    fake = await startFakeAgentApi({ joinTokens: ['tok-1'], clock });
    config = configFor(fake, dir, 'tok-1');
    agent = await startAgent(config, options);
    await agent.syncer.whenSynced();
    entryId = fake.addEntry({ spiffeId: 'spiffe://example.org/web', selectors: [mySelector], hint: 'web' });
    await eventually(() => agent.cache.svids.get(entryId), 10_000, 'the first SVID');
  });

  after(async () => {
    await agent?.close();
    await fake?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('attests with the join token and keeps SVID and key in data_dir, mode 0600', () => {
    assert.equal(fake.calls.get('AttestAgent'), 1);
    assert.equal(agent.identity.spiffeId, 'spiffe://example.org/spire/agent/join_token/tok-1');
    for (const file of ['agent.json', 'bundle.json']) {
      assert.equal(statSync(join(config.data_dir, file)).mode & 0o777, 0o600, file);
    }
    assert.equal(statSync(config.data_dir).mode & 0o777, 0o700);
    assert.deepEqual(agent.readiness(), { ready: true });
  });

  it('serves the socket 0777 in a 0755 directory (authorization is by attestation)', () => {
    assert.equal(statSync(config.socket_path).mode & 0o777, 0o777);
    assert.equal(statSync(join(dir, 'public')).mode & 0o777, 0o755);
  });

  it('W-6: FetchX509SVID sends DER chain, PKCS#8 key, DER bundle, and the hint', async () => {
    const client = createRawWorkloadClient(config.socket_path);
    try {
      const res = await new StreamReader(client.api.fetchX509SVID({})).next();
      assert.equal(res.svids.length, 1);
      const s = res.svids[0]!;
      assert.equal(s.spiffeId, 'spiffe://example.org/web');
      assert.equal(s.hint, 'web');
      const svid = X509Svid.parseRaw(s.x509Svid, s.x509SvidKey);
      assert.equal(svid.id.toString(), 'spiffe://example.org/web');
      assert.deepEqual(Buffer.from(s.bundle), fake.ca.certificate.raw);
      assert.deepEqual(res.federatedBundles, {});
    } finally {
      client.close();
    }
  });

  it('E-2: a call without the header, or with "TRUE", gets InvalidArgument', async () => {
    for (const header of [null, 'TRUE']) {
      const client = createRawWorkloadClient(config.socket_path, header);
      try {
        const err = await new StreamReader(client.api.fetchX509SVID({})).error();
        assert.equal(err.code, Code.InvalidArgument, `header ${header}`);
        await assert.rejects(
          client.api.fetchJWTSVID({ audience: ['a'] }),
          (e: { code: Code }) => e.code === Code.InvalidArgument,
        );
        await assert.rejects(
          client.api.validateJWTSVID({ audience: 'a', svid: 'x' }),
          (e: { code: Code }) => e.code === Code.InvalidArgument,
        );
      } finally {
        client.close();
      }
    }
  });

  it('W-1: the WIT-SVID methods are Unimplemented', async () => {
    const client = createRawWorkloadClient(config.socket_path);
    try {
      assert.equal((await new StreamReader(client.api.fetchWITSVID({})).error()).code, Code.Unimplemented);
    } finally {
      client.close();
    }
  });

  it('P1: a %-encoded socket path as :authority (grpc C-core) neither crashes nor fails the call', async () => {
    const session = http2.connect('http://localhost', { createConnection: () => connect(config.socket_path) });
    try {
      const req = session.request({
        ':method': 'POST',
        ':path': '/SpiffeWorkloadAPI/FetchJWTBundles',
        ':authority': `%2F${encodeURIComponent(config.socket_path.slice(1))}`,
        'content-type': 'application/grpc',
        te: 'trailers',
        'workload.spiffe.io': 'true',
      });
      req.end(Buffer.from([0, 0, 0, 0, 0]));
      const headers = await new Promise<http2.IncomingHttpHeaders>((resolve) => req.on('response', resolve));
      assert.equal(headers[':status'], 200);
      const first = await new Promise<Buffer>((resolve) => req.once('data', resolve));
      assert.ok(first.length > 5, 'a JWTBundlesResponse arrives');
      req.close();
    } finally {
      session.close();
    }
  });

  it('W-10: FetchJWTBundles holds only jwt-svid keys, each with a kid, keyed spiffe://td', async () => {
    const client = createRawWorkloadClient(config.socket_path);
    try {
      const res = await new StreamReader(client.api.fetchJWTBundles({})).next();
      assert.deepEqual(Object.keys(res.bundles), ['spiffe://example.org']);
      const jwks = JSON.parse(Buffer.from(res.bundles['spiffe://example.org']!).toString('utf8'));
      assert.ok(jwks.keys.length >= 1);
      for (const key of jwks.keys) {
        assert.equal(key.use, 'jwt-svid');
        assert.equal(typeof key.kid, 'string');
      }
      const x = await new StreamReader(client.api.fetchX509Bundles({})).next();
      assert.deepEqual(Object.keys(x.bundles), ['spiffe://example.org']);
      assert.deepEqual(Buffer.from(x.bundles['spiffe://example.org']!), fake.ca.certificate.raw);
    } finally {
      client.close();
    }
  });

  it('W-9/W-11: mints a JWT-SVID (cached per audience set) and validates it', async () => {
    const client = createRawWorkloadClient(config.socket_path);
    try {
      const before = fake.calls.get('NewJwtSvid') ?? 0;
      const res = await client.api.fetchJWTSVID({ audience: ['db', 'cache'] });
      assert.equal(res.svids.length, 1);
      const token = res.svids[0]!.svid;
      const again = await client.api.fetchJWTSVID({ audience: ['cache', 'db'] });
      assert.equal(again.svids[0]!.svid, token, 'the same token until half life');
      assert.equal((fake.calls.get('NewJwtSvid') ?? 0) - before, 1);
      const jwt = await JwtSvid.parseAndValidate(
        token,
        JwtBundle.parse('example.org', fake.jwt.jwtBundle().marshal()),
        ['db'],
        { clock },
      );
      assert.equal(jwt.id.toString(), 'spiffe://example.org/web');

      const valid = await client.api.validateJWTSVID({ audience: 'db', svid: token });
      assert.equal(valid.spiffeId, 'spiffe://example.org/web');
      assert.deepEqual(valid.claims?.['aud'], ['db', 'cache']);
      await assert.rejects(
        client.api.validateJWTSVID({ audience: 'other', svid: token }),
        (e: { code: Code }) => e.code === Code.InvalidArgument,
      );
      await assert.rejects(
        client.api.fetchJWTSVID({ audience: [] }),
        (e: { code: Code }) => e.code === Code.InvalidArgument,
      );
      await assert.rejects(
        client.api.fetchJWTSVID({ audience: ['db'], spiffeId: 'spiffe://example.org/other' }),
        (e: { code: Code }) => e.code === Code.PermissionDenied,
      );
    } finally {
      client.close();
    }
  });

  it('streams an entry added mid-stream, a rotation, and PermissionDenied when the last entry goes', async () => {
    const client = createRawWorkloadClient(config.socket_path);
    try {
      const stream = new StreamReader(client.api.fetchX509SVID({}));
      const first = await stream.next();
      const serial = new X509Certificate(first.svids[0]!.x509Svid.subarray(0)).serialNumber;

      const second = fake.addEntry({ spiffeId: 'spiffe://example.org/admin', selectors: [mySelector] });
      let msg = await stream.next();
      assert.deepEqual(
        msg.svids.map((s) => s.spiffeId),
        ['spiffe://example.org/web', 'spiffe://example.org/admin'],
      );

      // Past the jittered half life (30 min ± 3) of the 1 h SVIDs: both rotate.
      clock.advance(34 * 60_000);
      msg = await eventually(
        async () => {
          const m = await stream.next();
          const serials = m.svids.map((s) => new X509Certificate(Buffer.from(s.x509Svid)).serialNumber);
          return serials.length === 2 && !serials.includes(serial) ? m : undefined;
        },
        10_000,
        'rotated SVIDs',
      );
      assert.equal(msg.svids.length, 2);

      fake.removeEntry(second);
      fake.removeEntry(entryId);
      const err = await eventually(async () => {
        try {
          await stream.next();
          return undefined;
        } catch (e) {
          return e as { code: Code };
        }
      });
      assert.equal(err.code, Code.PermissionDenied);
      entryId = fake.addEntry({ spiffeId: 'spiffe://example.org/web', selectors: [mySelector] });
      await eventually(() => agent.cache.svids.get(entryId));
    } finally {
      client.close();
    }
  });

  it('answers PermissionDenied to a caller no entry matches', async () => {
    const other = await startAgent(
      { ...config, socket_path: join(dir, 'other.sock'), data_dir: config.data_dir },
      { ...options, workloadAttestors: [{ name: 'unix', attest: async () => [{ type: 'unix', value: 'uid:4242' }] }] },
    );
    const client = createRawWorkloadClient(join(dir, 'other.sock'));
    try {
      await other.syncer.whenSynced();
      assert.equal((await new StreamReader(client.api.fetchX509SVID({})).error()).code, Code.PermissionDenied);
      await assert.rejects(
        client.api.fetchJWTSVID({ audience: ['a'] }),
        (e: { code: Code }) => e.code === Code.PermissionDenied,
      );
    } finally {
      client.close();
      await other.close();
    }
  });

  it('keeps serving the cached SVID while the server is down, and resumes when it is back', async () => {
    await fake.stop();
    clock.advance(6000);
    await eventually(() => agent.syncer.lastError, 10_000, 'a failed sync');
    const client = createRawWorkloadClient(config.socket_path);
    try {
      const stream = new StreamReader(client.api.fetchX509SVID({}));
      assert.equal((await stream.next()).svids[0]!.spiffeId, 'spiffe://example.org/web');
      await fake.start();
      const added = fake.addEntry({ spiffeId: 'spiffe://example.org/late', selectors: [mySelector] });
      clock.advance(11_000);
      const msg = await eventually(async () => {
        clock.advance(1000);
        const m = await stream.next(2000).catch(() => undefined);
        return m?.svids.some((s) => s.spiffeId === 'spiffe://example.org/late') ? m : undefined;
      });
      assert.ok(msg);
      fake.removeEntry(added);
    } finally {
      client.close();
    }
  });

  it('a restarted agent uses its saved SVID: no second attestation, no new join token', async () => {
    await agent.close();
    const attests = fake.calls.get('AttestAgent');
    agent = await startAgent(config, options);
    await agent.syncer.whenSynced();
    assert.equal(fake.calls.get('AttestAgent'), attests);
    assert.equal(agent.identity.spiffeId, 'spiffe://example.org/spire/agent/join_token/tok-1');
  });

  it('says in /ready why it cannot recover when its join-token SVID expired while the server was away', async () => {
    await fake.stop();
    clock.advance(2 * 3600_000);
    const reason = await eventually(() => {
      clock.advance(1000);
      const r = agent.readiness();
      return !r.ready && /join token/.test(r.reason ?? '') ? r.reason : undefined;
    });
    assert.match(reason, /expired .* join_token attestation cannot be repeated .* generate a new join token/);
    await fake.start();
  });
});

describe('agent config errors', () => {
  it('refuses to start without a bootstrap bundle when it has never attested', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'steeple-agent-'));
    try {
      const config = AgentConfigSchema.parse({
        server_address: '127.0.0.1',
        trust_domain: 'example.org',
        join_token: 't',
        data_dir: join(dir, 'data'),
        socket_path: join(dir, 'api.sock'),
      });
      await assert.rejects(
        startAgent(config, { logger: createSilentLogger() }),
        /trust_bundle_path: is required for the first attestation/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('E-5: answers Unavailable, not PermissionDenied, before its first sync with the server', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'steeple-agent-'));
    const fake = await startFakeAgentApi({ joinTokens: ['t'] });
    const config = configFor(fake, dir, 't');
    await fake.close(); // nobody listens on that port any more
    const agent = await startAgent(config, { logger: createSilentLogger() });
    const client = createRawWorkloadClient(config.socket_path);
    try {
      assert.equal((await new StreamReader(client.api.fetchX509SVID({})).error()).code, Code.Unavailable);
      assert.equal(agent.readiness().ready, false);
    } finally {
      client.close();
      await agent.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('logs nothing secret: the join token never appears in a log line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'steeple-agent-'));
    const fake = await startFakeAgentApi({ joinTokens: ['s3cret-token'] });
    const { logger, lines } = capturingLogger('debug');
    const agent = await startAgent(configFor(fake, dir, 's3cret-token'), { logger });
    try {
      await agent.syncer.whenSynced();
      // Once used, the token is part of the agent's SPIFFE ID (as in SPIRE); nowhere else.
      const text = JSON.stringify(lines).replaceAll('spire/agent/join_token/s3cret-token', '');
      assert.ok(lines.length > 0);
      assert.ok(!text.includes('s3cret-token'));
    } finally {
      await agent.close();
      await fake.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
