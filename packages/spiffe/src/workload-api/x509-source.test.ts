import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import tls from 'node:tls';
import { Code } from '@connectrpc/connect';
import { BundleSet } from '../bundle/bundle-set.js';
import { WorkloadApiError } from '../errors.js';
import type { X509Svid } from '../svid/x509-svid.js';
import { type FakeWorkloadApi, startFakeWorkloadApi } from '../testing/fake-workload-api.js';
import { ManualClock } from '../testing/manual-clock.js';
import { createTestCa } from '../testing/test-ca.js';
import { authorizeId } from '../tls/authorizer.js';
import { getPeerId, mtlsClientOptions, mtlsServerOptions, serveMtls } from '../tls/tls-options.js';
import { createWorkloadApiClient } from './client.js';
import type { X509Context } from './x509-context.js';
import { X509Source, type X509SourceOptions } from './x509-source.js';

const ca = createTestCa({ trustDomain: 'example.org' });
const fedCa = createTestCa({ trustDomain: 'partner.org' });
const serverId = 'spiffe://example.org/server';
const FAST = { initialDelayMs: 5, maxDelayMs: 40 } as const;

const cleanups: (() => unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function fake(svids: X509Svid[] = [], bundles = BundleSet.of(ca.x509Bundle())): Promise<FakeWorkloadApi> {
  const api = await startFakeWorkloadApi(svids.length > 0 ? { svids, bundles } : {});
  cleanups.push(() => api.close());
  return api;
}

async function source(api: FakeWorkloadApi, options: X509SourceOptions = {}): Promise<X509Source> {
  const s = await X509Source.create({ address: api.address, backoff: FAST, ...options });
  cleanups.push(() => s.close());
  return s;
}

function nextUpdate(s: X509Source): Promise<X509Context> {
  return new Promise((resolve) => {
    const off = s.onUpdate((ctx) => {
      off();
      resolve(ctx);
    });
  });
}

function nextError(s: X509Source): Promise<Error> {
  return new Promise((resolve) => {
    const off = s.onError((err) => {
      off();
      resolve(err);
    });
  });
}

describe('X509Source', { timeout: 20_000 }, () => {
  it('resolves once the first X.509 context arrived and serves it', async () => {
    const svid = ca.issueX509Svid(serverId);
    const api = await fake([svid], BundleSet.of(ca.x509Bundle(), fedCa.x509Bundle()));
    const s = await source(api);
    assert.equal(s.getX509Svid().leaf.serialNumber, svid.leaf.serialNumber);
    assert.ok(s.getX509BundleForTrustDomain(ca.trustDomain)?.equals(ca.x509Bundle()));
    assert.ok(s.getX509BundleForTrustDomain('partner.org')?.equals(fedCa.x509Bundle()));
    assert.equal(s.getX509BundleForTrustDomain('unknown.org'), undefined);
    assert.equal(s.getX509Bundles().length, 2);
    assert.equal(s.context.svids.length, 1);
  });

  it('waits through PermissionDenied until the identity appears (E-5)', async () => {
    const api = await fake();
    const pending = X509Source.create({ address: api.address, backoff: FAST });
    const svid = ca.issueX509Svid(serverId);
    // The source keeps retrying; give it an identity once it has been refused at least once.
    while (api.requestCount('FetchX509SVID') < 2) await new Promise((r) => setTimeout(r, 5));
    api.setX509Svids([svid], BundleSet.of(ca.x509Bundle()));
    const s = await pending;
    cleanups.push(() => s.close());
    assert.equal(s.getX509Svid().id.toString(), serverId);
  });

  it('stays current: a rotation replaces the SVID, emits an update, and keeps the bundle array', async () => {
    const bundles = BundleSet.of(ca.x509Bundle());
    const api = await fake([ca.issueX509Svid(serverId)], bundles);
    const s = await source(api);
    const bundlesBefore = s.getX509Bundles();
    assert.equal(s.getX509Bundles(), bundlesBefore, 'same array while nothing changes');
    const rotated = ca.issueX509Svid(serverId);
    const update = nextUpdate(s);
    api.setX509Svids([rotated], bundles);
    const ctx = await update;
    assert.equal(ctx.svids[0]?.leaf.serialNumber, rotated.leaf.serialNumber);
    assert.equal(s.getX509Svid().leaf.serialNumber, rotated.leaf.serialNumber);
    assert.equal(s.getX509Bundles(), bundlesBefore, 'bundles unchanged: the same array, so TLS contexts are reused');
  });

  it('a bundle change is applied (federated bundle removed, W-4) and gives a new array', async () => {
    const svid = ca.issueX509Svid(serverId);
    const api = await fake([svid], BundleSet.of(ca.x509Bundle(), fedCa.x509Bundle()));
    const s = await source(api);
    const before = s.getX509Bundles();
    const keptSvid = s.getX509Svid();
    const update = nextUpdate(s);
    api.setX509Svids([svid], BundleSet.of(ca.x509Bundle()));
    await update;
    assert.equal(s.getX509BundleForTrustDomain('partner.org'), undefined);
    assert.notEqual(s.getX509Bundles(), before);
    assert.equal(s.getX509Svid(), keptSvid, 'the unchanged SVID stays the same object');
  });

  it('picker chooses among several SVIDs (by hint)', async () => {
    const a = ca.issueX509Svid('spiffe://example.org/a', { hint: 'external' });
    const b = ca.issueX509Svid('spiffe://example.org/b', { hint: 'internal' });
    const api = await fake([a, b]);
    const s = await source(api, {
      picker: (svids) => svids.find((x) => x.hint === 'internal') ?? (svids[0] as X509Svid),
    });
    assert.equal(s.getX509Svid().id.toString(), 'spiffe://example.org/b');
  });

  it('bad data from the endpoint: the error is reported, the last good state stays', async () => {
    const good = ca.issueX509Svid(serverId);
    const api = await fake([good]);
    const s = await source(api);
    const entry = {
      spiffeId: serverId,
      x509Svid: good.marshalRaw().certificates,
      x509SvidKey: good.marshalRaw().privateKey,
      bundle: ca.x509Bundle().marshalRaw(),
    };
    const bad: [Parameters<FakeWorkloadApi['setX509SvidResponse']>[0], string][] = [
      [{ svids: [{ ...entry, x509Svid: Buffer.from('garbage') }] }, 'ERR_X509SVID_INVALID'],
      [
        { svids: [{ ...entry, x509SvidKey: ca.issueX509Svid(serverId).marshalRaw().privateKey }] },
        'ERR_X509SVID_KEY_MISMATCH',
      ],
      [{ svids: [] }, 'ERR_WORKLOADAPI_RESPONSE'],
    ];
    for (const [response, code] of bad) {
      const error = nextError(s);
      api.setX509SvidResponse(response);
      assert.equal(((await error) as WorkloadApiError).code, code);
      assert.equal(s.getX509Svid().leaf.serialNumber, good.leaf.serialNumber);
    }
  });

  it('create() rejects on InvalidArgument without retrying (E-5)', async () => {
    const api = await fake([ca.issueX509Svid(serverId)]);
    api.setError(Code.InvalidArgument, 'broken client');
    await assert.rejects(X509Source.create({ address: api.address, backoff: FAST }), {
      code: 'ERR_WORKLOADAPI_STATUS',
      grpcCode: Code.InvalidArgument,
    });
    assert.equal(api.requestCount('FetchX509SVID'), 1);
  });

  it('create() rejects with ERR_WORKLOADAPI_TIMEOUT after timeoutMs, naming the last error', async () => {
    const api = await fake();
    const clock = new ManualClock(new Date('2030-01-01T00:00:00Z'));
    const pending = X509Source.create({ address: api.address, clock, timeoutMs: 5000 });
    // Let the first attempt be refused, then time out on the manual clock.
    while (api.requestCount('FetchX509SVID') < 1) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 20));
    clock.advance(5000);
    await assert.rejects(pending, (err: unknown) => {
      assert.ok(err instanceof WorkloadApiError);
      assert.equal(err.code, 'ERR_WORKLOADAPI_TIMEOUT');
      assert.match(err.message, /within 5000 ms; last error: .*PermissionDenied/);
      return true;
    });
  });

  it('create() rejects with the reason when its signal aborts', async () => {
    const api = await fake();
    const ac = new AbortController();
    const pending = X509Source.create({ address: api.address, backoff: FAST, signal: ac.signal });
    ac.abort(new Error('gave up'));
    await assert.rejects(pending, /gave up/);
  });

  it('close(): getters refuse with ERR_WORKLOADAPI_CLOSED; a borrowed client stays open', async () => {
    const api = await fake([ca.issueX509Svid(serverId)]);
    const client = createWorkloadApiClient({ address: api.address });
    cleanups.push(() => client.close());
    const s = await X509Source.create({ client });
    await s.close();
    assert.equal(s.closed, true);
    assert.throws(() => s.getX509Svid(), { code: 'ERR_WORKLOADAPI_CLOSED' });
    assert.throws(() => s.getX509Bundles(), { code: 'ERR_WORKLOADAPI_CLOSED' });
    assert.equal(client.closed, false);
    assert.equal((await client.fetchX509Context()).svids.length, 1);
    await s.close();
  });

  it('closes cleanly: a process that used a source exits on its own (no dangling handles)', () => {
    const here = (name: string) => JSON.stringify(new URL(name, import.meta.url).href);
    // Plain JS, so that no fixture file sits among the shipped sources; tsx loads the TypeScript modules.
    const program = `
      const { startFakeWorkloadApi } = await import(${here('../testing/fake-workload-api.ts')});
      const { createTestCa } = await import(${here('../testing/test-ca.ts')});
      const { BundleSet } = await import(${here('../bundle/bundle-set.ts')});
      const { X509Source } = await import(${here('./x509-source.ts')});
      const ca = createTestCa({ trustDomain: 'example.org' });
      const api = await startFakeWorkloadApi({ svids: [ca.issueX509Svid('spiffe://example.org/exit')], bundles: BundleSet.of(ca.x509Bundle()) });
      const source = await X509Source.create({ address: api.address });
      console.log(source.getX509Svid().id.toString());
      await source.close();
      await api.close();
    `;
    const res = spawnSync(
      process.execPath,
      ['--conditions=steeple-source', '--import', 'tsx', '--input-type=module', '--eval', program],
      { encoding: 'utf8', timeout: 15_000 },
    );
    assert.equal(res.signal, null, `the process had to be killed: ${res.stderr}`);
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, /spiffe:\/\/example\.org\/exit/);
  });
});

