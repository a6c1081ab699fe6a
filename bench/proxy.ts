/**
 * The mTLS proxy beside nginx and HAProxy (when installed) and a plain node:tls pipe,
 * each terminating mTLS in front of the same plaintext HTTP backend on this machine:
 * full mTLS handshakes per second (no resumption; each connection carries one request),
 * keep-alive requests per second with p50/p99 latency at 50 connections, the proxy's CPU
 * time per request and per handshake, and its RSS — each with its ratio to nginx — and
 * handshakes per second when the clients resume their TLS sessions.
 *
 * The proxy under test runs alone on core 0 (`taskset`); the load generator (Node, with
 * client certificates — wrk and h2load have no client-certificate option) and the backend
 * share core 1. Each row says which side ran out of CPU first. Each figure is the best of
 * BENCH_PROXY_RUNS (default 5) runs of BENCH_PROXY_SECONDS (default 5) seconds, figure by
 * figure (the most requests or handshakes per second, the lowest p50, p99 and CPU per
 * request or handshake, each from whichever run had it; the p99 of 5-second runs on a shared
 * 2-core machine swings by ±15 % from run to run), and the
 * contenders' runs are interleaved round by round (all are started first), so that a slow
 * spell of a shared machine falls on every contender alike.
 *
 * Run: `npm run bench -- proxy`, or `node --conditions=steeple-source --import tsx bench/proxy.ts`.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createTestCa } from '@steeple/spiffe/testing';
import { fmt, printTable, type Row } from './table.js';

const ROOT = resolve(import.meta.dirname, '..');
/**
 * Steeple runs as `steeple proxy run` does from the production build (plain Node, see
 * scripts/build.mjs), built afresh from the current sources into the bench's temp dir.
 * BENCH_PROXY_FROM_SOURCE=1 runs the TypeScript sources under tsx instead (profiles then
 * name TypeScript functions) and adds the pipe under the same loader; BENCH_PROXY_MAIN runs
 * another copy of the proxy's entry point under tsx (an older tree, for before/after).
 */
const FROM_SOURCE = process.env['BENCH_PROXY_FROM_SOURCE'] === '1' || process.env['BENCH_PROXY_MAIN'] !== undefined;
const PROXY_MAIN = process.env['BENCH_PROXY_MAIN'] ?? join(ROOT, 'packages/steeple/test/support/proxy-main.ts');

/**
 * The Node arguments that start `steeple` (before `proxy run …`): the production build of
 * the current sources, made in `dir`, or the sources under tsx (see FROM_SOURCE).
 */
export function steepleCommand(dir: string): string[] {
  if (FROM_SOURCE) return [...TSX_FLAGS, PROXY_MAIN];
  const outdir = join(dir, 'steeple-dist');
  execFileSync(process.execPath, [join(ROOT, 'scripts/build.mjs'), '--outdir', outdir], { cwd: ROOT, stdio: 'ignore' });
  return [join(outdir, 'main.js')];
}
const CONNECTIONS = 50;
const HANDSHAKE_CONCURRENCY = 32;
const SECONDS = Number(process.env['BENCH_PROXY_SECONDS'] ?? 5);
const RUNS = Number(process.env['BENCH_PROXY_RUNS'] ?? 5);
/**
 * Seconds of load each contender gets before the measured rounds, per mode. The Node rows
 * take several seconds of load to reach their steady state (the Steeple HTTP row's CPU per
 * request fell 17.8 → 17.5 → 16.6 µs over three rounds after a 1-second warm-up).
 */
const WARMUP_SECONDS = Number(process.env['BENCH_PROXY_WARMUP_SECONDS'] ?? 1);
/**
 * Seconds of load at the start of every run that are not measured (BENCH_PROXY_RAMP_SECONDS,
 * default 1): the load generator's connections handshake and its own code warms up (see
 * LOADGEN). Latency, requests and the proxy's CPU time are all taken after it.
 */
const RAMP_SECONDS = Number(process.env['BENCH_PROXY_RAMP_SECONDS'] ?? 1);
/** Comma-separated parts of contender names to run (e.g. `pipe,http`); all when unset. */
const ONLY = (process.env['BENCH_PROXY_ONLY'] ?? '')
  .split(',')
  .map((s) => s.trim().toLowerCase())
  .filter((s) => s !== '');
