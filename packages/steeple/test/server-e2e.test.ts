/**
 * The server end to end, with real processes: `steeple server run` in its own process on a
 * temp dir, the `steeple` CLI for admin work (entries, tokens, bans, bundle), and a minimal
 * attestation client (test/support/agent-api-client.ts) on the Agent API over TLS. The same
 * flow runs on SQLite and on PostgreSQL (127.0.0.1:5432, a scratch schema per run).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Code, ConnectError } from '@connectrpc/connect';
import { JwtSvid, type SpiffeBundle, verifyX509Svid, X509Svid } from '@steeple/spiffe';
import { createAdminClient } from '../src/common/admin-client.js';
import { ChangeKind } from '../src/gen/steeple/agent/v1/agent_pb.js';
import { createScratchSchema, type ScratchSchema } from '../src/server/datastore/testing/postgres-scratch-schema.js';
import {
  type AgentApiConnection,
  attestAgent,
  connectAgentApi,
  csrFor,
  type HeldSvid,
  newKey,
  parseBundle,
} from './support/agent-api-client.js';

const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const BIN = join(ROOT, 'packages/steeple/bin/steeple');
const MAIN = join(ROOT, 'packages/steeple/src/cli/main.ts');
const TD = 'e2e.example.org';
const enc = new TextEncoder();

interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the `steeple` CLI as a user would. */
function steeple(...args: string[]): Promise<CliResult> {
  return new Promise((done) => {
    execFile(BIN, args, { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      done({ code, stdout, stderr });
    });
  });
}