describe('X509Source with the SDK TLS helpers', { timeout: 20_000 }, () => {
  it('an mTLS server rotates its certificate without a restart when the agent pushes a new SVID', async () => {
    const bundles = BundleSet.of(ca.x509Bundle());
    const first = ca.issueX509Svid(serverId);
    const api = await fake([first], bundles);
    const s = await source(api);
    const clientId = 'spiffe://example.org/client';
    const options = mtlsServerOptions({ svid: s, bundles: s, authorize: authorizeId(clientId) });
    const server = serveMtls(
      tls.createServer(options, (socket) => {
        socket.on('error', () => {});
        socket.end(`${getPeerId(socket)}`);
      }),
      options,
    );
    cleanups.push(() => new Promise((r) => server.close(r)));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const clientConfig = {
      svid: ca.issueX509Svid(clientId),
      bundles,
      authorize: authorizeId(serverId),
    };
    const serverSerial = (): Promise<string> =>
      new Promise((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port, ...mtlsClientOptions(clientConfig) });
        socket.on('secureConnect', () => {
          resolve(socket.getPeerCertificate().serialNumber);
          socket.destroy();
        });
        socket.on('error', reject);
      });
    assert.equal(await serverSerial(), first.leaf.serialNumber);
    const rotated = ca.issueX509Svid(serverId);
    const update = nextUpdate(s);
    api.setX509Svids([rotated], bundles);
    await update;
    assert.equal(await serverSerial(), rotated.leaf.serialNumber, 'a new connection sees the new certificate');
  });
});
