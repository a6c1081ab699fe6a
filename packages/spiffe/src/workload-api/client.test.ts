import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Code, type Interceptor } from '@connectrpc/connect';
import { BundleSet } from '../bundle/bundle-set.js';
import { BundleError, WorkloadApiError, X509SvidError } from '../errors.js';
import { type FakeWorkloadApi, startFakeWorkloadApi } from '../testing/fake-workload-api.js';
import { createTestJwtAuthority } from '../testing/jwt-authority.js';
import { createTestCa } from '../testing/test-ca.js';
import { SPIFFE_ENDPOINT_SOCKET } from './address.js';
import { createWorkloadApiClient, type WorkloadApiClient, type WorkloadApiClientOptions } from './client.js';
import type { X509Context } from './x509-context.js';

const ca = createTestCa({ trustDomain: 'example.org' });
const fedCa = createTestCa({ trustDomain: 'partner.org' });
const otherFedCa = createTestCa({ trustDomain: 'third.org' });
const webId = 'spiffe://example.org/web';
const FAST = { initialDelayMs: 5, maxDelayMs: 40 } as const;

/** Values pushed by a watch, awaited one by one. */
class Inbox<T> {
  readonly #items: T[] = [];
  readonly #waiters: ((v: T) => void)[] = [];
  readonly push = (value: T): void => {
    const w = this.#waiters.shift();
    if (w) w(value);
    else this.#items.push(value);
  };
  next(): Promise<T> {
    if (this.#items.length > 0) return Promise.resolve(this.#items.shift() as T);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
  /** The next value that passes `test`, dropping the others. */
  async nextMatching(test: (v: T) => boolean): Promise<T> {
    for (;;) {
      const v = await this.next();
      if (test(v)) return v;
    }
  }
}

const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function fake(...args: Parameters<typeof startFakeWorkloadApi>): Promise<FakeWorkloadApi> {
  const api = await startFakeWorkloadApi(...args);
  cleanups.push(() => api.close());
  return api;
}

function client(api: FakeWorkloadApi, options: WorkloadApiClientOptions = {}): WorkloadApiClient {
  const c = createWorkloadApiClient({ address: api.address, backoff: FAST, ...options });
  cleanups.push(() => c.close());
  return c;
}

function watchX509(c: WorkloadApiClient, signal?: AbortSignal) {
  const updates = new Inbox<X509Context>();
  const errors = new Inbox<Error>();
  const done = c.watchX509Context({ onUpdate: updates.push, onError: errors.push }, signal);
  done.catch(() => {});
  return { updates, errors, done };
}

const grpcCode = (e: Error) => (e instanceof WorkloadApiError ? e.grpcCode : undefined);

describe('WorkloadApiClient against a real gRPC Workload API', { timeout: 20_000 }, () => {
  it('fetchX509Context: the SVID, its own bundle and the federated bundles (W-6)', async () => {
    const svid = ca.issueX509Svid(webId, { hint: 'internal' });
    const api = await fake({ svids: [svid], bundles: BundleSet.of(ca.x509Bundle(), fedCa.x509Bundle()) });
    const ctx = await client(api).fetchX509Context();
    assert.equal(ctx.svids.length, 1);
    const got = ctx.svids[0];
    assert.equal(got?.id.toString(), webId);
    assert.equal(got?.hint, 'internal');
    assert.equal(got?.leaf.serialNumber, svid.leaf.serialNumber);
    assert.ok(got?.privateKey.equals(svid.privateKey));
    assert.deepEqual(
      ctx.bundles.trustDomains().map(String),
      ['example.org', 'partner.org'],
      'own trust domain from the SVID, partner from federated_bundles',
    );
    assert.ok(ctx.bundles.getX509BundleForTrustDomain(fedCa.trustDomain)?.equals(fedCa.x509Bundle()));
    assert.ok(ctx.bundles.getX509BundleForTrustDomain(ca.trustDomain)?.equals(ca.x509Bundle()));
  });

  it('the first SVID is the default identity; a duplicate hint keeps the first (W-6)', async () => {
    const a = ca.issueX509Svid('spiffe://example.org/a', { hint: 'h' });
    const b = ca.issueX509Svid('spiffe://example.org/b', { hint: 'h' });
    const c = ca.issueX509Svid('spiffe://example.org/c');
    const api = await fake({ svids: [a, b, c], bundles: BundleSet.of(ca.x509Bundle()) });
    const ctx = await client(api).fetchX509Context();
    assert.deepEqual(
      ctx.svids.map((s) => s.id.toString()),
      ['spiffe://example.org/a', 'spiffe://example.org/c'],
    );
  });

  it('accepts map keys as bare trust domain names as well as spiffe://td (W-8)', async () => {
    const svid = ca.issueX509Svid(webId);
    const raw = svid.marshalRaw();
    const api = await fake();
    api.setX509SvidResponse({
      svids: [
        {
          spiffeId: webId,
          x509Svid: raw.certificates,
          x509SvidKey: raw.privateKey,
          bundle: ca.x509Bundle().marshalRaw(),
        },
      ],
      federatedBundles: {
        'partner.org': fedCa.x509Bundle().marshalRaw(),
        'spiffe://third.org': otherFedCa.x509Bundle().marshalRaw(),
      },
    });
    const ctx = await client(api).fetchX509Context();
    assert.deepEqual(ctx.bundles.trustDomains().map(String), ['example.org', 'partner.org', 'third.org']);
  });

  it('every request carries workload.spiffe.io: true (E-2)', async () => {
    const seen: (string | null)[] = [];
    const spy: Interceptor = (next) => (req) => {
      seen.push(req.header.get('workload.spiffe.io'));
      return next(req);
    };
    const api = await fake({ svids: [ca.issueX509Svid(webId)], bundles: BundleSet.of(ca.x509Bundle()) });
    await client(api, { interceptors: [spy] }).fetchX509Context();
    assert.deepEqual(seen, ['true']);
  });

  it('a watch gets the full state at once and every rotation pushed later (W-3)', async () => {
    const bundles = BundleSet.of(ca.x509Bundle());
    const first = ca.issueX509Svid(webId);
    const api = await fake({ svids: [first], bundles });
    const ac = new AbortController();
    const w = watchX509(client(api), ac.signal);
    assert.equal((await w.updates.next()).svids[0]?.leaf.serialNumber, first.leaf.serialNumber);
    const second = ca.issueX509Svid(webId);
    api.setX509Svids([second], bundles);
    assert.equal((await w.updates.next()).svids[0]?.leaf.serialNumber, second.leaf.serialNumber);
    ac.abort();
    await w.done;
  });

  it('a federated bundle absent from a later message is removed (W-4)', async () => {
    const svid = ca.issueX509Svid(webId);
    const api = await fake({ svids: [svid], bundles: BundleSet.of(ca.x509Bundle(), fedCa.x509Bundle()) });
    const ac = new AbortController();
    const w = watchX509(client(api), ac.signal);
    assert.ok((await w.updates.next()).bundles.has('partner.org'));
    api.setX509Svids([svid], BundleSet.of(ca.x509Bundle()));
    const later = await w.updates.next();
    assert.equal(later.bundles.has('partner.org'), false, 'redacted by omission');
    assert.deepEqual(later.bundles.trustDomains().map(String), ['example.org']);
    ac.abort();
    await w.done;
  });

  it('without the security header the endpoint answers InvalidArgument and the watch stops, no retry (E-2, E-5, W-12)', async () => {
    const api = await fake({ svids: [ca.issueX509Svid(webId)], bundles: BundleSet.of(ca.x509Bundle()) });
    const stripHeader: Interceptor = (next) => (req) => {
      req.header.delete('workload.spiffe.io');
      return next(req);
    };
    const c = client(api, { interceptors: [stripHeader] });
    await assert.rejects(c.fetchX509Context(), (err: unknown) => {
      assert.ok(err instanceof WorkloadApiError);
      assert.equal(err.code, 'ERR_WORKLOADAPI_STATUS');
      assert.equal(err.grpcCode, Code.InvalidArgument);
      assert.match(err.message, /security header missing/);
      return true;
    });
    const w = watchX509(c);
    await assert.rejects(w.done, { code: 'ERR_WORKLOADAPI_STATUS', grpcCode: Code.InvalidArgument });
    assert.equal(grpcCode(await w.errors.next()), Code.InvalidArgument, 'onError heard it too');
    assert.equal(api.requestCount('FetchX509SVID'), 2, 'one fetch, one watch attempt: no retry');
  });

  it('PermissionDenied: the watch backs off and recovers when an identity appears (E-5)', async () => {
    const api = await fake();
    const ac = new AbortController();
    const w = watchX509(client(api), ac.signal);
    assert.equal(grpcCode(await w.errors.next()), Code.PermissionDenied);
    assert.equal(grpcCode(await w.errors.next()), Code.PermissionDenied, 'retried');
    const svid = ca.issueX509Svid(webId);
    api.setX509Svids([svid], BundleSet.of(ca.x509Bundle()));
    assert.equal((await w.updates.next()).svids[0]?.id.toString(), webId);
    ac.abort();
    await w.done;
  });

  it('an identity removed mid-stream ends it with PermissionDenied; the watch resumes when it is back (W-6)', async () => {
    const bundles = BundleSet.of(ca.x509Bundle());
    const api = await fake({ svids: [ca.issueX509Svid(webId)], bundles });
    const ac = new AbortController();
    const w = watchX509(client(api), ac.signal);
    await w.updates.next();
    api.clearX509Svids();
    assert.equal(grpcCode(await w.errors.next()), Code.PermissionDenied);
    const again = ca.issueX509Svid(webId);
    api.setX509Svids([again], bundles);
    assert.equal((await w.updates.next()).svids[0]?.leaf.serialNumber, again.leaf.serialNumber);
    ac.abort();
    await w.done;
  });

  it('server restart: the watch reconnects on a fresh stream and gets the full state (W-12)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'steeple-wl-restart-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const socketPath = join(dir, 'api.sock');
    const bundles = BundleSet.of(ca.x509Bundle());
    const before = ca.issueX509Svid(webId);
    const first = await startFakeWorkloadApi({ socketPath, svids: [before], bundles });
    const ac = new AbortController();
    const w = watchX509(client(first), ac.signal);
    assert.equal((await w.updates.next()).svids[0]?.leaf.serialNumber, before.leaf.serialNumber);
    await first.close();
    const dropped = await w.errors.next();
    assert.equal(dropped instanceof WorkloadApiError && dropped.code, 'ERR_WORKLOADAPI_STATUS');
    assert.equal(grpcCode(dropped), Code.Unavailable, dropped.message);
    const afterSvid = ca.issueX509Svid(webId);
    const second = await fake({ socketPath, svids: [afterSvid], bundles });
    const resumed = await w.updates.nextMatching((c) => c.svids[0]?.leaf.serialNumber === afterSvid.leaf.serialNumber);
    assert.ok(resumed);
    assert.equal(second.requestCount('FetchX509SVID'), 1);
    ac.abort();
    await w.done;
  });

  it('an unreachable endpoint is ERR_WORKLOADAPI_STATUS Unavailable (E-5)', async () => {
    const c = createWorkloadApiClient({ address: `unix://${join(tmpdir(), 'steeple-no-such-dir', 'api.sock')}` });
    cleanups.push(() => c.close());
    await assert.rejects(c.fetchX509Context(), { code: 'ERR_WORKLOADAPI_STATUS', grpcCode: Code.Unavailable });
  });

  it('falls back to SPIFFE_ENDPOINT_SOCKET when no address is given (E-4)', async () => {
    const api = await fake({ svids: [ca.issueX509Svid(webId)], bundles: BundleSet.of(ca.x509Bundle()) });
    const saved = process.env[SPIFFE_ENDPOINT_SOCKET];
    process.env[SPIFFE_ENDPOINT_SOCKET] = api.address;
    let c: WorkloadApiClient;
    try {
      c = createWorkloadApiClient();
    } finally {
      if (saved === undefined) delete process.env[SPIFFE_ENDPOINT_SOCKET];
      else process.env[SPIFFE_ENDPOINT_SOCKET] = saved;
    }
    cleanups.push(() => c.close());
    assert.equal((await c.fetchX509Context()).svids[0]?.id.toString(), webId);
  });

  it('an invalid address fails at construction with ERR_WORKLOADAPI_ADDRESS', () => {
    assert.throws(() => createWorkloadApiClient({ address: 'tcp://localhost:8081' }), {
      code: 'ERR_WORKLOADAPI_ADDRESS',
    });
  });

  it('cancellation ends a watch quietly; close() ends the rest and refuses later calls (W-12)', async () => {
    const api = await fake({ svids: [ca.issueX509Svid(webId)], bundles: BundleSet.of(ca.x509Bundle()) });
    const c = createWorkloadApiClient({ address: api.address });
    const ac = new AbortController();
    const a = watchX509(c, ac.signal);
    const b = watchX509(c);
    await a.updates.next();
    await b.updates.next();
    ac.abort();
    await a.done;
    await c.close();
    await b.done;
    assert.equal(c.closed, true);
    await assert.rejects(c.fetchX509Context(), { code: 'ERR_WORKLOADAPI_CLOSED' });
    await assert.rejects(c.watchX509Context({ onUpdate() {} }), { code: 'ERR_WORKLOADAPI_CLOSED' });
    await c.close();
  });
});

describe('WorkloadApiClient with bad data from the endpoint', { timeout: 20_000 }, () => {
  const good = ca.issueX509Svid(webId);
  const goodRaw = good.marshalRaw();
  const other = ca.issueX509Svid(webId).marshalRaw();
  const entry = {
    spiffeId: webId,
    x509Svid: goodRaw.certificates,
    x509SvidKey: goodRaw.privateKey,
    bundle: ca.x509Bundle().marshalRaw(),
  };

  const cases: [string, Parameters<FakeWorkloadApi['setX509SvidResponse']>[0], (err: unknown) => boolean][] = [
    [
      'zero SVIDs (W-6)',
      { svids: [] },
      (e) => e instanceof WorkloadApiError && e.code === 'ERR_WORKLOADAPI_RESPONSE' && /no SVIDs/.test(e.message),
    ],
    [
      'garbage certificate DER',
      { svids: [{ ...entry, x509Svid: Buffer.from('not a certificate') }] },
      (e) => e instanceof X509SvidError && e.code === 'ERR_X509SVID_INVALID' && /svids\[0\]/.test(e.message),
    ],
    [
      'a private key that is not the leaf’s',
      { svids: [{ ...entry, x509SvidKey: other.privateKey }] },
      (e) => e instanceof X509SvidError && e.code === 'ERR_X509SVID_KEY_MISMATCH',
    ],
    [
      'garbage key DER',
      { svids: [{ ...entry, x509SvidKey: Buffer.from([1, 2, 3]) }] },
      (e) => e instanceof X509SvidError && e.code === 'ERR_X509SVID_INVALID',
    ],
    [
      'a spiffe_id that differs from the certificate (W-6)',
      { svids: [{ ...entry, spiffeId: 'spiffe://example.org/not-web' }] },
      (e) => e instanceof WorkloadApiError && e.code === 'ERR_WORKLOADAPI_RESPONSE' && /differs/.test(e.message),
    ],
    [
      'an empty bundle (W-5)',
      { svids: [{ ...entry, bundle: new Uint8Array() }] },
      (e) =>
        e instanceof WorkloadApiError && e.code === 'ERR_WORKLOADAPI_RESPONSE' && /bundle is empty/.test(e.message),
    ],
    [
      'garbage bundle DER',
      { svids: [{ ...entry, bundle: Buffer.from([0x30, 0x03, 1]) }] },
      (e) => e instanceof BundleError && e.code === 'ERR_BUNDLE_INVALID',
    ],
    [
      'a federated bundle keyed by something that is no trust domain (W-8)',
      { svids: [entry], federatedBundles: { 'https://partner.org': fedCa.x509Bundle().marshalRaw() } },
      (e) =>
        e instanceof WorkloadApiError && e.code === 'ERR_WORKLOADAPI_RESPONSE' && /not a trust domain/.test(e.message),
    ],
  ];

  for (const [what, response, check] of cases) {
    it(`fetchX509Context rejects ${what} with a typed error`, async () => {
      const api = await fake();
      api.setX509SvidResponse(response);
      await assert.rejects(client(api).fetchX509Context(), check);
    });
  }

  it('a watch reports a bad update, ignores it, and takes the next good one', async () => {
    const bundles = BundleSet.of(ca.x509Bundle());
    const api = await fake({ svids: [good], bundles });
    const ac = new AbortController();
    const w = watchX509(client(api), ac.signal);
    await w.updates.next();
    api.setX509SvidResponse({ svids: [{ ...entry, x509SvidKey: other.privateKey }] });
    const err = await w.errors.next();
    assert.equal((err as X509SvidError).code, 'ERR_X509SVID_KEY_MISMATCH');
    const next = ca.issueX509Svid(webId);
    api.setX509Svids([next], bundles);
    assert.equal((await w.updates.next()).svids[0]?.leaf.serialNumber, next.leaf.serialNumber);
    ac.abort();
    await w.done;
  });
});

describe('WorkloadApiClient bundles and JWT-SVIDs', { timeout: 20_000 }, () => {
  const jwtA = createTestJwtAuthority({ trustDomain: 'example.org' });
  const jwtP = createTestJwtAuthority({ trustDomain: 'partner.org' });

  it('fetchX509Bundles: every trusted trust domain (W-7); an empty map is refused', async () => {
    const api = await fake({
      svids: [ca.issueX509Svid(webId)],
      bundles: BundleSet.of(ca.x509Bundle(), fedCa.x509Bundle()),
    });
    const c = client(api);
    const set = await c.fetchX509Bundles();
    assert.deepEqual(set.trustDomains().map(String), ['example.org', 'partner.org']);
    api.setX509BundlesResponse({ bundles: {} });
    await assert.rejects(c.fetchX509Bundles(), { code: 'ERR_WORKLOADAPI_RESPONSE' });
  });

  it('fetchJwtBundles and watchJwtBundles: JWK Sets per trust domain, removal applied (W-10, W-4)', async () => {
    const api = await fake({ jwtBundles: BundleSet.of(jwtA.jwtBundle(), jwtP.jwtBundle()) });
    const c = client(api);
    const set = await c.fetchJwtBundles();
    assert.ok(set.getJwtBundleForTrustDomain(jwtA.trustDomain)?.hasAuthority(jwtA.kid));
    assert.ok(set.getJwtBundleForTrustDomain(jwtP.trustDomain)?.hasAuthority(jwtP.kid));
    const updates = new Inbox<BundleSet>();
    const ac = new AbortController();
    const done = c.watchJwtBundles({ onUpdate: updates.push }, ac.signal);
    assert.equal((await updates.next()).size, 2);
    api.setJwtBundles(BundleSet.of(jwtA.jwtBundle()));
    assert.deepEqual((await updates.next()).trustDomains().map(String), ['example.org']);
    ac.abort();
    await done;
  });

  it('fetchJwtSvid: a token for the audience, for the default identity or a named subject (W-9)', async () => {
    const requests: { audience: readonly string[]; spiffeId?: string }[] = [];
    const api = await fake({ jwtBundles: BundleSet.of(jwtA.jwtBundle()) });
    api.setJwtSvidMinter((req) => {
      requests.push({ audience: req.audience, ...(req.spiffeId ? { spiffeId: req.spiffeId.toString() } : {}) });
      const ids = req.spiffeId ? [req.spiffeId.toString()] : [webId, 'spiffe://example.org/batch'];
      return ids.map((id) => jwtA.mint(id, [...req.audience]));
    });
    const c = client(api);
    const svid = await c.fetchJwtSvid({ audience: 'spiffe://example.org/db' });
    assert.equal(svid.id.toString(), webId);
    assert.deepEqual(svid.audience, ['spiffe://example.org/db']);
    const all = await c.fetchJwtSvids({ audience: ['a', 'b'] });
    assert.deepEqual(
      all.map((s) => s.id.toString()),
      [webId, 'spiffe://example.org/batch'],
    );
    const batch = await c.fetchJwtSvid({ audience: 'a', extraAudiences: ['b'], subject: 'spiffe://example.org/batch' });
    assert.equal(batch.id.toString(), 'spiffe://example.org/batch');
    assert.deepEqual(requests.at(-1), { audience: ['a', 'b'], spiffeId: 'spiffe://example.org/batch' });
    await assert.rejects(c.fetchJwtSvid({ audience: [] }), TypeError);
  });

  it('fetchJwtSvids keeps the hint of each SVID; a repeated hint keeps the first (W-6)', async () => {
    const api = await fake();
    api.setJwtSvidMinter((req) => [
      { token: jwtA.mint(webId, [...req.audience]), hint: 'internal' },
      { token: jwtA.mint('spiffe://example.org/batch', [...req.audience]), hint: 'internal' },
      { token: jwtA.mint('spiffe://example.org/other', [...req.audience]) },
    ]);
    const all = await client(api).fetchJwtSvids({ audience: 'db' });
    assert.deepEqual(
      all.map((s) => [s.id.toString(), s.hint]),
      [
        [webId, 'internal'],
        ['spiffe://example.org/other', undefined],
      ],
    );
  });

  it('fetchJwtSvid refuses a token for another audience, a mismatched spiffe_id, or none at all', async () => {
    const api = await fake();
    const c = client(api);
    api.setJwtSvidMinter(() => jwtA.mint(webId, 'someone-else'));
    await assert.rejects(c.fetchJwtSvid({ audience: 'db' }), { code: 'ERR_JWTSVID_AUDIENCE' });
    api.setJwtSvidMinter((req) => ({ token: jwtA.mint(webId, [...req.audience]), spiffeId: 'spiffe://example.org/x' }));
    await assert.rejects(c.fetchJwtSvid({ audience: 'db' }), { code: 'ERR_WORKLOADAPI_RESPONSE' });
    api.setJwtSvidMinter(() => []);
    await assert.rejects(c.fetchJwtSvid({ audience: 'db' }), { code: 'ERR_WORKLOADAPI_RESPONSE' });
    api.setJwtSvidMinter(undefined);
    await assert.rejects(c.fetchJwtSvid({ audience: 'db' }), {
      code: 'ERR_WORKLOADAPI_STATUS',
      grpcCode: Code.PermissionDenied,
    });
  });

  it('validateJwtSvid: the endpoint validates with own and federated bundles (W-11)', async () => {
    const api = await fake({ jwtBundles: BundleSet.of(jwtA.jwtBundle(), jwtP.jwtBundle()) });
    const c = client(api);
    const own = await c.validateJwtSvid(jwtA.mint(webId, 'api'), 'api');
    assert.equal(own.id.toString(), webId);
    const foreign = await c.validateJwtSvid(jwtP.mint('spiffe://partner.org/app', ['api', 'x']), 'api');
    assert.equal(foreign.id.toString(), 'spiffe://partner.org/app');
    await assert.rejects(c.validateJwtSvid(jwtA.mint(webId, 'other'), 'api'), {
      code: 'ERR_WORKLOADAPI_STATUS',
      grpcCode: Code.InvalidArgument,
    });
    const stranger = createTestJwtAuthority({ trustDomain: 'example.org' });
    await assert.rejects(c.validateJwtSvid(stranger.mint(webId, 'api'), 'api'), {
      grpcCode: Code.InvalidArgument,
    });
    await assert.rejects(c.validateJwtSvid('', 'api'), TypeError);
  });
});
