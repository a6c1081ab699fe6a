/**
 * Issue 6's acceptance test: two clusters, two trust domains (`cluster-a.test`,
 * `cluster-b.test`), each with its own `steeple server` (own CA, federation bundle endpoint,
 * https_spiffe profile), `steeple agent` (join token), `steeple proxy` and app — real
 * processes. The servers federate with each other (static `federates_with`, first contact
 * from the peer's bundle file). A client app in A calls B's app through A's outbound proxy
 * (identity from A's Workload API, upstream must be B's service ID) and B's inbound proxy
 * (STRICT mTLS, policy allowing only A's client). Then B's bundle endpoint goes down, and
 * B rotates its CA (short `ca_ttl`) while A keeps calling every second.
 *
 * Network: as root with iproute2 and iptables, A and B live in their own network
 * namespaces joined through a router namespace that masquerades A's traffic (B sees A's
 * calls from the router's address) and forwards a port to A's bundle endpoint (see
 * support/two-clusters/netns.sh). Otherwise everything runs on loopback with separate
 * ports; the test says which variant ran. CI (root) must run the namespace variant.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createWorkloadApiClient, type X509Context } from '@steeple/spiffe';
import { processAlive } from '../src/common/process-alive.js';
import { type CallingApp, type CallResult, Cluster } from './support/two-clusters/cluster.js';
import { type Network, setUpNetwork } from './support/two-clusters/network.js';
import {
  type CliResult,
  type LogEvent,
  type ManagedProcess,
  ProcessGroup,
  steeple,
} from './support/two-clusters/processes.js';

const TD_A = 'cluster-a.test';
const TD_B = 'cluster-b.test';
const UID = process.getuid?.() ?? 0;
const ROOT_MODE = UID === 0;
/** The uid of A's second workload (root only: without root every process has our uid). */
const OTHER_UID = 10_002;
/** B's CA lifetime: the next CA is published at half of it and activated at five sixths. */
const B_CA_TTL_SECONDS = 120;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

/** Temp dirs are `<prefix><pid>-XXXXXX`, so a killed run's dir is found by its dead pid. */
const DIR_PREFIX = 'st-two-clusters-';

/** Removes what runs killed before their `after` hook left in the temp dir. */
async function removeStaleDirs(): Promise<void> {
  for (const name of await readdir(tmpdir())) {
    const pid = new RegExp(`^${DIR_PREFIX}(\\d+)-`).exec(name)?.[1];
    if (pid !== undefined && !processAlive(Number(pid))) {
      await rm(join(tmpdir(), name), { recursive: true, force: true }).catch(() => undefined);
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function eventually<T>(check: () => Promise<T | undefined> | T | undefined, ms: number, what: string) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(250);
  }
}

/** The audit records of B's proxy so far. */
async function readAudit(path: string): Promise<LogEvent[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as LogEvent);
}

/** X.509 authorities of a SPIFFE bundle document (`x5c` of the `x509-svid` keys), as certificates. */
function x509Authorities(doc: { keys: { use: string; x5c?: string[] }[] }): X509Certificate[] {
  return doc.keys
    .filter((k) => k.use === 'x509-svid' && k.x5c?.[0] !== undefined)
    .map((k) => new X509Certificate(Buffer.from(k.x5c![0]!, 'base64')));
}

/** Events of `proc` logged after `fromIndex` (its events.length at some earlier moment). */
function eventsSince(proc: ManagedProcess, fromIndex: number): LogEvent[] {
  return proc.events.slice(fromIndex);
}

