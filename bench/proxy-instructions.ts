/**
 * Instructions per keep-alive request, counted by valgrind's callgrind: the proxy's user
 * space work (JavaScript, V8, libuv, OpenSSL) for one request through it, the same on a
 * busy or a quiet machine. Wall-clock figures on a shared 2-core machine swing by ±30 %
 * from run to run; this one moves by a few percent, so it is the figure to compare
 * changes with. Kernel work (TCP, syscalls) is not counted — it is the same for every row.
 *
 * Each row runs the proxy under callgrind with instrumentation off, warms it up with
 * 30,000 requests on 10 connections (under valgrind the optimizing compiler runs slowly,
 * so the proxy needs that many before its hot code is optimized), then counts 5,000 more
 * requests on 10 open connections — enough for the young-generation collections that fall
 * into the window to average out (with 1,000 the figure jumped by ~4,000 instructions between
 * runs of the same code). The backend answers in the load generator's process.
 *
 * Run: `npm run bench -- proxy-instructions` (needs valgrind: `apt-get install valgrind`).
 * BENCH_PROXY_ONLY (e.g. `pipe,http +`) picks rows and BENCH_PROXY_V8_FLAGS sets the Steeple
 * rows' V8 flags, as for `npm run bench:proxy`.
 * @module
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import tls from 'node:tls';
import { createTestCa } from '@steeple/spiffe/testing';
import {
  benchPolicy,
  benchProxyConfig,
  benchProxyWanted,
  freePort,
  NODE_PIPE,
  STEEPLE_V8_FLAGS,
  steepleCommand,
} from './proxy.js';
import { fmt, type Row } from './table.js';

const ROOT = resolve(import.meta.dirname, '..');
const CONNECTIONS = 10;
const WARM_REQUESTS = 30_000;
const COUNTED_REQUESTS = 5000;
/** Full handshakes (one `connection: close` request each) before counting, and counted, 4 at a time. */
const WARM_HANDSHAKES = 60;
const COUNTED_HANDSHAKES = 100;
const HANDSHAKE_CONCURRENCY = 4;
const CLOSE_REQUEST = Buffer.from('GET /api/items HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n');
const BODY = 'hello from the backend\n';
/**
 * More callgrind options, e.g. `--cache-sim=yes --branch-sim=yes` to count simulated cache
 * misses and mispredicted branches as well (see the kept profiles with callgrind_annotate).
 */
const CALLGRIND_FLAGS = (process.env['BENCH_PROXY_CALLGRIND_FLAGS'] ?? '').split(/\s+/).filter((f) => f !== '');

