/**
 * The agent and its Workload API, measured on real processes: `steeple server run` and
 * `steeple agent run` on this machine, this process as the workload (its uid is the
 * selector), talking gRPC over the agent's Unix socket with connect-node.
 *
 * - First-message latency: request sent → first X509SVIDResponse, at 1, 100 and 1,000
 *   concurrent FetchX509SVID streams, the streams of a round sent together. Connections are
 *   opened (and used once) before timing starts; the 1-client case is also shown with a new
 *   connection per request. Connections are replaced before they reach 900 cancelled
 *   streams (HTTP/2 rapid-reset limit, workload-api-serving.md P3).
 * - Entry create → SVID: with a FetchX509SVID stream open, an entry for this uid with a new
 *   SPIFFE ID is created through the admin API; timed from just before the CreateEntries
 *   call until a stream message carrying the new ID arrives. Beside it, SPIRE's agent, which
 *   learns of new entries on its 5 s sync.
 * - Memory: the agent's RSS idle with no entries, then with 10,000 cached X.509-SVIDs. The
 *   agent signs an SVID for every entry it could serve, whether or not a workload asks, so
 *   10,000 entries parented to it with `unix:uid` selectors of uids no process has are
 *   10,000 cached SVIDs; done when its `steeple_agent_x509_svids_signed_total` says so.
 *
 * Client, agent and server share this machine's cores, so client time is in the latencies.
 *
 * Run: `npm run bench -- agent`, or `node --conditions=steeple-source --import tsx bench/agent.ts`.
 */
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import {
  createRawWorkloadClient,
  type RawWorkloadClient,
} from '../packages/steeple/src/agent/testing/raw-workload-client.js';
import { metricValue, rssBytes, type SteepleCluster, startSteepleCluster } from './support/steeple-cluster.js';
import { fmt, printTable, type Row } from './table.js';

const AGENT_MODULE = join(import.meta.dirname, '../packages/steeple/src/agent/agent.ts');
const UID = process.getuid?.() ?? 0;
const CACHED = 10_000;
/** uids from here on belong to no process on this machine (checked against /proc before use). */
const FIRST_UNUSED_UID = 3_000_000;
const CREATE_BATCH = 1_000;
/** Streams per connection in the 1,000-stream case. */
const STREAMS_PER_CONNECTION = 100;
/** Replace a connection before this many cancelled streams (nghttp2 allows a burst of ~1000). */
const MAX_CANCELLED_PER_CONNECTION = 850;
const CREATE_ROUNDS = Number(process.env['BENCH_AGENT_CREATE_ROUNDS'] ?? 30);
const SPIRE_SYNC = 'SPIRE: ~5 s (sync interval)';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ms = (v: number) => `${fmt(v)} ms`;
const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/** Nearest-rank percentile of `values` (0 < p ≤ 1). */
function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] ?? Number.NaN;
}