/** Whether BENCH_PROXY_ONLY selects the contender named `name` (shared with proxy-instructions). */
export function benchProxyWanted(name: string): boolean {
  return ONLY.length === 0 || ONLY.some((o) => name.toLowerCase().includes(o));
}
/** BENCH_PROXY_VERBOSE=1 prints every run's figures on stderr as it ends. */
const VERBOSE = process.env['BENCH_PROXY_VERBOSE'] === '1';
/**
 * BENCH_PROXY_TRACE_DIR=dir: the load generator writes, per run, `<contender>-<mode>-<round>.json`
 * there: for each 100 ms of the run, the requests completed and their p50, p99 and maximum
 * latency (round 0 is the warm-up). Shows where in a run the slow requests are.
 */
const TRACE_DIR = process.env['BENCH_PROXY_TRACE_DIR'] ?? '';
/**
 * Which figures to measure: `keepalive`, `handshake` (full handshakes) and `resume`
 * (handshakes resuming a TLS session; every contender issues session tickets by default).
 */
const MODES = (process.env['BENCH_PROXY_MODES'] ?? 'keepalive,handshake,resume').split(',').map((s) => s.trim());
type Mode = 'keepalive' | 'handshake' | 'resume';
/** Extra Node flags for the Steeple processes (and pipe (tsx)); e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`. */
const STEEPLE_NODE_FLAGS = (process.env['BENCH_PROXY_NODE_FLAGS'] ?? '').split(/\s+/).filter((s) => s !== '');
/**
 * V8 flags the Steeple rows run with, as the `steeple` launcher starts the proxy: a young
 * generation capped at 1 MiB semi-spaces instead of V8's 16 MiB default keeps it small
 * under load, at the same instructions per request, and the old generation grows 20 %
 * between full collections (docs/proxy.md, "Memory").
 */
export const STEEPLE_V8_FLAGS = (
  process.env['BENCH_PROXY_V8_FLAGS'] ?? '--max-semi-space-size=1 --heap-growing-percent=20'
)
  .split(/\s+/)
  .filter((s) => s !== '');
/**
 * The environment the Steeple rows run with, as the `steeple` launcher starts the proxy:
 * glibc's malloc limited to 2 arenas (`MALLOC_ARENA_MAX`; BENCH_PROXY_MALLOC_ARENA_MAX
 * replaces the value, empty leaves glibc's default of 8 per core).
 */
const STEEPLE_MALLOC_ARENA_MAX = process.env['BENCH_PROXY_MALLOC_ARENA_MAX'] ?? '2';
function steepleEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  if (STEEPLE_MALLOC_ARENA_MAX === '') delete env['MALLOC_ARENA_MAX'];
  else env['MALLOC_ARENA_MAX'] = STEEPLE_MALLOC_ARENA_MAX;
  return env;
}
/** The TypeScript loader for BENCH_PROXY_FROM_SOURCE=1; the "pipe (tsx)" row carries the same. */
const TSX_FLAGS = ['--conditions=steeple-source', '--import', 'tsx'];

// ---- helper processes, written as plain .mjs so they run without a TypeScript loader ----

/** A plaintext HTTP/1.1 backend: answers every request head with a fixed 200 response. */
export const BACKEND = `
import net from 'node:net';
const body = 'hello from the backend\\n';
const res = Buffer.from('HTTP/1.1 200 OK\\r\\ncontent-type: text/plain\\r\\ncontent-length: ' + body.length + '\\r\\n\\r\\n' + body);
const server = net.createServer({ noDelay: true }, (s) => {
  let carry = '';
  s.on('data', (d) => {
    const text = carry + d.toString('latin1');
    let n = 0, at = 0, i;
    while ((i = text.indexOf('\\r\\n\\r\\n', at)) >= 0) { n++; at = i + 4; }
    carry = text.slice(at);
    if (n === 1) s.write(res); else if (n > 1) s.write(Buffer.concat(Array(n).fill(res)));
  });
  s.on('error', () => {});
});
server.listen(Number(process.argv[2]), '127.0.0.1', () => process.stdout.write('ready\\n'));
`;

/** The baseline: node:tls terminating mTLS and piping bytes to the backend (Node's defaults). */
/** The plain node:tls pipe the Steeple rows are compared with (shared with proxy-instructions). */
export const NODE_PIPE = `
import fs from 'node:fs'; import net from 'node:net'; import tls from 'node:tls';
const [port, backend, cert, key, ca] = process.argv.slice(2);
const server = tls.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key), ca: fs.readFileSync(ca),
  requestCert: true, rejectUnauthorized: true }, (s) => {
  const b = net.connect({ port: Number(backend), host: '127.0.0.1', noDelay: true });
  s.setNoDelay(true);
  s.pipe(b); b.pipe(s);
  s.on('error', () => b.destroy()); b.on('error', () => s.destroy());
});
server.listen(Number(port), '127.0.0.1', () => process.stdout.write('ready\\n'));
`;