describe('two clusters: federation between trust domains, cross-cluster mTLS through NAT, CA rotation', () => {
  const processes = new ProcessGroup();
  let dir: string;
  let net: Network | undefined;
  let a: Cluster;
  let b: Cluster;
  let client: CallingApp;
  const ports = {} as Record<
    'aAgent' | 'aBundle' | 'bAgent' | 'bBundle' | 'bInbound' | 'bApp' | 'aOut' | 'aOutOther',
    number
  >;
  let auditB: string;
  let bBundleAtStart: string;
  let bStartedAt: number;
  let setupSeconds: number;
  let shownWhileDown: CliResult | undefined;
  const startedAt = Date.now();
  const serviceB = `spiffe://${TD_B}/service`;
  const clientA = `spiffe://${TD_A}/client`;
  const otherA = `spiffe://${TD_A}/other`;

  const callB = (): Promise<CallResult> => client.get(ports.aOut, '/hello');

  before(async () => {
    await removeStaleDirs();
    dir = await mkdtemp(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
    await chmod(dir, 0o755); // A's second workload runs as another uid and must reach the agent socket
    for (const k of ['aAgent', 'aBundle', 'bAgent', 'bBundle', 'bInbound', 'bApp', 'aOut', 'aOutOther'] as const) {
      ports[k] = await freePort();
    }
    net = setUpNetwork(ports.aBundle);
    if (net.variant === 'loopback' && ROOT_MODE && process.env['CI'] && !process.env['STEEPLE_TWO_CLUSTERS_NETWORK']) {
      assert.fail(`CI runs the network namespace variant (install iproute2 and iptables): ${net.reason}`);
    }
    a = new Cluster({
      trustDomain: TD_A,
      dir: join(dir, 'a'),
      netns: net.nsA,
      listenHost: net.listenHost,
      agentApiPort: ports.aAgent,
      bundlePort: ports.aBundle,
      processes,
    });
    b = new Cluster({
      trustDomain: TD_B,
      dir: join(dir, 'b'),
      netns: net.nsB,
      listenHost: net.listenHost,
      agentApiPort: ports.bAgent,
      bundlePort: ports.bBundle,
      caTtl: `${B_CA_TTL_SECONDS}s`,
      // Long enough for B's SVIDs to outlive the bundle endpoint outage below; the CA caps it.
      svidTtl: '60s',
      jwtSvidTtl: '60s',
      processes,
    });
    await mkdir(join(dir, 'a'), { recursive: true });
    await mkdir(join(dir, 'b'), { recursive: true });

    // Bundles are exchanged out of band once: A serves first, B starts federating with A,
    // then A is restarted federating with B.
    await a.startServer();
    const aBundle = await a.exportBundle();
    bStartedAt = Date.now();
    await b.startServer({
      trustDomain: TD_A,
      bundleEndpointUrl: `https://${net.aAddressFromB}:${ports.aBundle}`,
      bundlePath: aBundle,
    });
    bBundleAtStart = await b.exportBundle();
    await a.stopServer();
    await a.startServer({
      trustDomain: TD_B,
      bundleEndpointUrl: `https://${net.bAddressFromA}:${ports.bBundle}`,
      bundlePath: bBundleAtStart,
    });

    await Promise.all([a.startAgent(), b.startAgent()]);
    await b.createEntry('/service', UID, [TD_A]);
    await a.createEntry('/client', UID, [TD_B]);
    if (ROOT_MODE) await a.createEntry('/other', OTHER_UID, [TD_B]);

    auditB = join(dir, 'b', 'audit.log');
    const policy = join(dir, 'b', 'policy.yaml');
    await writeFile(
      policy,
      [
        'policies:',
        '  - name: cluster-a-client-only',
        '    action: ALLOW',
        '    rules:',
        `      - from: [{ source: { principals: ["${clientA}"] } }]`,
        '',
      ].join('\n'),
    );
    await b.startServiceApp(ports.bApp);
    await b.startProxy(
      'proxy-b',
      [
        'log_level: info',
        `identity: { workload_api: { socket_path: ${b.workloadSocket} } }`,
        'inbound:',
        '  - name: service',
        `    listen: "${net.listenHost}:${ports.bInbound}"`,
        `    target: "127.0.0.1:${ports.bApp}"`,
        '    protocol: http',
        '    mode: STRICT',
        `policy: { file: ${policy} }`,
        `audit: { output: file, path: ${auditB}, flush_interval_ms: 10 }`,
        '',
      ].join('\n'),
      ['service'],
    );
    const outbound = (name: string, port: number) =>
      [
        'outbound:',
        `  - name: ${name}`,
        `    listen: "127.0.0.1:${port}"`,
        `    upstream: "${net?.bAddressFromA}:${ports.bInbound}"`,
        '    protocol: http',
        `    upstream_id: "${serviceB}"`,
        // No pooled connections: every call is a new mTLS handshake, so the rotation is
        // exercised on every call and not hidden behind one long-lived connection.
        '    max_idle_connections: 0',
      ].join('\n');
    await a.startProxy(
      'proxy-a',
      [
        'log_level: info',
        `identity: { workload_api: { socket_path: ${a.workloadSocket} } }`,
        outbound('cluster-b-service', ports.aOut),
        'audit: { output: none }',
        '',
      ].join('\n'),
      ['cluster-b-service'],
    );
    // A's second workload: its own entry and uid as root; otherwise an SVID minted for its
    // ID and written to files, with both trust domains' bundles.
    let otherIdentity = `identity: { workload_api: { socket_path: ${a.workloadSocket} } }`;
    if (!ROOT_MODE) {
      const files = join(dir, 'a', 'other');
      await a.admin('x509', 'mint', '-spiffeID', otherA, '-write', files);
      const map = {
        trust_domains: {
          [TD_A]: JSON.parse(await readFile(aBundle, 'utf8')),
          [TD_B]: JSON.parse(await readFile(bBundleAtStart, 'utf8')),
        },
      };
      await writeFile(join(files, 'bundles.json'), JSON.stringify(map));
      otherIdentity = `identity: { files: { cert: ${files}/svid.pem, key: ${files}/key.pem, bundle: ${files}/bundles.json } }`;
    }
    await a.startProxy(
      'proxy-a-other',
      [
        'log_level: info',
        otherIdentity,
        outbound('cluster-b-service', ports.aOutOther),
        'audit: { output: none }',
        '',
      ].join('\n'),
      ['cluster-b-service'],
      ROOT_MODE ? OTHER_UID : undefined,
    );
    client = await a.startClientApp();
    setupSeconds = (Date.now() - startedAt) / 1000;
  });

  after(async () => {
    await processes.stopAll();
    net?.tearDown();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('F-5, F-10, X-13: a client in cluster-a.test calls a service in cluster-b.test over mTLS (through NAT in the namespace variant)', async (t) => {
    t.diagnostic(
      net?.variant === 'netns'
        ? `variant: network namespaces ${net.nsA} / ${net.nsB}, NAT router between them (${net.aOwnAddress} → ${net.aSourceSeenByB})`
        : `variant: loopback (${net?.reason})`,
    );
    t.diagnostic(`setup took ${setupSeconds.toFixed(1)} s`);
    // Both servers fetch each other's bundle over the bundle endpoints (not only the bootstrap files).
    await a.server!.waitFor(
      (e) => e['trustDomain'] === TD_B && String(e['msg']).startsWith('fetched federated bundle'),
      "A fetching B's bundle",
      30_000,
    );
    await b.server!.waitFor(
      (e) => e['trustDomain'] === TD_A && String(e['msg']).startsWith('fetched federated bundle'),
      "B fetching A's bundle",
      30_000,
    );

    const res = await callB();
    assert.equal(res.status, 200, `the call failed: ${JSON.stringify(res)}\n${processes.tails()}`);
    const seen = JSON.parse(res.body ?? '{}') as { path: string; xfcc: string };
    assert.equal(seen.path, '/hello');
    assert.equal(seen.xfcc, `By=${serviceB};URI=${clientA}`, "B's app learns the verified caller from its proxy");

    const record = await eventually(
      async () => (await readAudit(auditB)).find((r) => r['source_id'] === clientA && r['type'] === 'request'),
      10_000,
      "the allow record in B's audit log",
    );
    assert.equal(record['decision'], 'allow');
    assert.equal(record['destination_id'], serviceB);
    assert.equal(record['policy'], 'cluster-a-client-only');
    const peer = String(record['peer_address']);
    assert.ok(peer.startsWith(`${net?.aSourceSeenByB}:`), `B sees A from ${net?.aSourceSeenByB}, got ${peer}`);
    if (net?.aOwnAddress !== undefined) {
      assert.ok(
        !peer.startsWith(`${net.aOwnAddress}:`),
        `A's own address ${net.aOwnAddress} must be hidden by the NAT`,
      );
    }
  });

  it("a second workload of cluster-a.test is denied by B's policy, with an audit record", async () => {
    const res = await client.get(ports.aOutOther, '/hello');
    assert.equal(res.status, 403, JSON.stringify(res));
    assert.match(res.body ?? '', /access denied/);
    const record = await eventually(
      async () => (await readAudit(auditB)).find((r) => r['source_id'] === otherA),
      10_000,
      "the deny record in B's audit log",
    );
    assert.equal(record['decision'], 'deny');
    assert.equal(record['destination_id'], serviceB);
    assert.equal(record['listener'], 'service');
    assert.equal(record['status'], 403);
    assert.ok(String(record['peer_address']).startsWith(`${net?.aSourceSeenByB}:`));
  });

  it("F-7, F-11: while B's bundle endpoint is down, A says why and keeps the last good bundle; calls keep working", async () => {
    const aServer = a.server!;
    const mark = aServer.events.length;
    await b.stopServer();
    const failure = await eventually(
      () =>
        eventsSince(aServer, mark).find(
          (e) =>
            e['trustDomain'] === TD_B &&
            e['msg'] === 'federated bundle fetch failed; the last good bundle stays in force',
        ),
      30_000,
      "A's failed fetch of B's bundle",
    );
    assert.equal(failure['code'], 'ERR_FEDERATION_ENDPOINT_UNREACHABLE');
    assert.equal(failure['reason'], 'connection-failed');
    assert.match(String(failure['error']), new RegExp(`${TD_B}.*${ports.bBundle}`));
    assert.equal(typeof failure['keptSequence'], 'string');

    for (let i = 0; i < 3; i++) {
      const res = await callB();
      assert.equal(res.status, 200, `call ${i} while B's server is down: ${JSON.stringify(res)}`);
    }

    shownWhileDown = await steeple(
      'server',
      'federation',
      'show',
      '-trustDomain',
      TD_B,
      '-socketPath',
      a.adminSocket,
      '-output',
      'json',
    );
    await b.startServer();
  });

  it('federation show on A reports the configured relationship with B as failing, with the reason; refresh works on it', async () => {
    assert.equal(shownWhileDown?.code, 0, `federation show on A: ${shownWhileDown?.stderr}${shownWhileDown?.stdout}`);
    assert.match(shownWhileDown?.stdout ?? '', /failing/, 'the relationship is failing while B is down');
    assert.match(shownWhileDown?.stdout ?? '', /connection-failed/, 'with the reason');
    const shown = JSON.parse(shownWhileDown?.stdout ?? '{}');
    assert.equal(shown.source, 'config', 'the relationship comes from federates_with');
    assert.equal(shown.status?.state, 'failing');
    assert.equal(shown.status?.last_error?.code, 'ERR_FEDERATION_ENDPOINT_UNREACHABLE');
    assert.ok(shown.status?.current_bundle, 'the last good bundle stays in force');
    const refreshed = await steeple('server', 'federation', 'refresh', '-id', TD_B, '-socketPath', a.adminSocket);
    assert.equal(refreshed.code, 0, `federation refresh on A: ${refreshed.stderr}${refreshed.stdout}`);
    const after = await steeple('server', 'federation', 'show', '-trustDomain', TD_B, '-socketPath', a.adminSocket);
    assert.equal(after.code, 0, after.stderr);
    assert.match(after.stdout, /^Status +: ok: /m, `ok again after the refresh:\n${after.stdout}`);
  });

  it('F-9: B rotates its CA; calls from A every second keep working without any manual step', async (t) => {
    const before = x509Authorities(JSON.parse(await readFile(bBundleAtStart, 'utf8')));
    const isNew = (c: X509Certificate) => !before.some((o) => o.fingerprint256 === c.fingerprint256);
    const wlB = createWorkloadApiClient({ address: `unix://${b.workloadSocket}` });
    const wlA = createWorkloadApiClient({ address: `unix://${a.workloadSocket}` });
    const results: { at: number; res: CallResult }[] = [];
    let serviceOnNewCa: number | undefined;
    let aHasNewCa: number | undefined;
    try {
      // B activates its next CA at 5/6 of ca_ttl after it started; allow a minute beyond.
      const deadline = bStartedAt + (B_CA_TTL_SECONDS * 5 * 1000) / 6 + 60_000;
      while (Date.now() < deadline) {
        const tick = Date.now();
        results.push({ at: tick, res: await callB() });
        const ctxB: X509Context | undefined = await wlB.fetchX509Context().catch(() => undefined);
        const leaf = ctxB?.svids.find((s) => s.id.toString() === serviceB)?.leaf;
        const newCas = ctxB?.bundles.get(TD_B)?.x509Bundle().authorities.filter(isNew) ?? [];
        if (serviceOnNewCa === undefined && leaf !== undefined && newCas.some((ca) => leaf.checkIssued(ca))) {
          serviceOnNewCa = results.length;
          t.diagnostic(`B's service SVID is signed by B's new CA after ${((tick - bStartedAt) / 1000).toFixed(0)} s`);
        }
        if (aHasNewCa === undefined) {
          const ctxA = await wlA.fetchX509Context().catch(() => undefined);
          const federated = ctxA?.bundles.get(TD_B)?.x509Bundle().authorities ?? [];
          if (federated.some(isNew)) aHasNewCa = results.length;
        }
        // Keep calling a while after B's workloads present SVIDs of the new CA.
        if (serviceOnNewCa !== undefined && results.length >= serviceOnNewCa + 5) break;
        await sleep(Math.max(0, 1000 - (Date.now() - tick)));
      }
    } finally {
      await wlA.close();
      await wlB.close();
    }

    const failed = results.filter((r) => r.res.status !== 200);
    assert.deepEqual(
      failed.map((f) => ({ secondsAfterBStarted: Math.round((f.at - bStartedAt) / 1000), ...f.res })),
      [],
      `every call must work through B's CA rotation\n${processes.tails()}`,
    );
    assert.ok(aHasNewCa !== undefined, "A's workloads never received B's next CA");
    assert.ok(
      serviceOnNewCa !== undefined,
      `B's CA did not rotate within the test (${results.length} calls)\n${b.server?.tail()}`,
    );
    assert.ok(aHasNewCa <= serviceOnNewCa, "A held B's next CA before B's workloads used it");
    assert.ok(
      b.server!.events.some((e) => e['msg'] === 'activated the next authority' && e['kind'] === 'x509'),
      "B's server logged the activation",
    );
    t.diagnostic(`${results.length} calls during the rotation, all answered 200`);

    // The rotation shows in B's served bundle, and A holds the same authorities.
    const nowB = await b.bundle();
    const initialSequence = (JSON.parse(await readFile(bBundleAtStart, 'utf8')) as { spiffe_sequence?: number })
      .spiffe_sequence;
    assert.ok((nowB.spiffe_sequence ?? 0) > (initialSequence ?? 0), 'spiffe_sequence grows with the rotation');
    assert.ok(x509Authorities(nowB).some(isNew));
    let lastHeld: string[] = [];
    const heldByA = await eventually(
      async () => {
        const listed = JSON.parse(await a.admin('bundle', 'list', '-id', TD_B, '-output', 'json')) as {
          bundles: { spiffe_bundle_json: string }[];
        };
        const doc = JSON.parse(listed.bundles[0]?.spiffe_bundle_json ?? '{"keys":[]}');
        const held = x509Authorities(doc).map((c) => c.fingerprint256);
        const served = x509Authorities(nowB).map((c) => c.fingerprint256);
        lastHeld = held;
        return served.every((f) => held.includes(f)) ? held : undefined;
      },
      30_000,
      "A's stored bundle of B to match what B serves",
    ).catch((err: Error) => {
      const fetches = a.server!.events.filter((e) => e['trustDomain'] === TD_B).slice(-6);
      throw new Error(
        `${err.message}\nserved by B: ${JSON.stringify(x509Authorities(nowB).map((c) => c.fingerprint256))}\n` +
          `held by A: ${JSON.stringify(lastHeld)}\nA's last fetches of B: ${JSON.stringify(fetches, null, 1)}`,
      );
    });
    assert.ok(heldByA.length > 0);
    t.diagnostic(`whole test so far: ${((Date.now() - startedAt) / 1000).toFixed(0)} s`);
  });
});
