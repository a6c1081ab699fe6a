import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { BundleSet } from '../bundle/bundle-set.js';
import { JwtSvid } from '../svid/jwt-svid.js';
import type { JwtSvidSource } from '../svid/jwt-svid-source.js';
import { type FakeWorkloadApi, startFakeWorkloadApi } from '../testing/fake-workload-api.js';
import { createTestJwtAuthority } from '../testing/jwt-authority.js';
import { createTestCa } from '../testing/test-ca.js';
import { WorkloadApiBundleSource } from './bundle-source.js';
import { JwtSource } from './jwt-source.js';

const jwtA = createTestJwtAuthority({ trustDomain: 'example.org' });
const jwtP = createTestJwtAuthority({ trustDomain: 'partner.org' });
const caA = createTestCa({ trustDomain: 'example.org' });
const caP = createTestCa({ trustDomain: 'partner.org' });
const webId = 'spiffe://example.org/web';
const FAST = { initialDelayMs: 5, maxDelayMs: 40 } as const;

const cleanups: (() => unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function fake(): Promise<FakeWorkloadApi> {
  const api = await startFakeWorkloadApi({
    svids: [caA.issueX509Svid(webId)],
    bundles: BundleSet.of(caA.x509Bundle(), caP.x509Bundle()),
    jwtBundles: BundleSet.of(jwtA.jwtBundle(), jwtP.jwtBundle()),
    jwtSvidMinter: (req) => jwtA.mint(req.spiffeId ?? webId, [...req.audience]),
  });
  cleanups.push(() => api.close());
  return api;
}

describe('JwtSource', { timeout: 20_000 }, () => {
  it('fetches JWT-SVIDs and validates incoming tokens against the watched JWT bundles', async () => {
    const api = await fake();
    const source = await JwtSource.create({ address: api.address, backoff: FAST });
    cleanups.push(() => source.close());
    const asSvidSource: JwtSvidSource = source;
    const svid = await asSvidSource.fetchJwtSvid({ audience: 'spiffe://example.org/db' });
    assert.equal(svid.id.toString(), webId);
    assert.equal((await source.fetchJwtSvid('db')).id.toString(), webId);
    const incoming = jwtP.mint('spiffe://partner.org/app', 'spiffe://example.org/web');
    const validated = await JwtSvid.parseAndValidate(incoming, source, ['spiffe://example.org/web']);
    assert.equal(validated.id.toString(), 'spiffe://partner.org/app');
    assert.ok(source.getJwtBundleForTrustDomain('partner.org')?.hasAuthority(jwtP.kid));
  });

  it('stays current: a removed trust domain stops validating (W-4)', async () => {
    const api = await fake();
    const source = await JwtSource.create({ address: api.address, backoff: FAST });
    cleanups.push(() => source.close());
    const updated = new Promise<BundleSet>((resolve) => source.onUpdate(resolve));
    api.setJwtBundles(BundleSet.of(jwtA.jwtBundle()));
    assert.deepEqual((await updated).trustDomains().map(String), ['example.org']);
    assert.equal(source.getJwtBundleForTrustDomain('partner.org'), undefined);
    await assert.rejects(JwtSvid.parseAndValidate(jwtP.mint('spiffe://partner.org/app', 'x'), source, ['x']), {
      code: 'ERR_JWTSVID_UNTRUSTED',
    });
  });

  it('after close() every method refuses with ERR_WORKLOADAPI_CLOSED', async () => {
    const api = await fake();
    const source = await JwtSource.create({ address: api.address });
    await source.close();
    assert.throws(() => source.getJwtBundleForTrustDomain('example.org'), { code: 'ERR_WORKLOADAPI_CLOSED' });
    await assert.rejects(source.fetchJwtSvid('db'), { code: 'ERR_WORKLOADAPI_CLOSED' });
  });
});

describe('WorkloadApiBundleSource', { timeout: 20_000 }, () => {
  it('serves X.509 bundles from FetchX509Bundles and JWT bundles from FetchJWTBundles (W-7, W-10, W-13)', async () => {
    const api = await fake();
    const source = await WorkloadApiBundleSource.create({ address: api.address, backoff: FAST });
    cleanups.push(() => source.close());
    assert.ok(source.getX509BundleForTrustDomain('partner.org')?.equals(caP.x509Bundle()));
    assert.ok(source.getJwtBundleForTrustDomain('partner.org')?.hasAuthority(jwtP.kid));
    assert.equal(source.getX509Bundles().length, 2);
    assert.deepEqual(source.bundles.trustDomains().map(String), ['example.org', 'partner.org']);
    const x509Array = source.getX509Bundles();
    const updated = new Promise<BundleSet>((resolve) => source.onUpdate(resolve));
    api.setJwtBundles(BundleSet.of(jwtA.jwtBundle()));
    await updated;
    assert.equal(source.getJwtBundleForTrustDomain('partner.org'), undefined);
    assert.equal(source.getX509Bundles(), x509Array, 'a JWT change leaves the X.509 array alone');
    assert.ok(source.getX509BundleForTrustDomain('partner.org'), 'X.509 bundles unaffected');
  });

  it('resolves only when both kinds of bundle have arrived', async () => {
    const api = await startFakeWorkloadApi({
      svids: [caA.issueX509Svid(webId)],
      bundles: BundleSet.of(caA.x509Bundle()),
    });
    cleanups.push(() => api.close());
    let resolved = false;
    const pending = WorkloadApiBundleSource.create({ address: api.address, backoff: FAST }).then((s) => {
      resolved = true;
      cleanups.push(() => s.close());
      return s;
    });
    while (api.requestCount('FetchJWTBundles') < 2) await new Promise((r) => setTimeout(r, 5));
    assert.equal(resolved, false, 'no JWT bundles yet (PermissionDenied, retried)');
    api.setJwtBundles(BundleSet.of(jwtA.jwtBundle()));
    const source = await pending;
    assert.ok(source.getJwtBundleForTrustDomain('example.org')?.hasAuthority(jwtA.kid));
  });
});