/**
 * The load generator. keepalive: CONNECTIONS connections, each sending GET after GET;
 * handshake: new connections (full handshake, no session reuse), one request each;
 * resume: the same, but each connection offers the TLS session its loop's last one got.
 * The first RAMP seconds are load without measurement: the generator is a new Node process
 * per run, and while its 50 connections handshake and its own code is still cold, the
 * first ~300 ms of every run had a p99 of 25–55 ms against 2–5 ms after it, for every
 * contender (BENCH_PROXY_TRACE_DIR shows it) — about 2 % of a run's requests, enough to
 * decide its p99. At the end of the ramp it prints `measuring` (the parent reads the proxy's
 * CPU time then), measures for `seconds`, and prints one JSON line: requests, seconds,
 * latency percentiles, its own CPU time.
 */
export const LOADGEN = `
import fs from 'node:fs'; import tls from 'node:tls';
const [mode, port, seconds, conns, cert, key, ca, ramp, trace] = process.argv.slice(2);
const ctx = tls.createSecureContext({ cert: fs.readFileSync(cert), key: fs.readFileSync(key), ca: fs.readFileSync(ca) });
const opts = { host: '127.0.0.1', port: Number(port), secureContext: ctx, rejectUnauthorized: true,
  checkServerIdentity: () => undefined, ALPNProtocols: ['http/1.1'] };
const req = Buffer.from('GET /api/items HTTP/1.1\\r\\nhost: bench\\r\\nuser-agent: steeple-bench\\r\\n\\r\\n');
const reqClose = Buffer.from('GET /api/items HTTP/1.1\\r\\nhost: bench\\r\\nconnection: close\\r\\n\\r\\n');
const lat = new Float64Array(4_000_000); const at = new Float64Array(trace ? lat.length : 0); let nlat = 0;
let done = 0; let errors = 0; let reused = 0; let stop = false; let measuring = false; let start = 0;
function record(t0) {
  if (!measuring) return;
  const now = performance.now(); done++;
  if (nlat < lat.length) { if (trace) at[nlat] = now - start; lat[nlat++] = now - t0; }
}
function complete(buf) {
  const end = buf.indexOf('\\r\\n\\r\\n'); if (end < 0) return -1;
  const m = /content-length:\\s*(\\d+)/i.exec(buf.toString('latin1', 0, end));
  const total = end + 4 + (m ? Number(m[1]) : 0);
  return buf.length >= total ? total : -1;
}
function keepalive() {
  const s = tls.connect(opts); let buf = Buffer.alloc(0); let t0 = 0;
  s.setNoDelay(true);
  const send = () => { if (stop) { s.destroy(); return; } t0 = performance.now(); s.write(req); };
  s.on('secureConnect', send);
  s.on('data', (d) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    const n = complete(buf); if (n < 0) return;
    buf = buf.subarray(n); record(t0); send();
  });
  s.on('error', () => { if (measuring) errors++; });
  s.on('close', () => { if (!stop) setTimeout(keepalive, 10); });
}
// resume: like handshake, but each loop offers the session its last connection got (tickets).
function resume(session) {
  if (stop) return;
  const t0 = performance.now();
  const s = tls.connect({ ...opts, session }); let buf = Buffer.alloc(0); let ok = false; let next = session;
  s.on('session', (t) => { next = t; });
  s.on('secureConnect', () => { if (measuring && s.isSessionReused()) reused++; s.write(reqClose); });
  s.on('data', (d) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    if (!ok && complete(buf) >= 0) { ok = true; record(t0); s.destroy(); }
  });
  s.on('error', () => { if (!ok && measuring) errors++; });
  s.on('close', () => resume(next));
}
function handshake() {
  if (stop) return;
  const t0 = performance.now();
  const s = tls.connect(opts); let buf = Buffer.alloc(0); let ok = false;
  s.on('secureConnect', () => s.write(reqClose));
  s.on('data', (d) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    if (!ok && complete(buf) >= 0) { ok = true; record(t0); s.destroy(); }
  });
  s.on('error', () => { if (!ok && measuring) errors++; });
  s.on('close', () => handshake());
}
// BENCH_PROXY_TRACE_DIR: per 100 ms of the run, the requests completed and their p50/p99/max latency.
function writeTrace(secs) {
  const slices = Math.ceil(secs * 10); const out = [];
  for (let k = 0; k < slices; k++) {
    const xs = []; for (let i = 0; i < nlat; i++) if (Math.floor(at[i] / 100) === k) xs.push(lat[i]);
    xs.sort((a, b) => a - b);
    const q = (f) => xs.length ? +xs[Math.min(xs.length - 1, Math.floor(f * xs.length))].toFixed(3) : 0;
    out.push({ t: k / 10, n: xs.length, p50: q(0.5), p99: q(0.99), max: xs.length ? +xs[xs.length - 1].toFixed(3) : 0 });
  }
  fs.writeFileSync(trace, JSON.stringify(out));
}
for (let i = 0; i < Number(conns); i++) (mode === 'keepalive' ? keepalive : mode === 'resume' ? resume : handshake)();
setTimeout(() => {
  process.stdout.write('measuring\\n');
  measuring = true; start = performance.now(); const cpu0 = process.cpuUsage();
  setTimeout(() => {
    stop = true; measuring = false;
    const secs = (performance.now() - start) / 1000; const cpu = process.cpuUsage(cpu0);
    if (trace) writeTrace(secs);
    const sorted = lat.subarray(0, nlat).sort();
    const pick = (q) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : 0;
    process.stdout.write(JSON.stringify({ done, errors, reused, secs, p50: pick(0.5), p99: pick(0.99),
      cpuMs: (cpu.user + cpu.system) / 1000 }) + '\\n');
    process.exit(0);
  }, Number(seconds) * 1000);
}, Number(ramp) * 1000);
`;