async function steepleOk(...args: string[]): Promise<string> {
  const r = await steeple(...args);
  assert.equal(r.code, 0, `steeple ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

async function steepleJson<T = Record<string, unknown>>(...args: string[]): Promise<T> {
  return JSON.parse(await steepleOk(...args, '-output', 'json')) as T;
}

/** A running `steeple server run`, read from its log. */
interface ServerProcess {
  readonly proc: ChildProcess;
  readonly port: number;
  readonly socketPath: string;
  readonly log: string[];
  /** Resolves with the exit code (or the signal's name). */
  readonly exited: Promise<number | string>;
}

/**
 * Starts the server process. It runs main.ts through tsx as bin/steeple does from sources,
 * started here directly so the test controls its flags.
 */
function startServerProcess(configPath: string): Promise<ServerProcess> {
  const proc = spawn(
    process.execPath,
    ['--conditions=steeple-source', '--import', 'tsx', MAIN, 'server', 'run', '-config', configPath],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const log: string[] = [];
  const exited = new Promise<number | string>((done) => proc.on('exit', (code, signal) => done(code ?? signal ?? -1)));
  return new Promise((ready, fail) => {
    const timer = setTimeout(() => fail(new Error(`server not ready after 30 s:\n${log.join('')}`)), 30_000);
    proc.stdout?.on('data', (chunk: Buffer) => log.push(chunk.toString()));
    let buffered = '';
    proc.stderr?.on('data', (chunk: Buffer) => {
      log.push(chunk.toString());
      buffered += chunk.toString();
      // The startup line `run` prints whatever the log level:
      // "steeple server ready: trust domain …, agent API 127.0.0.1:PORT, admin socket PATH, datastore …"
      const m = /^steeple server ready: .*, agent API (\S+):(\d+), admin socket (.+), datastore /m.exec(buffered);
      if (m) {
        clearTimeout(timer);
        ready({ proc, port: Number(m[2]), socketPath: m[3] as string, log, exited });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      fail(new Error(`server exited (${code}) before it was ready:\n${log.join('')}`));
    });
  });
}

async function stopServer(server: ServerProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | string> {
  server.proc.kill(signal);
  return server.exited;
}

async function expectCode(promise: Promise<unknown>, code: Code, pattern?: RegExp): Promise<void> {
  try {
    await promise;
  } catch (err) {
    const e = ConnectError.from(err);
    assert.equal(Code[e.code], Code[code], `expected ${Code[code]}, got ${Code[e.code]}: ${e.rawMessage}`);
    if (pattern) assert.match(e.rawMessage, pattern);
    return;
  }
  assert.fail(`expected ${Code[code]}`);
}

async function tempDir(): Promise<string> {
  // Short: the admin socket path must fit in sun_path (108 bytes).
  return mkdtemp(join(tmpdir(), 'st-e2e-'));
}

function serverYaml(dir: string, datastore: string): string {
  return `trust_domain: ${TD}
data_dir: ${dir}/data
bind_address: 127.0.0.1
bind_port: 0
socket_path: ${dir}/admin/api.sock
log_level: debug
${datastore}
`;
}

/** What the flow asks of the operator; done with the CLI, or (to save the CLI's start-up time) the admin client. */
interface Operator {
  bundleJson(): Promise<string>;
  token(): Promise<string>;
  createEntry(spiffeId: string, parentId: string): Promise<string>;
  ban(agentId: string): Promise<void>;
  evict(agentId: string): Promise<void>;
  entryIds(): Promise<string[]>;
  agentIds(): Promise<string[]>;
  close(): void;
}

function cliOperator(socketPath: string): Operator {
  const sock = ['-socketPath', socketPath];
  return {
    bundleJson: () => steepleOk('server', 'bundle', 'show', '-format', 'spiffe', ...sock),
    token: async () => (await steepleJson<{ token: string }>('server', 'token', 'generate', ...sock)).token,
    async createEntry(spiffeId, parentId) {
      const res = await steepleJson<{ results: { entry: { id: string } }[] }>(
        ...['server', 'entry', 'create', '-spiffeID', spiffeId, '-parentID', parentId, '-selector', 'unix:uid:1000'],
        ...sock,
      );
      return res.results[0]!.entry.id;
    },
    ban: async (agentId) => void (await steepleOk('server', 'agent', 'ban', '-spiffeID', agentId, ...sock)),
    evict: async (agentId) => void (await steepleOk('server', 'agent', 'evict', '-spiffeID', agentId, ...sock)),
    entryIds: async () =>
      (await steepleJson<{ entries: { id: string }[] }>('server', 'entry', 'show', ...sock)).entries.map((e) => e.id),
    agentIds: async () =>
      (await steepleJson<{ agents: { spiffe_id: string }[] }>('server', 'agent', 'list', ...sock)).agents.map(
        (a) => a.spiffe_id,
      ),
    close: () => undefined,
  };
}

function clientOperator(socketPath: string): Operator {
  const admin = createAdminClient(socketPath);
  return {
    bundleJson: async () => (await admin.bundles.getBundle({})).bundle!.spiffeBundleJson,
    token: async () => (await admin.agents.createJoinToken({ ttlSeconds: 600 })).token,
    async createEntry(spiffeId, parentId) {
      const res = await admin.entries.createEntries({
        entries: [{ spiffeId, parentId, selectors: [{ type: 'unix', value: 'uid:1000' }] }],
      });
      assert.equal(res.results[0]?.status?.code ?? 0, 0, res.results[0]?.status?.message);
      return res.results[0]!.entry!.id;
    },
    ban: async (spiffeId) => void (await admin.agents.banAgent({ spiffeId })),
    evict: async (spiffeId) => void (await admin.agents.deleteAgent({ spiffeId })),
    entryIds: async () => (await admin.entries.listEntries({})).entries.map((e) => e.id),
    agentIds: async () => (await admin.agents.listAgents({})).agents.map((a) => a.spiffeId),
    close: () => admin.close(),
  };
}

/** The whole operator + agent flow against one datastore engine. */
async function serverFlow(datastoreYaml: string, operatorFor: (socketPath: string) => Operator): Promise<void> {
  const dir = await tempDir();
  const connections: AgentApiConnection[] = [];
  let server: ServerProcess | undefined;
  let op: Operator | undefined;
  try {
    const configPath = join(dir, 'server.yaml');
    await writeFile(configPath, serverYaml(dir, datastoreYaml));
    server = await startServerProcess(configPath);
    op = operatorFor(server.socketPath);
    // Independent CLI calls run side by side: each costs a process start.
    const [bundleText, token] = await Promise.all([op.bundleJson(), op.token()]);
    const bundle: SpiffeBundle = parseBundle(TD, bundleText);
    const connect = (svid?: HeldSvid) => {
      const c = connectAgentApi({ host: '127.0.0.1', port: server!.port, bundle, ...(svid ? { svid } : {}) });
      connections.push(c);
      return c.client;
    };
    const newToken = () => op!.token();
    const attest = async (token: string) => {
      const key = newKey();
      const result = await attestAgent(connect(), { type: 'join_token', payload: enc.encode(token) }, key);
      return { result, svid: { certChain: result.svid!.certChain, privateKey: key } as HeldSvid };
    };
    const createEntry = (spiffeId: string, parentId: string) => op!.createEntry(spiffeId, parentId);

    // Attest with a join token: the agent SVID verifies against the bundle.
    const first = await attest(token);
    const agentId = `spiffe://${TD}/spire/agent/join_token/${token}`;
    assert.equal(first.result.spiffeId, agentId);
    assert.equal(verifyX509Svid(first.result.svid!.certChain, bundle).id.toString(), agentId);
    await expectCode(attest(token), Code.PermissionDenied, /already used/);

    // Renew: the new SVID works, and once it is used the old one no longer does.
    const renewKey = newKey();
    const renewed = await connect(first.svid).renewAgent({ csr: csrFor(renewKey) });
    const agent: HeldSvid = { certChain: renewed.svid!.certChain, privateKey: renewKey };
    verifyX509Svid(agent.certChain, bundle);
    const client = connect(agent);
    await client.getBundles({});
    await expectCode(connect(first.svid).syncAuthorizedEntries({}), Code.PermissionDenied);

    // Entries through the CLI; the agent syncs the one parented by it.
    const [webId, otherId] = await Promise.all([
      createEntry(`spiffe://${TD}/web`, agentId),
      createEntry(`spiffe://${TD}/other`, `spiffe://${TD}/spire/agent/join_token/someone-else`),
    ]);
    const sync = await client.syncAuthorizedEntries({});
    assert.deepEqual(
      sync.entries.map((e) => [e.id, e.parentId]),
      [[webId, agentId]],
    );

    // A batch: the authorized CSR is signed, the other agent's entry refused in its item.
    const workloadKey = newKey();
    const batch = await client.batchNewX509Svid({
      params: [
        { entryId: webId, csr: csrFor(workloadKey) },
        { entryId: otherId, csr: csrFor(newKey()) },
      ],
    });
    assert.equal(batch.results[0]?.status?.code ?? 0, 0);
    assert.equal(batch.results[1]?.status?.code, Code.PermissionDenied);
    const signed = batch.results[0]!.svid!;
    const svid = X509Svid.parseRaw(
      Buffer.concat(signed.certChain.map((c) => Buffer.from(c))),
      workloadKey.export({ format: 'der', type: 'pkcs8' }),
    );
    assert.equal(svid.id.toString(), `spiffe://${TD}/web`);
    verifyX509Svid(signed.certChain, bundle);

    // A JWT-SVID that the SDK validates against the bundle.
    const jwt = await client.newJwtSvid({ entryId: webId, audience: ['e2e'] });
    const validated = await JwtSvid.parseAndValidate(jwt.svid!.token, bundle, ['e2e']);
    assert.equal(validated.id.toString(), `spiffe://${TD}/web`);

    // WatchChanges: an entry created with the CLI reaches an open stream.
    const abort = new AbortController();
    const stream = client.watchChanges({ knownRevision: sync.revision }, { signal: abort.signal });
    const notified = (async () => {
      for await (const change of stream) if (change.kind === ChangeKind.ENTRIES) return change;
      return undefined;
    })();
    const dbId = await createEntry(`spiffe://${TD}/db`, agentId);
    const change = await notified;
    abort.abort();
    assert.ok(change, 'a change notification arrived');
    assert.ok(change.revision > sync.revision);
    const delta = await client.syncAuthorizedEntries({ knownRevision: sync.revision });
    assert.deepEqual(
      delta.entries.map((e) => e.id),
      [dbId],
    );

    // Ban: renewal refused. Evict: a new token attests again.
    await op.ban(agentId);
    await expectCode(client.renewAgent({ csr: csrFor(newKey()) }), Code.PermissionDenied, /banned/);
    await op.evict(agentId);
    const second = await attest(await newToken());
    const secondClient = connect(second.svid);
    await secondClient.syncAuthorizedEntries({});

    // Restart with SIGTERM: same CA, entries and agents.
    for (const c of connections.splice(0)) c.close();
    op.close();
    assert.equal(await stopServer(server), 0, 'a graceful stop exits with 0');
    server = await startServerProcess(configPath);
    op = operatorFor(server.socketPath);
    const [bundleAfter, ids, agentIds] = await Promise.all([op.bundleJson(), op.entryIds(), op.agentIds()]);
    assert.equal(bundleAfter, bundleText, 'the same bundle after restart');
    for (const id of [webId, otherId, dbId]) assert.ok(ids.includes(id), `entry ${id} survived the restart`);
    assert.deepEqual(agentIds, [second.result.spiffeId]);
    // The agent's SVID from before the restart still works: same CA, same agent record.
    const after = connect(second.svid);
    await after.renewAgent({ csr: csrFor(newKey()) });
  } finally {
    for (const c of connections) c.close();
    op?.close();
    if (server && server.proc.exitCode === null) await stopServer(server);
    await rm(dir, { recursive: true, force: true });
  }
}

