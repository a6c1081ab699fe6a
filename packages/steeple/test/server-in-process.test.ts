/**
 * The server in one process: startServer on a temp dir (SQLite, port 0), driven through the
 * admin client and a minimal Agent API client. The end-to-end test with real processes is
 * server-e2e.test.ts; this one covers the Agent API's rules in detail, fast.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, sign } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { JwtSvid, SpiffeBundle, SpiffeId, TrustDomain, verifyX509Svid } from '@steeple/spiffe';
import { createTestCa } from '@steeple/spiffe/testing';
import { type AdminClient, createAdminClient } from '../src/common/admin-client.js';
import { x509PopSignedMessage } from '../src/common/attestation/x509pop-format.js';
import { createLogger } from '../src/common/logger.js';
import { AttestAgentRequestSchema, ChangeKind } from '../src/gen/steeple/agent/v1/agent_pb.js';
import { parseServerConfig } from '../src/server/config.js';
import { createScratchSchema, type ScratchSchema } from '../src/server/datastore/testing/postgres-scratch-schema.js';
import { fetchBundle } from '../src/server/federation/bundle-endpoint-client.js';
import { type RunningServer, startServer } from '../src/server/server.js';
import {
  type AgentApiConnection,
  attestAgent,
  connectAgentApi,
  csrFor,
  type HeldSvid,
  newKey,
} from './support/agent-api-client.js';

const TD = 'example.org';
const enc = new TextEncoder();

class LogLines extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) this.lines.push(JSON.parse(line));
    done();
  }
}

async function expectCode(promise: Promise<unknown>, code: Code, pattern?: RegExp): Promise<ConnectError> {
  try {
    await promise;
  } catch (err) {
    const e = ConnectError.from(err);
    assert.equal(Code[e.code], Code[code], `expected ${Code[code]}, got ${Code[e.code]}: ${e.rawMessage}`);
    if (pattern) assert.match(e.rawMessage, pattern);
    return e;
  }
  assert.fail(`expected ${Code[code]}`);
}

describe('server (in process)', () => {
  let dir: string;
  let server: RunningServer;
  let admin: AdminClient;
  let bundle: SpiffeBundle;
  const logs = new LogLines();
  const connections: AgentApiConnection[] = [];

  const configText = () => `
trust_domain: ${TD}
data_dir: ${dir}/data
bind_address: 127.0.0.1
bind_port: 0
socket_path: ${dir}/admin/api.sock
health_checks: { listener_enabled: true, bind_address: 127.0.0.1, bind_port: 0 }
telemetry: { prometheus: { host: 127.0.0.1, port: 0 } }
federation: { bundle_endpoint: { address: 127.0.0.1, port: 0 } }
`;

  const start = async () => {
    server = await startServer(parseServerConfig(configText()), {
      logger: createLogger({ name: 'test', level: 'debug', destination: logs }),
      pollIntervalMs: 200,
    });
    admin = createAdminClient(server.adminSocketPath);
    bundle = SpiffeBundle.parse(TD, server.bundle().marshal());
  };
  const connect = (svid?: HeldSvid) => {
    const c = connectAgentApi({ host: '127.0.0.1', port: server.agentApiPort, bundle, ...(svid ? { svid } : {}) });
    connections.push(c);
    return c.client;
  };
  const token = async (ttlSeconds = 600) => (await admin.agents.createJoinToken({ ttlSeconds })).token;
  const attestWithToken = async (t: string) => {
    const key = newKey();
    const result = await attestAgent(connect(), { type: 'join_token', payload: enc.encode(t) }, key);
    assert.ok(result.svid);
    return { result, svid: { certChain: result.svid.certChain, privateKey: key } as HeldSvid };
  };
  const createEntry = async (spiffeId: string, parentId: string, extra: Record<string, unknown> = {}) => {
    const res = await admin.entries.createEntries({
      entries: [{ spiffeId, parentId, selectors: [{ type: 'unix', value: 'uid:1000' }], ...extra }],
    });
    const r = res.results[0];
    assert.equal(r?.status?.code ?? 0, 0, r?.status?.message);
    return r!.entry!;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'steeple-server-test-'));
    await start();
  });

  after(async () => {
    for (const c of connections) c.close();
    admin?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('attests with a join token; the agent SVID verifies against the bundle (X-1, X-13)', async () => {
    const t = await token();
    const { result } = await attestWithToken(t);
    assert.equal(result.spiffeId, `spiffe://${TD}/spire/agent/join_token/${t}`);
    const { id } = verifyX509Svid(result.svid!.certChain, bundle);
    assert.equal(id.toString(), result.spiffeId);
    assert.equal(result.canReattest, false);
    assert.equal(result.bundle?.trustDomain, TD);
    assert.ok(SpiffeBundle.parse(TD, result.bundle!.spiffeBundleJson).equals(bundle));
    // The token is single use.
    await expectCode(attestWithToken(t), Code.PermissionDenied, /not found or already used/);
  });

  it('refuses a malformed CSR or an unknown attestor without using up the token', async () => {
    const t = await token();
    const client = connect();
    async function* garbageCsr() {
      yield create(AttestAgentRequestSchema, {
        step: {
          case: 'params',
          value: { data: { type: 'join_token', payload: enc.encode(t) }, csr: new Uint8Array([0x30, 0x03, 1, 2, 3]) },
        },
      });
    }
    await expectCode(
      (async () => {
        for await (const _ of client.attestAgent(garbageCsr())) void _;
      })(),
      Code.InvalidArgument,
      /invalid CSR/,
    );
    await expectCode(
      attestAgent(client, { type: 'tpm', payload: enc.encode(t) }, newKey()),
      Code.InvalidArgument,
      /not enabled/,
    );
    await attestWithToken(t);
  });

  it('refuses calls without a client certificate (Unauthenticated)', async () => {
    await expectCode(connect().syncAuthorizedEntries({}), Code.Unauthenticated, /attest first/);
  });

  it('renews the agent SVID; the old one works until the new one is used, then stops', async () => {
    const { svid } = await attestWithToken(await token());
    const key = newKey();
    const renewed = await connect(svid).renewAgent({ csr: csrFor(key) });
    assert.ok(renewed.svid);
    verifyX509Svid(renewed.svid.certChain, bundle);
    // As if the response had been lost: the agent retries with the SVID it still holds.
    const retryKey = newKey();
    const retried = await connect(svid).renewAgent({ csr: csrFor(retryKey) });
    const newest: HeldSvid = { certChain: retried.svid!.certChain, privateKey: retryKey };
    // The lost one never becomes valid; the newest does, and using it retires the old one.
    await expectCode(
      connect({ certChain: renewed.svid.certChain, privateKey: key }).syncAuthorizedEntries({}),
      Code.PermissionDenied,
      /not the current SVID/,
    );
    await connect(newest).syncAuthorizedEntries({});
    await expectCode(connect(svid).syncAuthorizedEntries({}), Code.PermissionDenied, /not the current SVID/);
  });

  it('syncs authorized entries in full, then as deltas by revision', async () => {
    const { result, svid } = await attestWithToken(await token());
    const agentId = result.spiffeId;
    const client = connect(svid);
    const web = await createEntry(`spiffe://${TD}/web`, agentId);
    const nested = await createEntry(`spiffe://${TD}/web/child`, `spiffe://${TD}/web`, {
      selectors: [{ type: 'unix', value: 'uid:1001' }],
    });
    const other = await createEntry(`spiffe://${TD}/elsewhere`, `spiffe://${TD}/spire/agent/join_token/nobody`);
    const full = await client.syncAuthorizedEntries({ knownRevision: 0n });
    assert.equal(full.full, true);
    assert.deepEqual(full.entries.map((e) => e.id).sort(), [web.id, nested.id].sort());
    assert.ok(!full.entries.some((e) => e.id === other.id));

    const unchanged = await client.syncAuthorizedEntries({ knownRevision: full.revision });
    assert.equal(unchanged.full, false);
    assert.deepEqual(unchanged.entries, []);
    assert.deepEqual(unchanged.deletedEntryIds, []);

    const added = await createEntry(`spiffe://${TD}/db`, agentId, { dnsNames: ['db.example.org'] });
    await admin.entries.deleteEntries({ ids: [nested.id] });
    const delta = await client.syncAuthorizedEntries({ knownRevision: full.revision });
    assert.equal(delta.full, false);
    assert.deepEqual(
      delta.entries.map((e) => e.id),
      [added.id],
    );
    assert.deepEqual(delta.deletedEntryIds, [nested.id]);
    assert.ok(delta.revision > full.revision);
    assert.equal(delta.bundlesRevision, full.bundlesRevision);
  });

  it('gives a join token agent its -spiffeID alias, and entries under the alias', async () => {
    const alias = `spiffe://${TD}/nodes/rack-1`;
    const { token: t } = await admin.agents.createJoinToken({ ttlSeconds: 600, agentAliasSpiffeId: alias });
    const { result, svid } = await attestWithToken(t);
    const client = connect(svid);
    const workload = await createEntry(`spiffe://${TD}/rack-1/app`, alias);
    const full = await client.syncAuthorizedEntries({});
    const ids = new Map(full.entries.map((e) => [e.spiffeId, e]));
    assert.equal(ids.get(alias)?.parentId, result.spiffeId, 'the alias entry is parented by the agent');
    assert.ok(ids.has(workload.spiffeId), 'entries under the alias reach the agent');
  });

  it('answers with a full sync when a change moved other entries in or out (a parent appeared)', async () => {
    const { result, svid } = await attestWithToken(await token());
    const client = connect(svid);
    const orphan = await createEntry(`spiffe://${TD}/team/app`, `spiffe://${TD}/team`);
    const start = await client.syncAuthorizedEntries({});
    assert.ok(!start.entries.some((e) => e.id === orphan.id));
    // Creating the parent makes the (unchanged) orphan authorized too: a delta of the parent alone would miss it.
    await createEntry(`spiffe://${TD}/team`, result.spiffeId);
    const next = await client.syncAuthorizedEntries({ knownRevision: start.revision });
    assert.equal(next.full, true);
    assert.ok(next.entries.some((e) => e.id === orphan.id));
  });

  it('signs a batch only for authorized entries; refusals are per item and audited', async () => {
    const { result, svid } = await attestWithToken(await token());
    const client = connect(svid);
    const mine = await createEntry(`spiffe://${TD}/batch/mine`, result.spiffeId, {
      dnsNames: ['mine.example.org'],
      x509SvidTtl: 600,
    });
    const theirs = await createEntry(`spiffe://${TD}/batch/theirs`, `spiffe://${TD}/spire/agent/join_token/x`);
    const mineKey = newKey();
    const res = await client.batchNewX509Svid({
      params: [
        { entryId: mine.id, csr: csrFor(mineKey) },
        { entryId: theirs.id, csr: csrFor(newKey()) },
        { entryId: 'no-such-entry', csr: csrFor(newKey()) },
        { entryId: mine.id, csr: new Uint8Array([1, 2, 3]) },
      ],
    });
    assert.deepEqual(
      res.results.map((r) => r.status?.code ?? 0),
      [0, Code.PermissionDenied, Code.NotFound, Code.InvalidArgument],
    );
    const leaf = res.results[0]!.svid!;
    const verified = verifyX509Svid(leaf.certChain, bundle);
    assert.equal(verified.id.toString(), mine.spiffeId);
    assert.ok(verified.verifiedChain[0]!.subjectAltName?.includes('DNS:mine.example.org'));
    const ttl = Number(leaf.expiresAt) - Math.floor(Date.now() / 1000);
    assert.ok(ttl <= 600 && ttl > 500, `TTL from the entry, got ${ttl}`);
    // A workload SVID is not an agent SVID.
    await expectCode(
      connect({ certChain: leaf.certChain, privateKey: mineKey }).syncAuthorizedEntries({}),
      Code.PermissionDenied,
      /is not an agent ID/,
    );
    const audit = logs.lines.find((l) => l.audit === true && l.entryId === theirs.id);
    assert.ok(audit, 'an audit line names the refused entry');
    assert.equal(audit.agentId, result.spiffeId);
    assert.equal(audit.level, 'warn');
  });

  it('mints JWT-SVIDs that validate against the bundle, only for authorized entries', async () => {
    const { result, svid } = await attestWithToken(await token());
    const client = connect(svid);
    const mine = await createEntry(`spiffe://${TD}/jwt/mine`, result.spiffeId);
    const theirs = await createEntry(`spiffe://${TD}/jwt/theirs`, `spiffe://${TD}/spire/agent/join_token/y`);
    const res = await client.newJwtSvid({ entryId: mine.id, audience: ['api'] });
    const jwt = JwtSvid.parseAndValidateSync(res.svid!.token, bundle, ['api']);
    assert.equal(jwt.id.toString(), mine.spiffeId);
    await expectCode(client.newJwtSvid({ entryId: theirs.id, audience: ['api'] }), Code.PermissionDenied);
    await expectCode(client.newJwtSvid({ entryId: mine.id, audience: [] }), Code.InvalidArgument);
  });

  it('WatchChanges tells the agent about a new entry, and ends when the client cancels (P4)', async () => {
    const { result, svid } = await attestWithToken(await token());
    const client = connect(svid);
    const { revision } = await client.syncAuthorizedEntries({});
    const abort = new AbortController();
    const stream = client.watchChanges({ knownRevision: revision }, { signal: abort.signal });
    const first = (async () => {
      for await (const change of stream) return change;
      return undefined;
    })();
    await new Promise((r) => setTimeout(r, 50));
    await createEntry(`spiffe://${TD}/watched`, result.spiffeId);
    const change = await first;
    assert.equal(change?.kind, ChangeKind.ENTRIES);
    assert.ok((change?.revision ?? 0n) > revision);
    abort.abort();
  });

  it('GetBundles returns the own bundle and the federated bundles the entries need', async () => {
    const { result, svid } = await attestWithToken(await token());
    const client = connect(svid);
    const other = SpiffeBundle.fromBundles({
      x509: createTestCa({ trustDomain: 'partner.org' }).x509Bundle(),
      sequenceNumber: 1n,
    });
    await admin.bundles.setFederatedBundle({
      trustDomain: 'partner.org',
      content: { case: 'spiffeBundleJson', value: other.marshal() },
    });
    const before = await client.getBundles({});
    assert.equal(before.bundle?.trustDomain, TD);
    assert.deepEqual(before.federatedBundles, []);
    await createEntry(`spiffe://${TD}/federated`, result.spiffeId, { federatesWith: ['partner.org'] });
    const afterEntry = await client.getBundles({});
    assert.deepEqual(
      afterEntry.federatedBundles.map((b) => b.trustDomain),
      ['partner.org'],
    );
    assert.notEqual(afterEntry.revision, before.revision);
  });

  it('a banned agent is refused; after eviction a new token attests again', async () => {
    const { result, svid } = await attestWithToken(await token());
    await admin.agents.banAgent({ spiffeId: result.spiffeId });
    await expectCode(connect(svid).renewAgent({ csr: csrFor(newKey()) }), Code.PermissionDenied, /banned/);
    await admin.agents.deleteAgent({ spiffeId: result.spiffeId });
    await expectCode(connect(svid).syncAuthorizedEntries({}), Code.PermissionDenied, /not attested/);
    await attestWithToken(await token());
  });

  it('survives a malformed :authority (P1)', async () => {
    const session = http2.connect(`https://127.0.0.1:${server.agentApiPort}`, {
      rejectUnauthorized: false,
    });
    session.on('error', () => undefined);
    const status = await new Promise<string | undefined>((resolve) => {
      const req = session.request({
        ':method': 'POST',
        ':path': '/steeple.agent.v1.AgentApiService/GetBundles',
        ':authority': 'a:b:c',
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      let grpcStatus: string | undefined;
      req.on('response', (h) => {
        grpcStatus ??= h['grpc-status'] as string | undefined;
      });
      req.on('trailers', (h) => {
        grpcStatus ??= h['grpc-status'] as string | undefined;
      });
      req.on('close', () => resolve(grpcStatus));
      req.on('error', () => resolve(grpcStatus));
      req.end(Buffer.from([0, 0, 0, 0, 0]));
    });
    session.close();
    assert.ok(status !== undefined && status !== '0', `an error status, got ${status}`);
    await connect()
      .getBundles({})
      .catch(() => undefined);
    assert.equal((await server.readiness()).ready, true, 'the server is still up');
  });

  it('serves /live, /ready and Prometheus metrics (SVIDs signed by type, calls by method and code)', async () => {
    assert.ok(server.healthUrl && server.metricsUrl);
    assert.equal((await fetch(`${server.healthUrl}/live`)).status, 200);
    const ready = await fetch(`${server.healthUrl}/ready`);
    assert.equal(ready.status, 200, await ready.text());
    const metrics = await (await fetch(server.metricsUrl)).text();
    // One sample with these labels (in any order) and a value of at least 1.
    const sample = (name: string, labels: Record<string, string>) => {
      const line = metrics
        .split('\n')
        .find((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
      assert.ok(line, `${name} ${JSON.stringify(labels)} in\n${metrics}`);
      assert.ok(Number(line.split(' ').pop()) >= 1, line);
    };
    sample('steeple_svids_signed_total', { type: 'agent_x509', trust_domain: TD });
    sample('steeple_svids_signed_total', { type: 'x509' });
    sample('steeple_svids_signed_total', { type: 'jwt' });
    sample('steeple_svid_signing_seconds_count', { type: 'x509' });
    sample('steeple_agent_api_calls_total', { method: 'BatchNewX509Svid', code: 'ok' });
    sample('steeple_agent_api_calls_total', { method: 'SyncAuthorizedEntries', code: 'permission_denied' });
    sample('steeple_registration_entries', {});
  });

  it('serves its bundle on the federation bundle endpoint (https_spiffe, the server SVID)', async () => {
    assert.ok(server.bundleEndpointUrl);
    const fetched = await fetchBundle({
      url: server.bundleEndpointUrl,
      trustDomain: TrustDomain.parse(TD),
      authentication: {
        profile: 'https_spiffe',
        endpointSpiffeId: SpiffeId.parse(`spiffe://${TD}/spire/server`),
        endpointBundle: bundle.x509Bundle(),
      },
    });
    assert.ok(fetched.bundle.x509Bundle().equals(bundle.x509Bundle()));
  });

  it('mints X.509-SVIDs through the admin API from a CSR (x509 mint), refusing a forged one', async () => {
    const key = newKey();
    const res = await admin.svids.mintX509Svid({
      csr: csrFor(key),
      spiffeId: `spiffe://${TD}/minted`,
      ttlSeconds: 300,
    });
    assert.equal(verifyX509Svid(res.svid!.certChain, bundle).id.toString(), `spiffe://${TD}/minted`);
    const forged = Buffer.from(csrFor(key));
    forged.writeUInt8(forged.readUInt8(forged.length - 5) ^ 0xff, forged.length - 5); // break the self-signature
    await expectCode(
      admin.svids.mintX509Svid({ csr: forged, spiffeId: `spiffe://${TD}/minted` }),
      Code.InvalidArgument,
      /csr/,
    );
  });

  it('never logs tokens or CSRs', () => {
    const text = JSON.stringify(logs.lines);
    assert.ok(!/"csr":"(?!\[redacted\])/.test(text));
    assert.ok(!/"token":"(?!\[redacted\])/.test(text));
  });

  it('keeps the CA, entries and agents across a restart', async () => {
    const { result, svid } = await attestWithToken(await token());
    const entry = await createEntry(`spiffe://${TD}/persisted`, result.spiffeId);
    const bundleBefore = server.bundle().marshal();
    for (const c of connections.splice(0)) c.close();
    admin.close();
    await server.close();
    await start();
    assert.equal(server.bundle().marshal(), bundleBefore);
    const client = connect(svid);
    const sync = await client.syncAuthorizedEntries({});
    assert.ok(sync.entries.some((e) => e.id === entry.id));
    await client.renewAgent({ csr: csrFor(newKey()) });
  });
});

describe('two servers sharing one PostgreSQL database', () => {
  const dirs: string[] = [];
  const servers: RunningServer[] = [];
  let scratch: ScratchSchema;
  const connections: AgentApiConnection[] = [];

  before(async () => {
    scratch = await createScratchSchema();
  });

  after(async () => {
    for (const c of connections) c.close();
    for (const s of servers) await s.close();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
    await scratch?.drop();
  });

  const startOne = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'steeple-ha-'));
    dirs.push(dir);
    const server = await startServer(
      parseServerConfig(`
trust_domain: ${TD}
data_dir: ${dir}/data
bind_address: 127.0.0.1
bind_port: 0
socket_path: ${dir}/api.sock
datastore: { type: postgres, connection_string: "${scratch.connectionString}" }
`),
      { logger: createLogger({ name: 'ha', level: 'silent' }), pollIntervalMs: 100 },
    );
    servers.push(server);
    return server;
  };

  it('shares one bundle, lets an agent of one server call the other, and propagates changes', async () => {
    const a = await startOne();
    const b = await startOne();
    // B published its CA into the bundle A already wrote: both CAs are trusted everywhere.
    const shared = b.bundle();
    assert.equal(shared.x509Authorities.length, 2);
    const adminA = createAdminClient(a.adminSocketPath);
    try {
      const bundle = SpiffeBundle.parse(TD, shared.marshal());
      const open = (server: RunningServer, svid?: HeldSvid) => {
        const c = connectAgentApi({ host: '127.0.0.1', port: server.agentApiPort, bundle, ...(svid ? { svid } : {}) });
        connections.push(c);
        return c.client;
      };
      const { token: t } = await adminA.agents.createJoinToken({ ttlSeconds: 600 });
      const key = newKey();
      const attested = await attestAgent(open(a), { type: 'join_token', payload: enc.encode(t) }, key);
      const svid: HeldSvid = { certChain: attested.svid!.certChain, privateKey: key };
      // Server B knows the agent (same datastore) and trusts A's CA (same bundle).
      const viaB = open(b, svid);
      const { revision } = await viaB.syncAuthorizedEntries({});
      const stream = viaB.watchChanges({ knownRevision: revision });
      const notified = (async () => {
        for await (const change of stream) if (change.kind === ChangeKind.ENTRIES) return change;
        return undefined;
      })();
      await new Promise((r) => setTimeout(r, 50));
      // A write through server A reaches the agent's stream on server B (by B's polling).
      const created = await adminA.entries.createEntries({
        entries: [
          {
            spiffeId: `spiffe://${TD}/ha/web`,
            parentId: attested.spiffeId,
            selectors: [{ type: 'unix', value: 'uid:1' }],
          },
        ],
      });
      const change = await notified;
      assert.ok(change && change.revision > revision);
      const delta = await viaB.syncAuthorizedEntries({ knownRevision: revision });
      assert.deepEqual(
        delta.entries.map((e) => e.id),
        [created.results[0]!.entry!.id],
      );
      // The token was used on A: B refuses it too.
      await expectCode(
        attestAgent(open(b), { type: 'join_token', payload: enc.encode(t) }, newKey()),
        Code.PermissionDenied,
      );
    } finally {
      adminA.close();
    }
  });
});

describe('x509pop attestation through the Agent API (challenge and response on the stream)', () => {
  let dir: string;
  let server: RunningServer;
  const connections: AgentApiConnection[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'steeple-x509pop-'));
  });

  after(async () => {
    for (const c of connections) c.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('attests a node that proves its key, lets it re-attest, and refuses it once banned', async () => {
    const nodeCa = createTestCa({ trustDomain: 'nodes.example' });
    await writeFile(join(dir, 'node-ca.pem'), nodeCa.x509Bundle().marshal());
    server = await startServer(
      parseServerConfig(`
trust_domain: ${TD}
data_dir: ${dir}/data
bind_address: 127.0.0.1
bind_port: 0
socket_path: ${dir}/api.sock
node_attestors: { x509pop: { ca_bundle_path: ${dir}/node-ca.pem } }
`),
      { logger: createLogger({ name: 'x509pop', level: 'silent' }) },
    );
    const bundle = SpiffeBundle.parse(TD, server.bundle().marshal());
    const open = (svid?: HeldSvid) => {
      const c = connectAgentApi({ host: '127.0.0.1', port: server.agentApiPort, bundle, ...(svid ? { svid } : {}) });
      connections.push(c);
      return c.client;
    };
    const node = nodeCa.issueX509Svid('spiffe://nodes.example/node-1');
    const { certificates, privateKey } = node.marshalRaw();
    const nodeKey = createPrivateKey({ key: Buffer.from(privateKey), format: 'der', type: 'pkcs8' });
    const data = { type: 'x509pop', payload: certificates };
    let challenges = 0;
    const answer = (nonce: Uint8Array) => {
      challenges++;
      return sign('sha256', x509PopSignedMessage(TD, nonce), nodeKey);
    };

    const key = newKey();
    const first = await attestAgent(open(), data, key, answer);
    assert.equal(challenges, 1);
    assert.equal(first.canReattest, true);
    assert.match(first.spiffeId, new RegExp(`^spiffe://${TD}/spire/agent/x509pop/`));
    const firstSvid: HeldSvid = { certChain: first.svid!.certChain, privateKey: key };
    await open(firstSvid).syncAuthorizedEntries({});

    // A wrong answer is refused.
    await expectCode(
      attestAgent(open(), data, newKey(), () => new Uint8Array(64)),
      Code.PermissionDenied,
    );

    // Re-attesting gives the same agent ID a new SVID; the previous one stops working.
    const againKey = newKey();
    const again = await attestAgent(open(), data, againKey, answer);
    assert.equal(again.spiffeId, first.spiffeId);
    await expectCode(open(firstSvid).syncAuthorizedEntries({}), Code.PermissionDenied, /not the current SVID/);
    await open({ certChain: again.svid!.certChain, privateKey: againKey }).syncAuthorizedEntries({});

    const admin = createAdminClient(server.adminSocketPath);
    try {
      await admin.agents.banAgent({ spiffeId: first.spiffeId });
      await expectCode(attestAgent(open(), data, newKey(), answer), Code.PermissionDenied, /banned/);
      await admin.agents.deleteAgent({ spiffeId: first.spiffeId });
      await attestAgent(open(), data, newKey(), answer);
    } finally {
      admin.close();
    }
  });
});