interface LoadResult {
  readonly done: number;
  readonly errors: number;
  /** resume mode: how many of the measured connections resumed a session. */
  readonly reused: number;
  readonly secs: number;
  readonly p50: number;
  readonly p99: number;
  readonly cpuMs: number;
}

interface Contender {
  readonly name: string;
  readonly note: string;
  /** The modes this contender runs in (default: all of MODES). */
  readonly modes?: readonly Mode[];
  start(port: number): Promise<ChildProcess>;
}

function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const pinning = cpus().length >= 2 && hasCommand('taskset');
const PROXY_CPU = '0';
const LOAD_CPU = '1';

function pinned(
  cpu: string,
  cmd: string,
  args: string[],
  extra: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): ChildProcess {
  const [file, argv] = pinning ? ['taskset', ['-c', cpu, cmd, ...args]] : [cmd, args];
  return spawn(file as string, argv as string[], { stdio: ['ignore', 'pipe', 'pipe'], ...extra });
}

/**
 * The policy the Steeple rows run with: a DENY rule the requests never match (a path rule
 * on HTTP, a trust-domain rule on TCP), then an ALLOW for the load generator's ID.
 */
export function benchPolicy(protocol: 'tcp' | 'http'): string {
  return `policies:
  - name: ${protocol === 'http' ? 'no-admin' : 'no-foreigners'}
    action: DENY
    rules:
      - ${protocol === 'http' ? 'to: [{ operation: { paths: ["/admin*"] } }]' : 'from: [{ source: { notTrustDomains: [example.org] } }]'}
  - name: loadgen
    action: ALLOW
    rules:
      - from: [{ source: { principals: ["spiffe://example.org/ns/bench/sa/*"] } }]
`;
}

/** A Steeple proxy configuration with one STRICT inbound listener in front of the backend. */
export function benchProxyConfig(o: {
  readonly port: number;
  readonly backendPort: number;
  readonly protocol: 'tcp' | 'http';
  readonly identity: { readonly cert: string; readonly key: string; readonly bundle: string };
  /** Policy file; with it, the audit log goes to `audit`. Without, no policy and no audit. */
  readonly policy: string | undefined;
  readonly audit: string | undefined;
  /** Let callers resume TLS sessions (session tickets); the proxy's default is off. */
  readonly sessionResumption?: boolean;
}): string {
  const policyAndAudit =
    o.policy === undefined || o.audit === undefined
      ? 'audit: { output: none }'
      : `policy: { file: ${o.policy} }\naudit: { output: file, path: ${o.audit}, max_size_bytes: 104857600 }`;
  return `log_level: warn
identity: { files: { cert: ${o.identity.cert}, key: ${o.identity.key}, bundle: ${o.identity.bundle} } }
inbound:
  - { name: bench, listen: "127.0.0.1:${o.port}", target: "127.0.0.1:${o.backendPort}", protocol: ${o.protocol}, mode: STRICT${o.sessionResumption === true ? ', session_resumption: true' : ''} }
${policyAndAudit}
`;
}

