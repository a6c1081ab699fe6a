/**
 * `npm run demo`: two trust domains on this machine, federated, with a call between them.
 *
 * `cluster-a.demo` and `cluster-b.demo` each get their own `steeple server` (own CA, embedded
 * SQLite, a bundle endpoint with the https_spiffe profile) and `steeple agent` (join token),
 * all real processes on loopback ports the system picks, over files in one temp dir. The
 * servers federate as an operator would set it up: each is handed the other's bundle file
 * once (`federation create -trustDomainBundlePath`) and fetches the other's bundle endpoint
 * from then on. Workloads are registered by Unix uid with `-federatesWith`, so they also
 * receive the other trust domain's bundle.
 *
 * Then a sample service app in B runs behind B's inbound proxy (STRICT mTLS, a policy that
 * allows only A's client), and a sample client app in A calls it through A's outbound proxy
 * (which insists on B's service ID). A second workload of A, with its own identity, makes
 * the same call and gets 403, and B's proxy writes an audit line for the denial.
 *
 * As root the workloads run as uids 10001 (A's client), 10002 (A's other workload) and 10003
 * (B's service), so the agents tell them apart by uid. Without root every process has your
 * uid, so A's second workload gets its SVID from `steeple server x509 mint` (written to
 * files) instead of from the Workload API, and the demo says so.
 * @module
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { processAlive } from '../common/process-alive.js';
import { loadCli, steeple } from './demo-cli.js';
import { type DemoProcess, DemoProcesses, type LogEvent } from './demo-process.js';
import { type IssuedIdentity, probeIdentity } from './identity-probe.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const MAIN = resolve(HERE, '../cli/main.ts');
const SAMPLE_APP = resolve(HERE, 'sample-app.ts');
const WORKLOAD = resolve(HERE, 'workload.ts');
const REPO = resolve(HERE, '../../../..');

export const TD_A = 'cluster-a.demo';
export const TD_B = 'cluster-b.demo';
export const CLIENT_A = `spiffe://${TD_A}/client`;
export const OTHER_A = `spiffe://${TD_A}/other`;
export const SERVICE_B = `spiffe://${TD_B}/service`;
/** The uids of the workloads when the demo runs as root. */
export const ROOT_UIDS = { client: 10_001, other: 10_002, service: 10_003 } as const;
/** After its first call, A's client calls B again this often (so `tail -f` on B's audit log shows traffic). */
export const CLIENT_EVERY_SECONDS = 10;
/** Temp dirs are `<prefix><pid>-XXXXXX`, so a killed run's dir is found by its dead pid. */
export const DIR_PREFIX = 'steeple-demo-';

type Print = (line: string) => void;

/** A command for the user to try while the demo runs. */
export interface TryCommand {
  readonly what: string;
  readonly command: string;
}

export interface TwoDomainDemoOptions {
  /** Where progress lines go; default console.log. */
  readonly print?: Print;
  /** Aborting stops the demo while it starts (Ctrl-C): processes stopped, temp dir removed, then it rejects. */
  readonly signal?: AbortSignal;
}