async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` every 100 ms until it returns true. */
async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

// ---- Workload API connections ----

/** One HTTP/2 connection to the Workload API, and how many streams it has cancelled. */
interface Connection {
  client: RawWorkloadClient;
  cancelled: number;
}

/** Opens a FetchX509SVID stream, resolves with the ms until its first message, then cancels it. */
async function firstMessage(conn: Connection): Promise<number> {
  const abort = new AbortController();
  const start = performance.now();
  const it = conn.client.api.fetchX509SVID({}, { signal: abort.signal })[Symbol.asyncIterator]();
  try {
    const first = await it.next();
    const elapsed = performance.now() - start;
    if (first.done || first.value.svids.length === 0) throw new Error('FetchX509SVID: the first message has no SVID');
    return elapsed;
  } finally {
    abort.abort();
    conn.cancelled++;
    void it.return?.()?.catch(() => {});
  }
}

/** `size` connections used round-robin, each replaced (and warmed) before it cancels too many streams. */
class ConnectionPool {
  readonly #socket: string;
  readonly #connections: Connection[] = [];
  /** Connections opened in all, replacements included. */
  opened = 0;

  constructor(socket: string, size: number) {
    this.#socket = socket;
    for (let i = 0; i < size; i++) this.#connections.push(this.#open());
  }

  get size(): number {
    return this.#connections.length;
  }

  #open(): Connection {
    this.opened++;
    return { client: createRawWorkloadClient(this.#socket), cancelled: 0 };
  }

  /** Makes sure each connection can take `streams` more cancellations, and that every one is connected. */
  async prepare(streams: number): Promise<void> {
    await Promise.all(
      this.#connections.map(async (conn, i) => {
        let c = conn;
        if (c.cancelled === 0 || c.cancelled + streams + 1 > MAX_CANCELLED_PER_CONNECTION) {
          if (c.cancelled > 0) {
            c.client.close();
            c = this.#open();
            this.#connections[i] = c;
          }
          await firstMessage(c); // connects; not timed
        }
      }),
    );
  }

  at(i: number): Connection {
    return this.#connections[i % this.#connections.length] as Connection;
  }

  close(): void {
    for (const c of this.#connections) c.client.close();
  }
}

/** `rounds` bursts of `concurrency` streams over `connections` warm connections; all first-message times. */
async function burstLatencies(
  socket: string,
  concurrency: number,
  connections: number,
  rounds: number,
): Promise<{ samples: number[]; opened: number }> {
  const pool = new ConnectionPool(socket, connections);
  const samples: number[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      await pool.prepare(Math.ceil(concurrency / connections));
      await sleep(concurrency >= 100 ? 100 : 0); // let the previous round's cancellations settle
      const times = await Promise.all(Array.from({ length: concurrency }, (_, i) => firstMessage(pool.at(i))));
      samples.push(...times);
    }
    return { samples, opened: pool.opened };
  } finally {
    pool.close();
  }
}

/** One client at a time, each request on a connection of its own (connect, SO_PEERCRED, HTTP/2 setup included). */
async function newConnectionLatencies(socket: string, count: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const conn = { client: createRawWorkloadClient(socket), cancelled: 0 };
    try {
      samples.push(await firstMessage(conn));
    } finally {
      conn.client.close();
    }
  }
  return samples;
}

// ---- entry create → SVID on an open stream ----

/**
 * Opens one FetchX509SVID stream and, `rounds` times, creates an entry for this uid with a
 * new SPIFFE ID and times its arrival on the stream. The created entries are deleted after.
 */
async function entryToStream(
  cluster: SteepleCluster,
  rounds: number,
  tag: string,
): Promise<{ svid: number[]; call: number[] }> {
  const client = createRawWorkloadClient(cluster.workloadSocket);
  const abort = new AbortController();
  const waiting = new Map<string, (at: number) => void>();
  let streamError: unknown;
  let firstSeen: () => void = () => {};
  const first = new Promise<void>((r) => {
    firstSeen = r;
  });
  const pump = (async () => {
    for await (const msg of client.api.fetchX509SVID({}, { signal: abort.signal })) {
      const at = performance.now();
      firstSeen();
      for (const svid of msg.svids) {
        const done = waiting.get(svid.spiffeId);
        if (done !== undefined) {
          waiting.delete(svid.spiffeId);
          done(at);
        }
      }
    }
  })().catch((err) => {
    if (!abort.signal.aborted) streamError = err;
  });
  const created: string[] = [];
  const svid: number[] = [];
  const call: number[] = [];
  try {
    await within(first, 30_000, 'the first message of the watched stream');
    for (let i = 0; i < rounds; i++) {
      const spiffeId = `spiffe://${cluster.trustDomain}/bench/${tag}/created-${i}`;
      const arrived = new Promise<number>((r) => waiting.set(spiffeId, r));
      const start = performance.now();
      const res = await cluster.admin.entries.createEntries({
        entries: [{ spiffeId, parentId: cluster.agentId, selectors: [{ type: 'unix', value: `uid:${UID}` }] }],
      });
      call.push(performance.now() - start);
      const result = res.results[0];
      if (result?.entry === undefined || (result.status?.code ?? 0) !== 0) {
        throw new Error(`CreateEntries refused ${spiffeId}: ${result?.status?.message}`);
      }
      created.push(result.entry.id);
      const at = await within(arrived, 15_000, `${spiffeId} on the open stream`);
      if (streamError !== undefined) throw streamError;
      svid.push(at - start);
      await sleep(50);
    }
    return { svid, call };
  } finally {
    abort.abort();
    await pump;
    client.close();
    if (created.length > 0) await cluster.admin.entries.deleteEntries({ ids: created });
  }
}