export async function freePort(): Promise<number> {
  return new Promise((r) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => r(p));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, what: string): Promise<void> {
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${what} exited: ${stderr.trim()}`);
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        r(true);
      });
      s.once('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} did not listen on ${port}: ${stderr.trim()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** CPU time (ms) and RSS (bytes) of a process and its descendants, from /proc. */
function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    try {
      const tasks = readFileSync(`/proc/${out[i]}/task/${out[i]}/children`, 'utf8').trim();
      if (tasks !== '') out.push(...tasks.split(/\s+/).map(Number));
    } catch {
      /* gone */
    }
  }
  return out;
}

function cpuMs(pid: number): number {
  const tick = 100; // USER_HZ on Linux
  let total = 0;
  for (const p of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += ((Number(fields[11]) + Number(fields[12])) * 1000) / tick;
    } catch {
      /* gone */
    }
  }
  return total;
}

function rssBytes(pid: number): number {
  let total = 0;
  for (const p of processTree(pid)) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) total += Number(m[1]) * 1024;
    } catch {
      /* gone */
    }
  }
  return total;
}

/**
 * One run of the load generator against `port`: RAMP seconds of unmeasured load, then
 * `seconds` measured. `onMeasuring` is called when the measured part begins.
 */
async function load(
  dir: string,
  mode: Mode,
  port: number,
  seconds: number,
  client: { cert: string; key: string; ca: string },
  onMeasuring: () => void,
  trace = '',
): Promise<LoadResult> {
  const conns = mode === 'keepalive' ? CONNECTIONS : HANDSHAKE_CONCURRENCY;
  const child = pinned(LOAD_CPU, process.execPath, [
    join(dir, 'loadgen.mjs'),
    mode,
    String(port),
    String(seconds),
    String(conns),
    client.cert,
    client.key,
    client.ca,
    String(RAMP_SECONDS),
    trace,
  ]);
  let out = '';
  let err = '';
  let measuring = false;
  child.stdout?.on('data', (d) => {
    out += d;
    if (!measuring && out.includes('measuring\n')) {
      measuring = true;
      onMeasuring();
    }
  });
  child.stderr?.on('data', (d) => {
    err += d;
  });
  await new Promise((r) => child.on('close', r));
  const line = out.trim().split('\n').pop() ?? '';
  if (!measuring || !line.startsWith('{')) throw new Error(`load generator failed: ${err.trim()}`);
  return JSON.parse(line) as LoadResult;
}

interface Measured {
  readonly name: string;
  readonly note: string;
  readonly handshakes: number;
  readonly handshakeCpuUs: number;
  readonly handshakeBottleneck: string;
  /** Handshakes per second when clients resume (0 when not measured). */
  readonly resumed: number;
  readonly resumedCpuUs: number;
  /** Share of the resume mode's connections that did resume. */
  readonly resumedShare: number;
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly requestCpuUs: number;
  readonly rpsBottleneck: string;
  readonly rss: number;
  readonly errors: number;
  /** The modes this contender was measured in. */
  readonly ran: readonly Mode[];
}

function bottleneck(proxyCpuMs: number, load: LoadResult): string {
  const wall = load.secs * 1000;
  const proxy = proxyCpuMs / wall;
  const gen = load.cpuMs / wall;
  const pct = (x: number) => `${Math.round(x * 100)}%`;
  const side = proxy >= 0.9 ? 'proxy' : gen >= 0.85 ? 'load gen' : 'neither';
  return `${side} (proxy ${pct(proxy)}, load ${pct(gen)})`;
}

/** One keep-alive or handshake run of a contender, with the proxy CPU it took. */
interface Run {
  res: LoadResult;
  cpu: number;
}

/** A started contender and what has been measured of it. */
interface Running {
  readonly c: Contender;
  readonly proc: ChildProcess;
  readonly port: number;
  readonly keepalive: Run[];
  readonly handshake: Run[];
  readonly resume: Run[];
  rss: number;
}

const NONE: Run = { res: { done: 0, errors: 0, reused: 0, secs: 1, p50: 0, p99: 0, cpuMs: 0 }, cpu: 0 };

async function stop(proc: ChildProcess): Promise<void> {
  proc.kill('SIGTERM');
  await new Promise((r) => {
    if (proc.exitCode !== null || proc.signalCode !== null) r(undefined);
    else proc.on('close', r);
  });
}

/**
 * Measures every contender, interleaved: all are started (idle ones take no CPU), warmed
 * up, and then each round runs every contender once per figure, keeping each one's best
 * run. A slow spell of a shared machine then falls on all contenders alike instead of on
 * whichever happened to run during it.
 */
async function measureAll(
  dir: string,
  contenders: readonly Contender[],
  client: { cert: string; key: string; ca: string },
): Promise<Measured[]> {
  const running: Running[] = [];
  try {
    for (const c of contenders) {
      const port = await freePort();
      const proc = await c.start(port);
      running.push({ c, proc, port, keepalive: [], handshake: [], resume: [], rss: 0 });
      await waitForPort(port, proc, c.name);
    }
    const run = async (r: Running, mode: Mode, seconds: number, round: number) => {
      const pid = r.proc.pid as number;
      let cpu0 = 0;
      const trace =
        TRACE_DIR === '' ? '' : join(TRACE_DIR, `${r.c.name.replace(/[^A-Za-z0-9+]+/g, '-')}-${mode}-${round}.json`);
      const res = await load(dir, mode, r.port, seconds, client, () => (cpu0 = cpuMs(pid)), trace);
      return { res, cpu: cpuMs(pid) - cpu0 };
    };
    for (const mode of ['keepalive', 'handshake', 'resume'] as const) {
      if (!MODES.includes(mode)) continue;
      const inMode = running.filter((r) => r.c.modes === undefined || r.c.modes.includes(mode));
      for (const r of inMode) await run(r, mode, WARMUP_SECONDS, 0); // warm-up: JIT, pools, heap sizes
      for (let i = 0; i < RUNS; i++) {
        for (const r of inMode) {
          const one = await run(r, mode, SECONDS, i + 1);
          r[mode].push(one);
          if (VERBOSE) {
            const unit = mode === 'keepalive' ? 'req' : mode === 'resume' ? 'resumed hs' : 'hs';
            process.stderr.write(
              `${r.c.name} ${mode} round ${i + 1}: ${fmt(one.res.done / one.res.secs)} ${unit}/s, p50 ${one.res.p50.toFixed(2)} ms, p99 ${one.res.p99.toFixed(2)} ms, ${fmt((one.cpu * 1000) / Math.max(1, one.res.done))} µs CPU/${unit}\n`,
            );
          }
        }
      }
      // RSS after the keep-alive load (HTTP modes keep more in the young generation under load).
      if (mode === 'keepalive') for (const r of running) r.rss = rssBytes(r.proc.pid as number);
    }
    if (!MODES.includes('keepalive')) for (const r of running) r.rss = rssBytes(r.proc.pid as number);
  } finally {
    await Promise.all(running.map((r) => stop(r.proc)));
  }
  return running.map(({ c, keepalive, handshake, resume, rss }) => {
    // Each figure is its own best over the runs (the most requests, the lowest latency and
    // CPU), as the table's title says; the bottleneck is the one of the run with the most.
    const ka = keepalive.length > 0 ? keepalive : [NONE];
    const hs = handshake.length > 0 ? handshake : [NONE];
    const rs = resume.length > 0 ? resume : [NONE];
    const rate = (b: Run) => b.res.done / b.res.secs;
    const cpuUs = (b: Run) => (b.cpu * 1000) / Math.max(1, b.res.done);
    const most = (runs: Run[]) => runs.reduce((a, b) => (rate(b) > rate(a) ? b : a));
    const least = (runs: Run[], f: (b: Run) => number) => Math.min(...runs.map(f));
    const kaTop = most(ka);
    const hsTop = most(hs);
    const rsTop = most(rs);
    return {
      name: c.name,
      note: c.note,
      handshakes: rate(hsTop),
      handshakeCpuUs: least(hs, cpuUs),
      handshakeBottleneck: bottleneck(hsTop.cpu, hsTop.res),
      resumed: rate(rsTop),
      resumedCpuUs: least(rs, cpuUs),
      resumedShare: rsTop.res.reused / Math.max(1, rsTop.res.done),
      rps: rate(kaTop),
      p50: least(ka, (b) => b.res.p50),
      p99: least(ka, (b) => b.res.p99),
      requestCpuUs: least(ka, cpuUs),
      rpsBottleneck: bottleneck(kaTop.cpu, kaTop.res),
      rss,
      errors: [...ka, ...hs, ...rs].reduce((n, b) => n + b.res.errors, 0),
      ran: (['keepalive', 'handshake', 'resume'] as const).filter(
        (m) => ({ keepalive, handshake, resume })[m].length > 0,
      ),
    };
  });
}

export async function benchProxy(): Promise<Row[]> {
  const dir = mkdtempSync(join(tmpdir(), 'steeple-bench-proxy-'));
  const ca = createTestCa({ trustDomain: 'example.org' });
  const serverSvid = ca.issueX509Svid('spiffe://example.org/ns/bench/sa/backend', { ttlSeconds: 86_400 });
  const clientSvid = ca.issueX509Svid('spiffe://example.org/ns/bench/sa/loadgen', { ttlSeconds: 86_400 });
  const write = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text, { mode: 0o600 });
    return p;
  };
  const caPem = write('ca.pem', ca.x509Bundle().marshal());
  const s = serverSvid.marshal();
  const serverCert = write('server.pem', s.certificates);
  const serverKey = write('server.key', s.privateKey);
  write('server-combined.pem', s.certificates + s.privateKey);
  const cl = clientSvid.marshal();
  const client = { cert: write('client.pem', cl.certificates), key: write('client.key', cl.privateKey), ca: caPem };
  write('backend.mjs', BACKEND);
  write('node-pipe.mjs', NODE_PIPE);
  write('loadgen.mjs', LOADGEN);

  const backendPort = await freePort();
  const backend = pinned(LOAD_CPU, process.execPath, [join(dir, 'backend.mjs'), String(backendPort)]);
  await waitForPort(backendPort, backend, 'backend');

  const steepleArgs = steepleCommand(dir);
  const steeple = (
    name: string,
    protocol: 'tcp' | 'http',
    withPolicy: boolean,
    sessionResumption = false,
    modes?: readonly Mode[],
  ): Contender => ({
    name,
    note: `${withPolicy ? 'policy + audit to file' : 'no policy, audit off'}${sessionResumption ? ', session_resumption: true' : ''}; ${FROM_SOURCE ? 'sources under tsx' : 'production build, plain node'}${STEEPLE_V8_FLAGS.length > 0 ? `, ${STEEPLE_V8_FLAGS.join(' ')}` : ''}`,
    ...(modes === undefined ? {} : { modes }),
    start: async (port) => {
      const config = write(
        `${name}.yaml`,
        benchProxyConfig({
          port,
          backendPort,
          protocol,
          identity: { cert: serverCert, key: serverKey, bundle: caPem },
          policy: withPolicy ? write(`${name}-policy.yaml`, benchPolicy(protocol)) : undefined,
          audit: withPolicy ? join(dir, `${name}-audit.log`) : undefined,
          sessionResumption,
        }),
      );
      return pinned(
        PROXY_CPU,
        process.execPath,
        [...STEEPLE_V8_FLAGS, ...STEEPLE_NODE_FLAGS, ...steepleArgs, 'proxy', 'run', '-config', config],
        { cwd: ROOT, env: steepleEnv() },
      );
    },
  });

  const contenders: Contender[] = [];
  if (hasCommand('nginx')) {
    contenders.push({
      name: 'nginx',
      note: `${execFileSync('sh', ['-c', 'nginx -v 2>&1']).toString().trim().replace('nginx version: ', '')}, 1 worker, defaults`,
      start: async (port) => {
        const conf = write(
          `nginx-${port}.conf`,
          `worker_processes 1;
daemon off;
pid ${dir}/nginx-${port}.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  upstream app { server 127.0.0.1:${backendPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${serverCert};
    ssl_certificate_key ${serverKey};
    ssl_client_certificate ${caPem};
    ssl_verify_client on;
    keepalive_requests 10000000;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`,
        );
        return pinned(PROXY_CPU, 'nginx', ['-c', conf, '-e', join(dir, 'nginx-error.log')]);
      },
    });
  }
  if (hasCommand('haproxy')) {
    contenders.push({
      name: 'HAProxy',
      note: `${execFileSync('haproxy', ['-v']).toString().split('\n')[0]?.split(' ')[2] ?? ''}, nbthread 1, defaults`,
      start: async (port) => {
        const conf = write(
          `haproxy-${port}.cfg`,
          `global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend fe
  bind 127.0.0.1:${port} ssl crt ${join(dir, 'server-combined.pem')} ca-file ${caPem} verify required
  default_backend be
backend be
  server app 127.0.0.1:${backendPort}
`,
        );
        return pinned(PROXY_CPU, 'haproxy', ['-db', '-f', conf]);
      },
    });
  }
  const pipeArgs = (port: number) => [
    join(dir, 'node-pipe.mjs'),
    String(port),
    String(backendPort),
    serverCert,
    serverKey,
    caPem,
  ];
  contenders.push({
    name: 'node:tls pipe',
    note: `Node ${process.version}, tls.createServer + pipe, defaults`,
    start: async (port) => pinned(PROXY_CPU, process.execPath, pipeArgs(port)),
  });
  if (FROM_SOURCE) {
    contenders.push({
      name: 'node:tls pipe (tsx)',
      note: 'the same pipe under the tsx loader the Steeple rows use: the fair RSS baseline',
      start: async (port) =>
        pinned(PROXY_CPU, process.execPath, [...STEEPLE_NODE_FLAGS, ...TSX_FLAGS, ...pipeArgs(port)], { cwd: ROOT }),
    });
  }
  contenders.push(steeple('Steeple tcp', 'tcp', false));
  contenders.push(steeple('Steeple tcp+policy', 'tcp', true));
  contenders.push(steeple('Steeple http+policy', 'http', true));
  // Session resumption is off by default (tickets cost every full handshake ≈ 29 %): this
  // row has it on, and runs only where it matters, the resumed handshakes.
  if (MODES.includes('resume')) {
    contenders.push(steeple('Steeple http+policy+resumption', 'http', true, true, ['resume']));
  }

  let results: Measured[];
  try {
    const wanted = (c: Contender) => benchProxyWanted(c.name);
    results = await measureAll(dir, contenders.filter(wanted), client);
  } finally {
    backend.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }

  const nginx = results.find((r) => r.name === 'nginx');
  const pipe = results.find((r) => r.name === 'node:tls pipe');
  const ratio = (v: number, base: number | undefined, higherIsBetter = true) =>
    base === undefined || base === 0 ? '' : `${Math.round(((higherIsBetter ? v / base : base / v) || 0) * 100)} %`;
  const rows: Row[] = results.map((r) => {
    // A row that did not run in a mode (the resumption row runs only resumed handshakes) shows dashes.
    const ka = r.ran.includes('keepalive');
    const hs = r.ran.includes('handshake');
    const rs = r.ran.includes('resume');
    const show = (ran: boolean, text: string) => (ran ? text : '—');
    return {
      proxy: r.name,
      'handshakes/s': show(hs, fmt(r.handshakes)),
      'vs nginx': show(hs, ratio(r.handshakes, nginx?.handshakes)),
      'vs pipe': show(hs, ratio(r.handshakes, pipe?.handshakes)),
      'keep-alive req/s': show(ka, fmt(r.rps)),
      'vs nginx ': show(ka, ratio(r.rps, nginx?.rps)),
      'vs pipe ': show(ka, ratio(r.rps, pipe?.rps)),
      'p50 ms': show(ka, r.p50.toFixed(2)),
      'p99 ms': show(ka, r.p99.toFixed(2)),
      'CPU µs/req': show(ka, fmt(r.requestCpuUs)),
      'CPU µs/handshake': show(hs, fmt(r.handshakeCpuUs)),
      'RSS MiB': show(ka, (r.rss / 1048576).toFixed(1)),
      ...(MODES.includes('resume')
        ? {
            'resumed hs/s': show(rs, fmt(r.resumed)),
            'vs nginx  ': show(rs, ratio(r.resumed, nginx?.resumed)),
            'vs pipe  ': show(rs, ratio(r.resumed, pipe?.resumed)),
            'CPU µs/resumed hs': show(rs, fmt(r.resumedCpuUs)),
            'did resume': show(rs, `${Math.round(r.resumedShare * 100)} %`),
          }
        : {}),
      'bottleneck (keep-alive)': show(ka, r.rpsBottleneck),
      'bottleneck (handshakes)': show(hs, r.handshakeBottleneck),
      errors: r.errors,
      setup: r.note,
    };
  });
  if (!pinning) rows.push({ proxy: 'note: taskset or a second core is missing; nothing was pinned' });
  for (const missing of ['nginx', 'haproxy'].filter((c) => !hasCommand(c))) {
    rows.push({ proxy: `note: ${missing} is not installed; its row is missing (apt-get install nginx-light haproxy)` });
  }
  return rows;
}

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === resolve(import.meta.filename);
if (isMain) {
  printTable(
    `mTLS proxy: best of ${RUNS} × ${SECONDS}s per figure, ${CONNECTIONS} keep-alive connections, ${HANDSHAKE_CONCURRENCY} concurrent handshakes, proxy on core ${PROXY_CPU}, load on core ${LOAD_CPU}`,
    await benchProxy(),
  );
}
