/**
 * The agent end to end, with real processes: `steeple server run` and `steeple agent run`
 * each in their own process on a temp dir, entries made with the `steeple` CLI, and
 * workloads served over the Workload API socket — to this test process through the SDK's
 * client, to a process of another uid, and to an independent client built on Debian's
 * python3-grpcio with stubs generated from the standard proto.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Code } from '@connectrpc/connect';
import { createWorkloadApiClient, type WorkloadApiClient, type X509Context } from '@steeple/spiffe';
import { createRawWorkloadClient } from '../src/agent/testing/raw-workload-client.js';
import { eventually, StreamReader } from '../src/agent/testing/test-helpers.js';

const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const BIN = join(ROOT, 'packages/steeple/bin/steeple');
const MAIN = join(ROOT, 'packages/steeple/src/cli/main.ts');
const PYTHON_CLIENT = join(ROOT, 'packages/steeple/test/support/workload_api_client.py');
const TD = 'agent-e2e.example.org';
const UID = process.getuid?.() ?? 0;

function steeple(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(BIN, args, { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
      done({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

async function steepleOk(...args: string[]): Promise<string> {
  const r = await steeple(...args);
  assert.equal(r.code, 0, `steeple ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

/** A child process and its log lines. */
interface Proc {
  readonly proc: ChildProcess;
  readonly log: string[];
  readonly exited: Promise<number | string>;
}