describe('steeple server end to end', { concurrency: false, timeout: 180_000 }, () => {
  const schemas: ScratchSchema[] = [];
  after(async () => {
    for (const s of schemas) await s.drop().catch(() => undefined);
  });

  it('runs the operator and agent flow on SQLite, and keeps everything across a restart', async () => {
    await serverFlow('datastore: { type: sqlite }', cliOperator);
  });

  // The CLI is covered above; here the admin client saves its start-up time (≈ 2 s a call).
  it('runs the same flow on PostgreSQL', async () => {
    const scratch = await createScratchSchema();
    schemas.push(scratch);
    await serverFlow(`datastore: { type: postgres, connection_string: "${scratch.connectionString}" }`, clientOperator);
  });

  it('refuses a bad configuration with exit code 1 and a message naming the key', async () => {
    const dir = await tempDir();
    try {
      const configPath = join(dir, 'server.yaml');
      await writeFile(configPath, `trust_domain: ${TD}\ndata_dir: ${dir}/data\nca_tll: 24h\n`);
      const run = await steeple('server', 'run', '-config', configPath);
      assert.equal(run.code, 1);
      assert.match(run.stderr, /ca_tll: unknown key \(did you mean "ca_ttl"\?\)/);
      const validate = await steeple('server', 'validate', '-config', configPath);
      assert.equal(validate.code, 1);
      assert.match(validate.stderr, /ca_tll/);

      await writeFile(configPath, `trust_domain: ${TD}\ndata_dir: ${dir}/data\n`);
      assert.equal((await steepleOk('server', 'validate', '-config', configPath)).trim(), 'configuration OK');
      const flag = await steeple('server', 'run', '-config', configPath, '-serverPort', 'http');
      assert.equal(flag.code, 1);
      assert.match(flag.stderr, /bind_port \(flag -serverPort\)/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('keeps every acknowledged entry when killed with SIGKILL during a burst of writes', async () => {
    const dir = await tempDir();
    try {
      const configPath = join(dir, 'server.yaml');
      await writeFile(
        configPath,
        serverYaml(dir, 'datastore: { type: sqlite }').replace('log_level: debug', 'log_level: warn'),
      );
      let server = await startServerProcess(configPath);
      const admin = createAdminClient(server.socketPath, { timeoutMs: 10_000 });
      const acknowledged: string[] = [];
      let n = 0;
      let killed = false;
      const writer = async () => {
        while (!killed) {
          const i = n++;
          try {
            const res = await admin.entries.createEntries({
              entries: [
                {
                  spiffeId: `spiffe://${TD}/burst/${i}`,
                  parentId: `spiffe://${TD}/spire/agent/join_token/burst`,
                  selectors: [{ type: 'unix', value: `uid:${i}` }],
                },
              ],
            });
            const id = res.results[0]?.entry?.id;
            if ((res.results[0]?.status?.code ?? 0) === 0 && id) acknowledged.push(id);
          } catch {
            return; // the server is gone
          }
        }
      };
      const writers = [writer(), writer(), writer(), writer()];
      const deadline = Date.now() + 30_000;
      while (acknowledged.length < 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.ok(acknowledged.length >= 200, `only ${acknowledged.length} writes acknowledged in 30 s`);
      server.proc.kill('SIGKILL');
      killed = true;
      assert.equal(await server.exited, 'SIGKILL');
      await Promise.all(writers);
      admin.close();

      server = await startServerProcess(configPath);
      const after = createAdminClient(server.socketPath);
      try {
        const listed = await after.entries.listEntries({});
        const present = new Set(listed.entries.map((e) => e.id));
        const lost = acknowledged.filter((id) => !present.has(id));
        assert.deepEqual(lost, [], `${lost.length} of ${acknowledged.length} acknowledged entries were lost`);
      } finally {
        after.close();
        await stopServer(server);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