// ---- memory ----

/** Throws if a process on this machine runs as a uid in [from, from + count). */
async function assertUidsUnused(from: number, count: number): Promise<void> {
  for (const pid of (await readdir('/proc')).filter((n) => /^\d+$/.test(n))) {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const uids = /^Uid:\s+(.*)$/m.exec(status)?.[1]?.split(/\s+/).map(Number) ?? [];
    if (uids.some((u) => u >= from && u < from + count)) throw new Error(`process ${pid} runs as a uid in the range`);
  }
}

async function createMany(cluster: SteepleCluster, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i += CREATE_BATCH) {
    const entries = Array.from({ length: Math.min(CREATE_BATCH, count - i) }, (_, k) => ({
      spiffeId: `spiffe://${cluster.trustDomain}/bench/cached/${i + k}`,
      parentId: cluster.agentId,
      selectors: [{ type: 'unix', value: `uid:${FIRST_UNUSED_UID + i + k}` }],
    }));
    const res = await cluster.admin.entries.createEntries({ entries });
    for (const r of res.results) {
      if (r.entry === undefined || (r.status?.code ?? 0) !== 0) throw new Error(`CreateEntries: ${r.status?.message}`);
      ids.push(r.entry.id);
    }
  }
  return ids;
}

/**
 * RSS of a process that only loaded the agent's module graph through tsx, as the agent does,
 * and runs nothing: how much of the agent's footprint is code rather than data.
 */