/** The running demo, once every step has passed. */
export interface RunningTwoDomainDemo {
  /** The temp dir holding every config, data dir, socket and log. */
  readonly dir: string;
  /** Whether the workloads run as their own uids (root) or all as yours. */
  readonly rootMode: boolean;
  /** A's client's call to B's service: status and body. */
  readonly allowed: { readonly status: number; readonly body: string };
  /** A's other workload's call: status and body. */
  readonly denied: { readonly status: number; readonly body: string };
  /** B's proxy audit line (JSON) for the denied call, as written. */
  readonly auditLine: string;
  readonly identities: readonly IssuedIdentity[];
  readonly commands: readonly TryCommand[];
  /** Seconds from the start until every step had passed. */
  readonly readySeconds: number;
  readonly adminSockets: Readonly<Record<'a' | 'b', string>>;
  readonly workloadSockets: Readonly<Record<'a' | 'b', string>>;
  readonly auditLog: string;
  /** Ports of A's outbound proxies: the client's and the other workload's. */
  readonly ports: Readonly<{
    clientOutbound: number;
    otherOutbound: number;
    serviceInbound: number;
    serviceApp: number;
  }>;
  /** pids of every process the demo started and that is still running. */
  pids(): number[];
  /** Resolves with a reason when a process of the demo exits on its own. */
  readonly failed: Promise<Error>;
  /** Stops every process and removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const yamlString = (s: string) => JSON.stringify(s);
const startsWithMsg = (prefix: string) => (e: LogEvent) => String(e['msg'] ?? '').startsWith(prefix);

/**
 * Removes what earlier runs that were killed (no Ctrl-C, no cleanup) left behind: their temp
 * dir and, on Linux, the processes still running from it (their command line names the dir).
 */
async function removeStaleRuns(): Promise<void> {
  for (const name of await readdir(tmpdir()).catch(() => [] as string[])) {
    const owner = new RegExp(`^${DIR_PREFIX}(\\d+)-`).exec(name)?.[1];
    if (owner === undefined || processAlive(Number(owner))) continue;
    const dir = join(tmpdir(), name);
    for (const pid of await readdir('/proc').catch(() => [] as string[])) {
      if (!/^\d+$/.test(pid)) continue;
      const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      if (cmdline.includes(`${dir}/`)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** One trust domain of the demo: its files, its server and its agent. */
class Domain {
  server: DemoProcess | undefined;
  agent: DemoProcess | undefined;
  agentApiPort = 0;
  bundleEndpointUrl = '';
  agentId = '';
  agentSvidExpires = '';

  constructor(
    readonly label: 'A' | 'B',
    readonly trustDomain: string,
    readonly dir: string,
  ) {}

  get adminSocket(): string {
    return join(this.dir, 'server', 'admin.sock');
  }

  get workloadSocket(): string {
    return join(this.dir, 'agent', 'public', 'api.sock');
  }

  get bundleFile(): string {
    return join(this.dir, `${this.trustDomain}.bundle.json`);
  }

  admin(...args: string[]): Promise<string> {
    return steeple('server', ...args, '-socketPath', this.adminSocket);
  }

  async startServer(processes: DemoProcesses): Promise<void> {
    await mkdir(join(this.dir, 'server'), { recursive: true });
    const file = join(this.dir, 'server.yaml');
    await writeFile(
      file,
      [
        `trust_domain: ${this.trustDomain}`,
        `data_dir: ${yamlString(join(this.dir, 'server', 'data'))}`,
        'bind_address: 127.0.0.1',
        'bind_port: 0 # any free port; the log says which',
        `socket_path: ${yamlString(this.adminSocket)}`,
        'log_level: info',
        'federation:',
        '  bundle_endpoint:',
        '    address: 127.0.0.1',
        '    port: 0',
        '    refresh_hint: 30s',
        '    profile: { https_spiffe: {} }',
        '',
      ].join('\n'),
    );
    const server = processes.start(`server ${this.trustDomain}`, [MAIN, 'server', 'run', '-config', file], {
      layer: 0,
    });
    this.server = server;
    const ready = await server.waitFor(startsWithMsg('server ready'), 'the server to start');
    this.agentApiPort = Number(/agent API [^ ]*:(\d+),/.exec(String(ready['msg']))?.[1]);
    const endpoint = await server.waitFor(startsWithMsg('bundle endpoint listening'), 'the bundle endpoint');
    this.bundleEndpointUrl = String(endpoint['url']);
  }

  /** Starts an agent that attests with a fresh join token. */
  async startAgent(processes: DemoProcesses): Promise<void> {
    const bootstrap = join(this.dir, 'bootstrap.pem');
    await writeFile(bootstrap, await this.admin('bundle', 'show'));
    const token = (JSON.parse(await this.admin('token', 'generate', '-output', 'json')) as { token: string }).token;
    await mkdir(join(this.dir, 'agent', 'data'), { recursive: true });
    const file = join(this.dir, 'agent.yaml');
    await writeFile(
      file,
      [
        'server_address: 127.0.0.1',
        `server_port: ${this.agentApiPort}`,
        `trust_domain: ${this.trustDomain}`,
        `trust_bundle_path: ${yamlString(bootstrap)}`,
        `join_token: ${token}`,
        `data_dir: ${yamlString(join(this.dir, 'agent', 'data'))}`,
        `socket_path: ${yamlString(this.workloadSocket)}`,
        'log_level: info',
        '',
      ].join('\n'),
    );
    // The join token is spent once the agent attests; the config keeps it only until then.
    const agent = processes.start(`agent ${this.trustDomain}`, [MAIN, 'agent', 'run', '-config', file], {
      layer: 1,
    });
    this.agent = agent;
    const attested = await agent.waitFor(startsWithMsg('node attested'), 'the agent to attest');
    this.agentId = String(attested['agentId']);
    this.agentSvidExpires = String(attested['expiresAt']);
    await agent.waitFor((e) => e['msg'] === 'Workload API listening', 'the Workload API');
  }

  async createEntry(path: string, uid: number, federatesWith: string): Promise<string> {
    const id = `spiffe://${this.trustDomain}${path}`;
    await this.admin(
      'entry',
      'create',
      '-spiffeID',
      id,
      '-parentID',
      this.agentId,
      '-selector',
      `unix:uid:${uid}`,
      '-federatesWith',
      federatesWith,
    );
    return id;
  }

  /** Runs `steeple proxy run` with `yaml`; resolves with the port of `listener` once it is ready. */
  async startProxy(
    processes: DemoProcesses,
    name: string,
    yaml: string,
    listener: string,
    uid: number | undefined,
  ): Promise<{ proxy: DemoProcess; port: number }> {
    const file = join(this.dir, `${name}.yaml`);
    await writeFile(file, yaml);
    const proxy = processes.start(`${name} (${this.trustDomain})`, [MAIN, 'proxy', 'run', '-config', file], {
      uid,
      env: { HOME: this.dir },
    });
    const ready = await proxy.waitFor(
      (e) => String(e['msg'] ?? '').endsWith('listener ready') && e['listener'] === listener,
      `${name}'s listener ${listener}`,
    );
    return { proxy, port: Number(/:(\d+)$/.exec(String(ready['address']))?.[1]) };
  }
}

/** The first line of B's audit log that `pred` accepts, waiting up to `ms` for it to be written. */
async function auditLineOf(path: string, pred: (r: LogEvent) => boolean, ms: number): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    const text = await readFile(path, 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        if (pred(JSON.parse(line) as LogEvent)) return line;
      } catch {
        // a line being written
      }
    }
    if (Date.now() > deadline) throw new Error(`no matching record in ${path} after ${ms / 1000} s:\n${text}`);
    await sleep(100);
  }
}

/** The identity of the workloads running as `uid` on the agent at `socket`. */
async function identityOf(
  processes: DemoProcesses,
  socket: string,
  uid: number | undefined,
  name: string,
): Promise<IssuedIdentity> {
  if (uid === undefined) return probeIdentity(`unix://${socket}`, 30_000);
  // The agent attests the caller by uid, so the question must come from a process of that uid.
  const probe = processes.start(name, [WORKLOAD, 'probe', '30'], {
    uid,
    env: { SPIFFE_ENDPOINT_SOCKET: `unix://${socket}` },
    expectExit: true,
  });
  const answer = await probe.waitFor((e) => e['event'] === 'identity' || e['event'] === 'refused', name, 40_000);
  if (answer['event'] !== 'identity') throw new Error(`${name}: ${String(answer['message'])}`);
  return { id: String(answer['id']), expires: String(answer['expires']), bundles: answer['bundles'] as string[] };
}

function shortAgentId(id: string): string {
  return id.replace(/(join_token\/)(.{8}).*$/, '$1$2…');
}

function describeIdentity(i: IssuedIdentity): string {
  return `${i.id.padEnd(34)} expires ${i.expires}, bundles of ${i.bundles.join(' + ')}`;
}

/**
 * Starts the two trust domains and walks through every step, printing progress; resolves once
 * the cross-domain call has been allowed and the other workload's call denied and audited,
 * with everything still running (see {@link RunningTwoDomainDemo.stop}). On failure or abort
 * everything is stopped and the temp dir removed before it rejects.
 */
export async function startTwoDomainDemo(options: TwoDomainDemoOptions = {}): Promise<RunningTwoDomainDemo> {
  const print = options.print ?? console.log;
  const signal = options.signal;
  const startedAt = Date.now();
  const rootMode = process.getuid?.() === 0;
  const uids = rootMode
    ? ROOT_UIDS
    : { client: process.getuid?.() ?? 0, other: process.getuid?.() ?? 0, service: process.getuid?.() ?? 0 };
  const runAs = (uid: number) => (rootMode ? uid : undefined);

  await removeStaleRuns();
  const dir = await mkdtemp(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
  // Workloads of other uids must reach the agents' sockets below it.
  await chmod(dir, 0o755);
  const processes = new DemoProcesses();
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      await processes.stopAll();
      await rm(dir, { recursive: true, force: true });
    })();
    return stopping;
  };
  const onAbort = () => void processes.stopAll();
  signal?.addEventListener('abort', onAbort, { once: true });
  const checkAbort = () => {
    if (signal?.aborted) throw new Error('stopped');
  };

