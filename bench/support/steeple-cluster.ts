/**
 * A real Steeple server and agent for benchmarks: each `steeple … run` in its own process
 * on a temp dir, the agent attested with a join token and exposing Prometheus metrics and
 * health checks on loopback ports. Everything is set up through the admin client (no CLI
 * process per step), and {@link SteepleCluster.stop} ends both processes and removes the dir.
 * @module
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { formatBundle } from '../../packages/steeple/src/cli/bundle-format.js';
import { type AdminClient, createAdminClient } from '../../packages/steeple/src/common/admin-client.js';

const ROOT = resolve(import.meta.dirname, '../..');
const MAIN = join(ROOT, 'packages/steeple/src/cli/main.ts');

type LogLine = Record<string, unknown>;

/** One `steeple` process and its JSON log. */
export interface SteepleProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves with the first log line `pred` accepts (also one seen before the call). */
  waitForLog(pred: (line: LogLine) => boolean, what: string, timeoutMs?: number): Promise<LogLine>;
  /** SIGTERM, then SIGKILL after 5 s; resolves when the process is gone. */
  stop(): Promise<void>;
}

function startSteeple(args: readonly string[], nodeArgs: readonly string[] = []): SteepleProcess {
  const child = spawn(
    process.execPath,
    [...nodeArgs, '--conditions=steeple-source', '--import', 'tsx', MAIN, ...args],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const seen: LogLine[] = [];
  const tail: string[] = [];
  const waiters = new Set<{ pred: (line: LogLine) => boolean; done: (line: LogLine) => void }>();
  const onLine = (text: string) => {
    tail.push(text);
    if (tail.length > 40) tail.shift();
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      return;
    }
    // Only lines someone may still wait for are worth keeping; the log is otherwise drained.
    if (seen.length < 200) seen.push(line);
    for (const w of [...waiters]) if (w.pred(line)) w.done(line);
  };
  // Both pipes are read to the end, so a chatty process never blocks on a full pipe.
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  return {
    child,
    pid: child.pid ?? -1,
    waitForLog(pred, what, timeoutMs = 60_000) {
      const earlier = seen.find(pred);
      if (earlier !== undefined) return Promise.resolve(earlier);
      return new Promise((resolveLine, reject) => {
        const fail = (why: string) => {
          waiters.delete(waiter);
          clearTimeout(timer);
          reject(new Error(`${what}: ${why}\n${tail.join('\n')}`));
        };
        const timer = setTimeout(() => fail(`not seen within ${timeoutMs} ms`), timeoutMs);
        const waiter = {
          pred,
          done: (line: LogLine) => {
            waiters.delete(waiter);
            clearTimeout(timer);
            resolveLine(line);
          },
        };
        waiters.add(waiter);
        void exited.then(() => {
          if (waiters.has(waiter)) fail(`the process exited (${child.exitCode ?? child.signalCode})`);
        });
      });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    },
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  await new Promise((done) => server.close(done));
  return port;
}

/** A running server and agent. */
export interface SteepleCluster {
  readonly dir: string;
  readonly trustDomain: string;
  readonly server: SteepleProcess;
  readonly agent: SteepleProcess;
  /** The agent's SPIFFE ID (parent of the entries it serves). */
  readonly agentId: string;
  /** The Workload API socket. */
  readonly workloadSocket: string;
  readonly admin: AdminClient;
  /** The agent's Prometheus text. */
  agentMetrics(): Promise<string>;
  /** Stops both processes and removes the temp dir; safe to call twice. */
  stop(): Promise<void>;
}

/** Resident set size of a process in bytes (VmRSS from /proc/<pid>/status). */
export async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kib === undefined) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(kib) * 1024;
}

/** The value of the first sample of `name` (any labels) in Prometheus text; undefined if absent. */
export function metricValue(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

export interface StartClusterOptions {
  /** Default `bench.example.org`. */
  readonly trustDomain?: string;
  /** Extra `node` options for both processes (`--cpu-prof`, say, to see where the time goes). */
  readonly nodeArgs?: readonly string[];
}

/**
 * Starts a server (SQLite in the temp dir) and an agent attested with a fresh join token,
 * and resolves once the agent reports ready (attested and synced).
 */
export async function startSteepleCluster(options: StartClusterOptions = {}): Promise<SteepleCluster> {
  const trustDomain = options.trustDomain ?? 'bench.example.org';
  const nodeArgs = options.nodeArgs ?? [];
  const dir = await mkdtemp(join(tmpdir(), 'steeple-bench-agent-'));
  await chmod(dir, 0o755);
  let server: SteepleProcess | undefined;
  let agent: SteepleProcess | undefined;
  let admin: AdminClient | undefined;
  const stopAll = async () => {
    admin?.close();
    await agent?.stop();
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const [serverPort, healthPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
    const adminSocket = join(dir, 'server', 'admin.sock');
    const workloadSocket = join(dir, 'agent', 'public', 'api.sock');
    await writeFile(
      join(dir, 'server.yaml'),
      [
        `trust_domain: ${trustDomain}`,
        `data_dir: ${dir}/server/data`,
        'bind_address: 127.0.0.1',
        `bind_port: ${serverPort}`,
        `socket_path: ${adminSocket}`,
        'log_level: info',
        '',
      ].join('\n'),
    );
    server = startSteeple(['server', 'run', '-config', join(dir, 'server.yaml')], nodeArgs);
    await server.waitForLog((l) => String(l['msg'] ?? '').startsWith('server ready'), 'server ready');
    admin = createAdminClient(adminSocket);
    const { bundle } = await admin.bundles.getBundle({});
    if (bundle === undefined) throw new Error('the server returned no bundle');
    await writeFile(join(dir, 'bootstrap.pem'), formatBundle(bundle, 'pem'));
    const { token } = await admin.agents.createJoinToken({ ttlSeconds: 600 });
    await writeFile(
      join(dir, 'agent.yaml'),
      [
        'server_address: 127.0.0.1',
        `server_port: ${serverPort}`,
        `trust_domain: ${trustDomain}`,
        `trust_bundle_path: ${join(dir, 'bootstrap.pem')}`,
        `join_token: ${token}`,
        `data_dir: ${dir}/agent/data`,
        `socket_path: ${workloadSocket}`,
        'log_level: info',
        `health_checks: { listener_enabled: true, bind_address: 127.0.0.1, bind_port: ${healthPort} }`,
        `telemetry: { prometheus: { host: 127.0.0.1, port: ${metricsPort} } }`,
        '',
      ].join('\n'),
    );
    agent = startSteeple(['agent', 'run', '-config', join(dir, 'agent.yaml')], nodeArgs);
    await agent.waitForLog((l) => l['msg'] === 'Workload API listening', 'agent Workload API');
    const deadline = Date.now() + 60_000;
    for (;;) {
      const res = await fetch(`http://127.0.0.1:${healthPort}/ready`).catch(() => undefined);
      await res?.body?.cancel();
      if (res?.status === 200) break;
      if (Date.now() > deadline) throw new Error('the agent did not become ready within 60 s');
      await new Promise((r) => setTimeout(r, 50));
    }
    let stopping: Promise<void> | undefined;
    return {
      dir,
      trustDomain,
      server,
      agent,
      agentId: `spiffe://${trustDomain}/spire/agent/join_token/${token}`,
      workloadSocket,
      admin,
      async agentMetrics() {
        const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
        return res.text();
      },
      stop() {
        stopping ??= stopAll();
        return stopping;
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