async function codeOnlyRss(): Promise<number> {
  const script = `await import(${JSON.stringify(pathToFileURL(AGENT_MODULE).href)}); console.log('loaded'); setInterval(() => {}, 60_000);`;
  const child = spawn(
    process.execPath,
    ['--conditions=steeple-source', '--import', 'tsx', '--input-type=module', '-e', script],
    { cwd: resolve(import.meta.dirname, '..'), stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    const loaded = new Promise<void>((done, fail) => {
      createInterface({ input: child.stdout! }).on('line', (l) => l === 'loaded' && done());
      child.once('exit', (code) => fail(new Error(`the module-loading process exited (${code})`)));
    });
    await within(loaded, 30_000, 'the agent modules to load');
    await sleep(1000);
    return await rssBytes(child.pid ?? -1);
  } finally {
    child.kill();
  }
}

async function agentGauge(cluster: SteepleCluster, name: string): Promise<number> {
  return metricValue(await cluster.agentMetrics(), name) ?? Number.NaN;
}

// ---- the benchmark ----

export async function benchAgent(): Promise<Row[]> {
  const loadBefore = loadavg()[0] ?? 0;
  const rssCode = await codeOnlyRss();
  const cluster = await startSteepleCluster();
  const rows: Row[] = [];
  const latencyRow = (measurement: string, setup: string, samples: number[], compare = '') =>
    rows.push({
      measurement,
      setup,
      samples: samples.length,
      p50: ms(percentile(samples, 0.5)),
      p99: ms(percentile(samples, 0.99)),
      'goal / comparison': compare,
    });
  const valueRow = (measurement: string, setup: string, value: string, compare = '') =>
    rows.push({ measurement, setup, samples: '', p50: value, p99: '', 'goal / comparison': compare });

  try {
    const agentPid = cluster.agent.pid;
    await sleep(1000);
    const rssIdle = await rssBytes(agentPid);
    const heapIdle = await agentGauge(cluster, 'steeple_nodejs_heap_size_used_bytes');

    // Memory first, on a fresh agent, so no earlier load has raised its allocator high-water mark.
    await assertUidsUnused(FIRST_UNUSED_UID, CACHED);
    const signedBefore = await agentGauge(cluster, 'steeple_agent_x509_svids_signed_total');
    const loadStart = performance.now();
    const cachedIds = await createMany(cluster, CACHED);
    const createdMs = performance.now() - loadStart;
    await until(
      async () => (await agentGauge(cluster, 'steeple_agent_x509_svids_signed_total')) - signedBefore >= CACHED,
      150_000,
      `${CACHED} SVIDs signed by the agent`,
    );
    const loadedMs = performance.now() - loadStart;
    await sleep(2000);
    const rssLoaded = await rssBytes(agentPid);
    const heapLoaded = await agentGauge(cluster, 'steeple_nodejs_heap_size_used_bytes');

    // The workload's own entry; then entry → stream with the 10,000 others still cached.
    const ownEntry = await cluster.admin.entries.createEntries({
      entries: [
        {
          spiffeId: `spiffe://${cluster.trustDomain}/bench/workload`,
          parentId: cluster.agentId,
          selectors: [{ type: 'unix', value: `uid:${UID}` }],
        },
      ],
    });
    if (ownEntry.results[0]?.entry === undefined) throw new Error('could not create the workload entry');
    const loadedCreate = await entryToStream(cluster, Math.ceil(CREATE_ROUNDS / 2), 'loaded');

    for (let i = 0; i < cachedIds.length; i += CREATE_BATCH) {
      await cluster.admin.entries.deleteEntries({ ids: cachedIds.slice(i, i + CREATE_BATCH) });
    }
    await until(async () => (await agentGauge(cluster, 'steeple_agent_entries')) === 1, 60_000, 'entries removed');

    // First-message latency, with only the workload's entry cached.
    const fresh = await newConnectionLatencies(cluster.workloadSocket, 300);
    const one = await burstLatencies(cluster.workloadSocket, 1, 1, 1000);
    const hundred = await burstLatencies(cluster.workloadSocket, 100, 1, 20);
    const thousandConnections = Math.ceil(1000 / STREAMS_PER_CONNECTION);
    const thousand = await burstLatencies(cluster.workloadSocket, 1000, thousandConnections, 6);
    latencyRow('first X509SVIDResponse', '1 client, new connection per request', fresh);
    latencyRow('first X509SVIDResponse', '1 client, warm connection', one.samples);
    latencyRow(
      'first X509SVIDResponse',
      `100 concurrent streams, 1 connection (${hundred.opened} over the run)`,
      hundred.samples,
    );
    latencyRow(
      'first X509SVIDResponse',
      `1,000 concurrent streams, ${thousandConnections} connections × ${STREAMS_PER_CONNECTION}`,
      thousand.samples,
    );

    const idleCreate = await entryToStream(cluster, CREATE_ROUNDS, 'idle');
    latencyRow(
      'entry create → SVID on open stream',
      '1 entry cached',
      idleCreate.svid,
      `goal p99 < 200 ms; ${SPIRE_SYNC}`,
    );
    latencyRow(
      'entry create → SVID on open stream',
      `${fmt(CACHED)} other entries cached`,
      loadedCreate.svid,
      SPIRE_SYNC,
    );
    latencyRow('  of which: the CreateEntries call', '1 entry cached', idleCreate.call);

    valueRow('for scale: RSS of code alone', "node + tsx, the agent's modules loaded, nothing running", mib(rssCode));
    valueRow('agent RSS', 'idle, 0 entries', mib(rssIdle), `JS heap used ${mib(heapIdle)}`);
    valueRow(
      'agent RSS',
      `${fmt(CACHED)} cached X.509-SVIDs`,
      mib(rssLoaded),
      `+${fmt((rssLoaded - rssIdle) / 1024 / CACHED)} KiB per SVID; JS heap used ${mib(heapLoaded)}`,
    );
    valueRow(
      `time to cache ${fmt(CACHED)} SVIDs`,
      `CreateEntries in batches of ${fmt(CREATE_BATCH)} → all signed`,
      ms(loadedMs),
      `creating the entries: ${ms(createdMs)}`,
    );
    valueRow(
      'machine load (1-min average)',
      `${cpus().length} cores shared by client, agent and server`,
      `${(loadBefore).toFixed(2)} → ${(loadavg()[0] ?? 0).toFixed(2)}`,
      'before → after; anything above ~0.5 at the start means other work skewed the figures',
    );
    return rows;
  } finally {
    await cluster.stop();
  }
}

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === resolve(import.meta.filename);
if (isMain) {
  printTable('Agent: Workload API latency, entry propagation, memory', await benchAgent());
}