  try {
    const a = new Domain('A', TD_A, join(dir, 'a'));
    const b = new Domain('B', TD_B, join(dir, 'b'));
    print(`Steeple demo: two trust domains on this machine, federated (files in ${dir})`);
    print(
      rootMode
        ? `Workloads are told apart by Unix uid: A's client runs as ${uids.client}, A's other workload as ${uids.other}, B's service as ${uids.service}.`
        : `Not root: every process runs as your uid ${uids.client}, so the agents cannot tell workloads apart; ` +
            "A's second workload gets its SVID minted into files instead (run as root to see it attested by uid).",
    );

    print(`1. Starting a Steeple server for ${TD_A} and one for ${TD_B} (each its own CA, embedded SQLite)`);
    await Promise.all([a.startServer(processes), b.startServer(processes), loadCli()]);
    for (const d of [a, b]) {
      print(
        `   ${d.trustDomain}: server started: agent API 127.0.0.1:${d.agentApiPort}, ` +
          `bundle endpoint ${d.bundleEndpointUrl} (https_spiffe), admin socket ${d.adminSocket}`,
      );
    }
    checkAbort();

    print(
      "2. Federating: each server is handed the other's bundle file once, then fetches it from its bundle endpoint",
    );
    await Promise.all(
      [a, b].map(async (d) => writeFile(d.bundleFile, await d.admin('bundle', 'show', '-format', 'spiffe'))),
    );
    const pairs = [
      [a, b],
      [b, a],
    ] as const;
    for (const [self, peer] of pairs) {
      const flags = [
        '-trustDomain',
        peer.trustDomain,
        '-bundleEndpointURL',
        peer.bundleEndpointUrl,
        '-bundleEndpointProfile',
        'https_spiffe',
        '-endpointSpiffeID',
        `spiffe://${peer.trustDomain}/spire/server`,
        '-trustDomainBundlePath',
        peer.bundleFile,
        '-trustDomainBundleFormat',
        'spiffe',
      ];
      await self.admin('federation', 'create', ...flags);
      const shown = flags.map((f) => (f === peer.bundleFile ? relative(dir, f) : f)).join(' ');
      print(`   on ${self.label}: steeple server federation create ${shown}`);
    }
    // Fetch now rather than at the next relationship sync.
    await Promise.all(pairs.map(([self, peer]) => self.admin('federation', 'refresh', '-id', peer.trustDomain)));
    const fetched = await Promise.all(
      pairs.map(([self, peer]) =>
        (self.server as DemoProcess).waitFor(
          (e) => e['trustDomain'] === peer.trustDomain && startsWithMsg('fetched federated bundle')(e),
          `${self.trustDomain} to fetch the bundle of ${peer.trustDomain}`,
          30_000,
        ),
      ),
    );
    print(
      `   bundles exchanged: ${TD_A} fetched ${TD_B}'s bundle from ${b.bundleEndpointUrl} ` +
        `(sequence ${fetched[0]?.['sequence']}), ${TD_B} fetched ${TD_A}'s from ${a.bundleEndpointUrl} ` +
        `(sequence ${fetched[1]?.['sequence']}); both re-fetch every 30 s`,
    );
    checkAbort();

    print('3. Starting an agent in each trust domain; each attests to its server with a one-time join token');
    await Promise.all([a.startAgent(processes), b.startAgent(processes)]);
    for (const d of [a, b]) {
      print(
        `   ${d.trustDomain}: agent attested as ${shortAgentId(d.agentId)} (SVID expires ${d.agentSvidExpires}), ` +
          `Workload API ${d.workloadSocket}`,
      );
    }
    checkAbort();

    print(
      "4. Registering the workloads by Unix uid, each also receiving the other trust domain's bundle (-federatesWith)",
    );
    await a.createEntry('/client', uids.client, TD_B);
    print(`   ${CLIENT_A} ← unix:uid:${uids.client} on A's agent, federates with ${TD_B}`);
    if (rootMode) {
      await a.createEntry('/other', uids.other, TD_B);
      print(`   ${OTHER_A} ← unix:uid:${uids.other} on A's agent, federates with ${TD_B}`);
    }
    await b.createEntry('/service', uids.service, TD_A);
    print(`   ${SERVICE_B} ← unix:uid:${uids.service} on B's agent, federates with ${TD_A}`);
    checkAbort();

    print("5. Starting B's service app behind B's inbound proxy, and A's outbound proxies");
    // Each workload asks its agent for its identity meanwhile, as its own uid (printed below).
    const probes = Promise.all([
      identityOf(processes, b.workloadSocket, runAs(uids.service), "B's service identity"),
      identityOf(processes, a.workloadSocket, runAs(uids.client), "A's client identity"),
      rootMode ? identityOf(processes, a.workloadSocket, runAs(uids.other), "A's other identity") : undefined,
    ]);
    probes.catch(() => undefined);
    const app = processes.start('service app (cluster-b.demo)', [SAMPLE_APP, 'serve', `service in ${TD_B}`], {
      uid: runAs(uids.service),
    });
    const appPort = Number((await app.waitFor((e) => e['event'] === 'listening', 'the service app'))['port']);
    const policyFile = join(b.dir, 'policy.yaml');
    await writeFile(
      policyFile,
      [
        'policies:',
        '  - name: cluster-a-client-only',
        '    action: ALLOW',
        '    rules:',
        `      - from: [{ source: { principals: [${yamlString(CLIENT_A)}] } }]`,
        '',
      ].join('\n'),
    );
    // The proxy runs as the service's uid and must be able to write (and rotate) its audit log.
    const auditDir = join(b.dir, 'audit');
    await mkdir(auditDir, { recursive: true });
    if (rootMode) await chown(auditDir, uids.service, uids.service);
    const auditLog = join(auditDir, 'audit.log');
    const identityFrom = (socket: string) => `identity: { workload_api: { socket_path: ${yamlString(socket)} } }`;
    const inbound = await b.startProxy(
      processes,
      'proxy-b',
      [
        'log_level: info',
        identityFrom(b.workloadSocket),
        'inbound:',
        '  - name: service',
        '    listen: "127.0.0.1:0"',
        `    target: "127.0.0.1:${appPort}"`,
        '    protocol: http',
        '    mode: STRICT',
        `policy: { file: ${yamlString(policyFile)} }`,
        `audit: { output: file, path: ${yamlString(auditLog)}, flush_interval_ms: 50 }`,
        '',
      ].join('\n'),
      'service',
      runAs(uids.service),
    );
    print(
      `   B: service app on 127.0.0.1:${appPort} (plain HTTP), behind B's proxy on 127.0.0.1:${inbound.port} ` +
        `(mTLS STRICT; policy allows only ${CLIENT_A}; audit log ${auditLog})`,
    );

    const outbound = (port: string) =>
      [
        'outbound:',
        '  - name: cluster-b-service',
        `    listen: "127.0.0.1:${port}"`,
        `    upstream: "127.0.0.1:${inbound.port}"`,
        '    protocol: http',
        `    upstream_id: ${yamlString(SERVICE_B)}`,
      ].join('\n');
    let otherIdentity = identityFrom(a.workloadSocket);
    let otherIssued: IssuedIdentity | undefined;
    if (!rootMode) {
      // The agent would hand this process the client's identity (same uid): mint the other's.
      const files = join(a.dir, 'other');
      // Minted SVIDs are not renewed: make it last as long as a demo might run.
      await a.admin('x509', 'mint', '-spiffeID', OTHER_A, '-ttl', '12h', '-write', files);
      const bundles = {
        trust_domains: {
          [TD_A]: JSON.parse(await readFile(a.bundleFile, 'utf8')),
          [TD_B]: JSON.parse(await readFile(b.bundleFile, 'utf8')),
        },
      };
      await writeFile(join(files, 'bundles.json'), JSON.stringify(bundles));
      otherIdentity = `identity: { files: { cert: ${yamlString(join(files, 'svid.pem'))}, key: ${yamlString(join(files, 'key.pem'))}, bundle: ${yamlString(join(files, 'bundles.json'))} } }`;
      const cert = new X509Certificate(readFileSync(join(files, 'svid.pem')));
      otherIssued = { id: OTHER_A, expires: new Date(cert.validTo).toISOString(), bundles: [TD_A, TD_B] };
      print(
        `   (not root) minted ${OTHER_A} into ${files}: steeple server x509 mint -spiffeID ${OTHER_A} -ttl 12h -write …`,
      );
    }
    const [clientProxy, otherProxy] = await Promise.all([
      a.startProxy(
        processes,
        'proxy-a-client',
        ['log_level: info', identityFrom(a.workloadSocket), outbound('0'), 'audit: { output: none }', ''].join('\n'),
        'cluster-b-service',
        runAs(uids.client),
      ),
      a.startProxy(
        processes,
        'proxy-a-other',
        ['log_level: info', otherIdentity, outbound('0'), 'audit: { output: none }', ''].join('\n'),
        'cluster-b-service',
        runAs(uids.other),
      ),
    ]);
    print(
      `   A: the client's proxy on 127.0.0.1:${clientProxy.port} and the other workload's on 127.0.0.1:${otherProxy.port}, ` +
        `both → B's proxy, which must present ${SERVICE_B}`,
    );
    checkAbort();

    print('   identities issued (X.509-SVIDs from the Workload API, as each workload sees them):');
    const [serviceIssued, clientIssued, otherFromAgent] = await probes;
    const identities = [serviceIssued, clientIssued, (otherFromAgent ?? otherIssued) as IssuedIdentity];
    for (const i of identities) print(`     ${describeIdentity(i)}`);
    if (!rootMode) print(`     (${OTHER_A}: minted into files, not from the Workload API)`);
    checkAbort();

    print(`6. A's client app calls B's service through A's proxy (and again every ${CLIENT_EVERY_SECONDS} s)`);
    const client = processes.start(
      'client app (cluster-a.demo)',
      [SAMPLE_APP, 'call', String(clientProxy.port), '/hello', String(CLIENT_EVERY_SECONDS)],
      { uid: runAs(uids.client) },
    );
    const first = await client.waitFor((e) => e['event'] === 'reply' || e['event'] === 'error', "the client's call");
    if (first['status'] !== 200) {
      throw new Error(
        `A's client call to B failed: ${JSON.stringify(first)}\n${clientProxy.proxy.tail()}\n${inbound.proxy.tail()}`,
      );
    }
    const allowed = { status: 200, body: String(first['body']) };
    print(`   allowed: HTTP 200 ${allowed.body}`);

    print("7. A's other workload makes the same call");
    const other = processes.start(
      'other app (cluster-a.demo)',
      [SAMPLE_APP, 'call', String(otherProxy.port), '/hello'],
      { uid: runAs(uids.other), expectExit: true },
    );
    const answer = await other.waitFor((e) => e['event'] === 'reply' || e['event'] === 'error', "the other's call");
    if (answer['status'] !== 403) {
      throw new Error(`A's other workload was not denied: ${JSON.stringify(answer)}\n${inbound.proxy.tail()}`);
    }
    const denied = { status: 403, body: String(answer['body']) };
    print(`   denied: HTTP 403 ${denied.body}`);
    const auditLine = await auditLineOf(
      auditLog,
      (r) => r['source_id'] === OTHER_A && r['decision'] === 'deny',
      10_000,
    );
    print(`   B's proxy audit line: ${auditLine}`);
    checkAbort();

    const steepleCli = 'npx steeple';
    const asClient = rootMode
      ? `setpriv --reuid=${uids.client} --regid=${uids.client} --clear-groups ${relative(process.cwd(), join(REPO, 'packages/steeple/bin/steeple')) || '.'}`
      : steepleCli;
    const commands: TryCommand[] = [
      {
        what: "call B's service as A's client (through A's outbound proxy)",
        command: `curl -s http://127.0.0.1:${clientProxy.port}/hello`,
      },
      {
        what: "the same call as A's other workload: 403",
        command: `curl -s -w ' (HTTP %{http_code})\\n' http://127.0.0.1:${otherProxy.port}/hello`,
      },
      { what: "watch B's proxy decide (one line per request)", command: `tail -f ${auditLog}` },
      {
        what: 'what A knows about the federation with B',
        command: `${steepleCli} server federation show -trustDomain ${TD_B} -socketPath ${a.adminSocket}`,
      },
      {
        what: "fetch B's bundle on A now instead of at the next poll",
        command: `${steepleCli} server federation refresh -id ${TD_B} -socketPath ${a.adminSocket}`,
      },
      { what: "B's registration entries", command: `${steepleCli} server entry show -socketPath ${b.adminSocket}` },
      {
        what: `the X.509-SVID A's agent gives the client${rootMode ? ` (as its uid ${uids.client})` : ''}, with both bundles`,
        command: `${asClient} agent api fetch x509 -socketPath ${a.workloadSocket}`,
      },
    ];
    const readySeconds = (Date.now() - startedAt) / 1000;
    signal?.removeEventListener('abort', onAbort);

    let reportFailure: (err: Error) => void = () => undefined;
    const failed = new Promise<Error>((r) => {
      reportFailure = r;
    });
    processes.onUnexpectedExit((p, code) => reportFailure(new Error(`${p.name} exited (${code})\n${p.tail()}`)));
    for (const p of processes.all) {
      if (!p.running && !p.expectExit) reportFailure(new Error(`${p.name} exited\n${p.tail()}`));
    }

    return {
      dir,
      rootMode,
      allowed,
      denied,
      auditLine,
      identities,
      commands,
      readySeconds,
      adminSockets: { a: a.adminSocket, b: b.adminSocket },
      workloadSockets: { a: a.workloadSocket, b: b.workloadSocket },
      auditLog,
      ports: {
        clientOutbound: clientProxy.port,
        otherOutbound: otherProxy.port,
        serviceInbound: inbound.port,
        serviceApp: appPort,
      },
      pids: () => processes.all.filter((p) => p.running).map((p) => p.pid as number),
      failed,
      stop,
    };
  } catch (err) {
    signal?.removeEventListener('abort', onAbort);
    await stop();
    throw err;
  }
}