function hasValgrind(): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v valgrind && command -v callgrind_control'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function waitForPort(port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the proxy under callgrind exited: ${stderr().trim()}`);
    const ok = await new Promise<boolean>((r) => {
      const s = netConnect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        r(true);
      });
      s.once('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`the proxy under callgrind did not listen: ${stderr().trim()}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

interface Setup {
  readonly dir: string;
  readonly cert: string;
  readonly key: string;
  readonly caPem: string;
  readonly secureContext: tls.SecureContext;
  readonly backendPort: number;
}

/** Counts the proxy's instructions per request for one contender. */
async function count(
  s: Setup,
  name: string,
  args: (port: number) => string[],
): Promise<{ perRequest: number; perHandshake: number }> {
  const port = await freePort();
  const out = join(s.dir, `${name.replace(/\W+/g, '-')}.callgrind`);
  const child = spawn(
    'valgrind',
    [
      '--tool=callgrind',
      '--instr-atstart=no',
      ...CALLGRIND_FLAGS,
      `--callgrind-out-file=${out}`,
      process.execPath,
      ...args(port),
    ],
    { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  try {
    await waitForPort(port, child, () => stderr);
    /** A new mTLS connection to the proxy, as the load generator's. */
    const dial = () =>
      tls.connect({
        host: '127.0.0.1',
        port,
        secureContext: s.secureContext,
        checkServerIdentity: () => undefined,
        ALPNProtocols: ['http/1.1'],
      });
    const open = () =>
      new Promise<tls.TLSSocket>((done, fail) => {
        const so = dial();
        so.once('secureConnect', () => done(so));
        so.once('error', fail);
      });
    const request = Buffer.from('GET /api/items HTTP/1.1\r\nhost: bench\r\nuser-agent: steeple-bench\r\n\r\n');
    const once = (so: tls.TLSSocket) =>
      new Promise<void>((done, fail) => {
        let got = '';
        const onData = (d: Buffer) => {
          got += d.toString('latin1');
          if (got.endsWith(BODY)) {
            so.off('data', onData);
            so.off('error', fail);
            done();
          }
        };
        so.on('data', onData);
        so.once('error', fail);
        so.write(request);
      });
    const sockets = await Promise.all(Array.from({ length: CONNECTIONS }, open));
    for (let i = 0; i < WARM_REQUESTS / CONNECTIONS; i++) await Promise.all(sockets.map(once));
    const prefix = `${name.replace(/\W+/g, '-')}.callgrind`;
    const counted = new Set<string>();
    /** Dumps the counters and sums the totals of the files written since the last call. */
    const dumpTotal = () => {
      execFileSync('callgrind_control', ['-i', 'off', String(child.pid)], { stdio: 'ignore' });
      execFileSync('callgrind_control', ['-d', String(child.pid)], { stdio: 'ignore' });
      let total = 0;
      for (const f of readdirSync(s.dir).filter((n) => n.startsWith(prefix) && !counted.has(n))) {
        counted.add(f);
        const m = /^totals: (\d+)/m.exec(readFileSync(join(s.dir, f), 'utf8'));
        if (m) total += Number(m[1]);
      }
      if (total === 0) throw new Error(`callgrind wrote no totals for ${name}`);
      return total;
    };
    execFileSync('callgrind_control', ['-i', 'on', String(child.pid)], { stdio: 'ignore' });
    for (let i = 0; i < COUNTED_REQUESTS / CONNECTIONS; i++) await Promise.all(sockets.map(once));
    const total = dumpTotal();
    for (const so of sockets) so.destroy();
    // Full handshakes, each connection carrying one request with `connection: close`.
    const handshake = () =>
      new Promise<void>((done, fail) => {
        const so = dial();
        let got = '';
        so.once('secureConnect', () => so.write(CLOSE_REQUEST));
        // Done at the whole response, as a client is (the pipe passes the backend's keep-alive on).
        so.on('data', (d: Buffer) => {
          got += d.toString('latin1');
          if (got.endsWith(BODY)) so.destroy();
        });
        so.once('close', () => done());
        so.once('error', fail);
      });
    const handshakes = async (n: number) => {
      for (let i = 0; i < n / HANDSHAKE_CONCURRENCY; i++) {
        await Promise.all(Array.from({ length: HANDSHAKE_CONCURRENCY }, handshake));
      }
    };
    await handshakes(WARM_HANDSHAKES);
    execFileSync('callgrind_control', ['-i', 'on', String(child.pid)], { stdio: 'ignore' });
    await handshakes(COUNTED_HANDSHAKES);
    const handshakeTotal = dumpTotal();
    // BENCH_PROXY_KEEP_CALLGRIND=DIR keeps the profiles (for callgrind_annotate; with
    // BENCH_PROXY_V8_FLAGS=--perf-basic-prof, /tmp/perf-PID.map names the JIT code).
    const keep = process.env['BENCH_PROXY_KEEP_CALLGRIND'];
    if (keep !== undefined && keep !== '') {
      mkdirSync(keep, { recursive: true });
      for (const f of readdirSync(s.dir).filter((n) => n.startsWith(prefix))) {
        copyFileSync(join(s.dir, f), join(keep, `${f}.pid${child.pid}`));
      }
    }
    return { perRequest: total / COUNTED_REQUESTS, perHandshake: handshakeTotal / COUNTED_HANDSHAKES };
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('close', r)));
  }
}

export async function benchProxyInstructions(): Promise<Row[]> {
  if (!hasValgrind())
    return [{ proxy: 'note: valgrind is not installed (apt-get install valgrind); nothing measured' }];
  const dir = mkdtempSync(join(tmpdir(), 'steeple-bench-instr-'));
  const ca = createTestCa({ trustDomain: 'example.org' });
  const server = ca.issueX509Svid('spiffe://example.org/ns/bench/sa/backend', { ttlSeconds: 86_400 }).marshal();
  const client = ca.issueX509Svid('spiffe://example.org/ns/bench/sa/loadgen', { ttlSeconds: 86_400 }).marshal();
  const write = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text, { mode: 0o600 });
    return p;
  };
  const caText = ca.x509Bundle().marshal();
  const caPem = write('ca.pem', caText);
  const response = Buffer.from(
    `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${BODY.length}\r\n\r\n${BODY}`,
  );
  const backend: Server = createServer({ noDelay: true }, (so) => {
    so.on('data', (d) => {
      const n = d.toString('latin1').split('\r\n\r\n').length - 1;
      for (let i = 0; i < n; i++) so.write(response);
    });
  });
  const backendPort = await freePort();
  await new Promise<void>((r) => backend.listen(backendPort, '127.0.0.1', r));
  const s: Setup = {
    dir,
    cert: write('server.pem', server.certificates),
    key: write('server.key', server.privateKey),
    caPem,
    secureContext: tls.createSecureContext({ cert: client.certificates, key: client.privateKey, ca: caText }),
    backendPort,
  };
  const principalOnly = write(
    'principal-policy.yaml',
    `policies:
  - name: loadgen
    action: ALLOW
    rules:
      - from: [{ source: { principals: ["spiffe://example.org/ns/bench/sa/*"] } }]
`,
  );
  const steepleArgs = steepleCommand(dir);
  const steeple =
    (protocol: 'tcp' | 'http', policyFile?: string, sessionResumption = false) =>
    (port: number) => [
      ...STEEPLE_V8_FLAGS,
      ...steepleArgs,
      'proxy',
      'run',
      '-config',
      write(
        `${protocol}-${port}.yaml`,
        benchProxyConfig({
          port,
          backendPort,
          protocol,
          identity: { cert: s.cert, key: s.key, bundle: caPem },
          policy: policyFile ?? write(`${protocol}-policy.yaml`, benchPolicy(protocol)),
          audit: join(dir, `${protocol}-audit.log`),
          sessionResumption,
        }),
      ),
    ];
  const pipeFile = write('node-pipe.mjs', NODE_PIPE);
  const contenders: [string, (port: number) => string[]][] = [
    ['node:tls pipe', (port) => [pipeFile, String(port), String(backendPort), s.cert, s.key, caPem]],
    ['Steeple tcp + policy + audit', steeple('tcp')],
    ['Steeple http + policy + audit', steeple('http')],
    ['Steeple http + principal-only policy + audit', steeple('http', principalOnly)],
    ['Steeple http + policy + audit, session_resumption: true', steeple('http', undefined, true)],
  ];
  const rows: Row[] = [];
  try {
    let pipe: { perRequest: number; perHandshake: number } | undefined;
    for (const [name, args] of contenders) {
      if (!benchProxyWanted(name)) continue;
      const counts = await count(s, name, args);
      if (name === 'node:tls pipe') pipe = counts;
      rows.push({
        proxy: name,
        'instructions/request': fmt(counts.perRequest),
        'vs pipe': pipe === undefined ? '' : `${Math.round((pipe.perRequest / counts.perRequest) * 100)} %`,
        'instructions/handshake': fmt(counts.perHandshake),
        'vs pipe ': pipe === undefined ? '' : `${Math.round((pipe.perHandshake / counts.perHandshake) * 100)} %`,
      });
    }
  } finally {
    backend.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}