/** Runs main.ts (or the agent launcher) through tsx directly, so signals reach the process itself. */
function startProcess(
  script: string,
  args: readonly string[],
  readyLine: (entry: Record<string, unknown>) => boolean,
): Promise<Proc> {
  const proc = spawn(process.execPath, ['--conditions=steeple-source', '--import', 'tsx', script, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  const exited = new Promise<number | string>((done) => proc.on('exit', (code, signal) => done(code ?? signal ?? -1)));
  return new Promise((ready, fail) => {
    let buffered = '';
    const timer = setTimeout(() => fail(new Error(`not ready after 60 s:\n${log.join('\n')}`)), 60_000);
    proc.stderr?.on('data', (chunk: Buffer) => log.push(chunk.toString()));
    proc.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        log.push(line);
        try {
          if (readyLine(JSON.parse(line))) {
            clearTimeout(timer);
            ready({ proc, log, exited });
          }
        } catch {
          // not a JSON log line
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      fail(new Error(`exited (${code}) before it was ready:\n${log.join('\n')}`));
    });
  });
}

async function stop(p: Proc | undefined): Promise<void> {
  if (p === undefined) return;
  p.proc.kill('SIGTERM');
  await p.exited;
}

function hasPythonGrpc(): boolean {
  return spawnSync('/usr/bin/python3', ['-c', 'import grpc, grpc_tools'], { stdio: 'ignore' }).status === 0;
}

function runPython(
  args: readonly string[],
  asNobody = false,
): { status: number | null; report: Record<string, unknown>; stderr: string } {
  const cmd = asNobody
    ? ['setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '/usr/bin/python3', PYTHON_CLIENT, ...args]]
    : ['/usr/bin/python3', [PYTHON_CLIENT, ...args]];
  const r = spawnSync(cmd[0] as string, cmd[1] as string[], { encoding: 'utf8', timeout: 60_000 });
  let report: Record<string, unknown> = {};
  try {
    report = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}');
  } catch {
    // reported below through stderr
  }
  return { status: r.status, report, stderr: `${r.stderr}${r.stdout}` };
}

describe('agent end to end (real server and agent processes)', () => {
  let dir: string;
  let server: Proc | undefined;
  let agent: Proc | undefined;
  let serverConfig: string;
  let agentConfig: string;
  let adminSocket: string;
  let socketPath: string;
  let healthPort: number;
  let client: WorkloadApiClient;
  const sock = () => ['-socketPath', adminSocket];
  const agentId = (token: string) => `spiffe://${TD}/spire/agent/join_token/${token}`;
  let token: string;

  const startServer = async () => {
    server = await startProcess(MAIN, ['server', 'run', '-config', serverConfig], (e) =>
      String(e['msg'] ?? '').startsWith('server ready'),
    );
  };
  const startAgentProcess = async () => {
    agent = await startProcess(
      MAIN,
      ['agent', 'run', '-config', agentConfig],
      (e) => e['msg'] === 'Workload API listening',
    );
    await eventually(
      async () => (await fetch(`http://127.0.0.1:${healthPort}/ready`).catch(() => undefined))?.status === 200,
      60_000,
      'agent /ready',
    );
  };
  const createEntry = async (spiffeId: string, ...extra: string[]) => {
    const out = await steepleOk(
      'server',
      'entry',
      'create',
      '-spiffeID',
      spiffeId,
      '-parentID',
      agentId(token),
      '-selector',
      `unix:uid:${UID}`,
      ...extra,
      ...sock(),
      '-output',
      'json',
    );
    return (JSON.parse(out) as { results: { entry: { id: string } }[] }).results[0]!.entry.id;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'st-agent-'));
    await chmod(dir, 0o755); // processes of other users must reach the socket below
    const port = await freePort();
    healthPort = await freePort();
    adminSocket = join(dir, 'admin', 'api.sock');
    socketPath = join(dir, 'public', 'api.sock');
    serverConfig = join(dir, 'server.yaml');
    await writeFile(
      serverConfig,
      `trust_domain: ${TD}\ndata_dir: ${dir}/server\nbind_address: 127.0.0.1\nbind_port: ${port}\nsocket_path: ${adminSocket}\nlog_level: info\n`,
    );
    await startServer();
    const bundlePath = join(dir, 'bootstrap.pem');
    await writeFile(bundlePath, await steepleOk('server', 'bundle', 'show', ...sock()));
    token = (
      JSON.parse(await steepleOk('server', 'token', 'generate', ...sock(), '-output', 'json')) as { token: string }
    ).token;
    agentConfig = join(dir, 'agent.yaml');
    await writeFile(
      agentConfig,
      [
        'server_address: 127.0.0.1',
        `server_port: ${port}`,
        `trust_domain: ${TD}`,
        `trust_bundle_path: ${bundlePath}`,
        `join_token: ${token}`,
        `data_dir: ${dir}/agent`,
        `socket_path: ${socketPath}`,
        'log_level: debug',
        `health_checks: { listener_enabled: true, bind_address: 127.0.0.1, bind_port: ${healthPort} }`,
        '',
      ].join('\n'),
    );
    await mkdir(join(dir, 'agent'), { recursive: true });
    await startAgentProcess();
    client = createWorkloadApiClient({ address: `unix://${socketPath}` });
  });

  after(async () => {
    await client?.close();
    await stop(agent);
    await stop(server);
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('gives the workload the SVID of an entry for its uid', async () => {
    await createEntry(`spiffe://${TD}/workload`);
    const ctx = await eventually(() => client.fetchX509Context().catch(() => undefined), 30_000, 'the first SVID');
    assert.equal(ctx.svids[0]?.id.toString(), `spiffe://${TD}/workload`);
    assert.ok(ctx.bundles.get(TD), 'the own bundle comes along');
    const jwt = await client.fetchJwtSvid({ audience: 'e2e' });
    assert.equal(jwt.id.toString(), `spiffe://${TD}/workload`);
    const validated = await client.validateJwtSvid(jwt.token, 'e2e');
    assert.equal(validated.id.toString(), `spiffe://${TD}/workload`);
  });

  it('E-2: refuses a request without the header with InvalidArgument', async () => {
    const raw = createRawWorkloadClient(socketPath, null);
    try {
      assert.equal((await new StreamReader(raw.api.fetchX509SVID({})).error()).code, Code.InvalidArgument);
    } finally {
      raw.close();
    }
  });

  it('a rotation and a new entry reach an open stream', async () => {
    const updates: X509Context[] = [];
    const abort = new AbortController();
    const watching = client.watchX509Context({ onUpdate: (ctx) => void updates.push(ctx) }, abort.signal);
    try {
      await eventually(() => updates.length > 0, 30_000, 'the first update');
      const rotating = await createEntry(`spiffe://${TD}/rotating`, '-x509SVIDTTL', '6');
      const serialsOf = (ctx: X509Context) =>
        ctx.svids.filter((s) => s.id.path === '/rotating').map((s) => new X509Certificate(s.leaf.raw).serialNumber);
      const first = await eventually(
        () => updates.map(serialsOf).find((s) => s.length > 0)?.[0],
        30_000,
        'the new entry on the stream',
      );
      await eventually(
        () => updates.some((u) => serialsOf(u).some((s) => s !== first)),
        30_000,
        'the rotated SVID on the stream',
      );
      await steepleOk('server', 'entry', 'delete', '-entryID', rotating, ...sock());
      await eventually(
        () => serialsOf(updates[updates.length - 1]!).length === 0,
        30_000,
        'the deleted entry leaving the stream',
      );
    } finally {
      abort.abort();
      await watching.catch(() => {});
    }
  });

  it('a process of another uid gets PermissionDenied', {
    skip: UID !== 0 || !hasPythonGrpc() ? 'needs root and python3-grpcio' : false,
  }, () => {
    const r = runPython(
      ['--proto-dir', join(ROOT, 'proto/spiffe/workload'), '--socket', socketPath, '--expect', 'permission-denied'],
      true,
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.report['x509'], 'PERMISSION_DENIED');
  });

  it('an independent client (python3-grpcio, stubs from the standard proto) fetches X.509 and JWT SVIDs and validates a token', (t) => {
    if (!hasPythonGrpc()) {
      if (process.env['CI']) assert.fail('python3-grpcio and python3-grpc-tools must be installed (see .ci/run)');
      t.skip('python3-grpcio not installed');
      return;
    }
    const base = ['--proto-dir', join(ROOT, 'proto/spiffe/workload'), '--socket', socketPath, '--audience', 'py'];
    for (const extra of [[], ['--authority', encodeURIComponent(socketPath)]]) {
      const r = runPython([...base, ...extra]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal((r.report['x509'] as { spiffe_id: string }).spiffe_id, `spiffe://${TD}/workload`);
      assert.deepEqual((r.report['validate'] as { aud: string[] }).aud, ['py']);
      assert.deepEqual(r.report['jwt_bundles'], { [`spiffe://${TD}`]: ['jwt-svid'] });
    }
  });

  it('keeps serving the cached SVID while the server is down, and resumes when it is back', async () => {
    const updates: X509Context[] = [];
    const abort = new AbortController();
    const watching = client.watchX509Context({ onUpdate: (ctx) => void updates.push(ctx) }, abort.signal);
    try {
      await eventually(() => updates.length > 0, 30_000, 'the first update');
      await stop(server);
      server = undefined;
      const ctx = await client.fetchX509Context();
      assert.equal(ctx.svids[0]?.id.toString(), `spiffe://${TD}/workload`);
      await startServer();
      await createEntry(`spiffe://${TD}/after-restart`);
      await eventually(
        () => updates.some((u) => u.svids.some((s) => s.id.path === '/after-restart')),
        60_000,
        'an entry made after the server came back',
      );
    } finally {
      abort.abort();
      await watching.catch(() => {});
    }
  });

  it('a restarted agent serves again without a new join token', async () => {
    await stop(agent);
    agent = undefined;
    await startAgentProcess();
    assert.ok(!agent!.log.some((l) => l.includes('"node attested"')), 'no second attestation');
    assert.ok(agent!.log.some((l) => l.includes('loaded the agent SVID from data_dir')));
    const ctx = await eventually(
      () => client.fetchX509Context().catch(() => undefined),
      30_000,
      'an SVID after the restart',
    );
    assert.equal(ctx.svids[0]?.id.toString(), `spiffe://${TD}/workload`);
  });
});
