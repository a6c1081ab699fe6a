import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { SpiffeBundle } from '@steeple/spiffe';
import { createTestCa, createTestJwtAuthority, ManualClock } from '@steeple/spiffe/testing';
import { EntrySchema } from '../../gen/steeple/types/v1/entry_pb.js';
import { BundleCache, jwtBundleJwks, x509BundleDer } from './bundle-cache.js';
import { entryFromProto, entryMatches } from './cached-entry.js';
import { EntryCache } from './entry-cache.js';
import { rotationTime } from './issued-x509-svid.js';
import { JwtSvidCache, jwtCacheKey } from './jwt-svid-cache.js';
import { WorkloadCache } from './workload-cache.js';

const agentId = 'spiffe://example.org/spire/agent/join_token/t';
const entry = (id: string, spiffeId: string, selectors: string[], parentId = agentId, rev = 1n) =>
  create(EntrySchema, {
    id,
    spiffeId,
    parentId,
    selectors: selectors.map((s) => ({ type: s.slice(0, s.indexOf(':')), value: s.slice(s.indexOf(':') + 1) })),
    revisionNumber: rev,
    createdAt: BigInt(id.charCodeAt(0)),
  });

describe('agent cache', () => {
  it('matches an entry only when ALL its selectors are the workload’s', () => {
    const e = entryFromProto(entry('a', 'spiffe://example.org/web', ['unix:uid:1000', 'unix:gid:5']));
    assert.equal(entryMatches(e, new Set(['unix:uid:1000', 'unix:gid:5', 'unix:user:web'])), true);
    assert.equal(entryMatches(e, new Set(['unix:uid:1000'])), false);
    assert.equal(
      entryMatches(entryFromProto(entry('b', 'spiffe://example.org/x', [])), new Set(['unix:uid:1'])),
      false,
    );
  });

  it('applies full and delta syncs by revision', () => {
    const cache = new EntryCache();
    let changes = cache.apply({
      revision: 5n,
      full: true,
      entries: [
        entry('a', 'spiffe://example.org/a', ['unix:uid:1']),
        entry('b', 'spiffe://example.org/b', ['unix:uid:1']),
      ],
      deletedEntryIds: [],
    });
    assert.equal(changes.upserted.length, 2);
    assert.equal(cache.revision, 5n);
    changes = cache.apply({
      revision: 7n,
      full: false,
      entries: [entry('c', 'spiffe://example.org/c', ['unix:uid:1'], agentId, 7n)],
      deletedEntryIds: ['a', 'zz'],
    });
    assert.deepEqual(
      changes.upserted.map((e) => e.id),
      ['c'],
    );
    assert.deepEqual(changes.removed, ['a']);
    changes = cache.apply({
      revision: 8n,
      full: true,
      entries: [entry('c', 'spiffe://example.org/c', ['unix:uid:1'], agentId, 7n)],
      deletedEntryIds: [],
    });
    assert.deepEqual(changes, { upserted: [], removed: ['b'] });
  });

  it('serves entries of the agent and its aliases whose selector types an attestor produces', () => {
    const ca = createTestCa({ trustDomain: 'example.org' });
    const entries = new EntryCache();
    entries.apply({
      revision: 1n,
      full: true,
      deletedEntryIds: [],
      entries: [
        entry('a', 'spiffe://example.org/web', ['unix:uid:1']),
        entry('b', 'spiffe://example.org/alias', [`spiffe_id:${agentId}`]),
        entry('c', 'spiffe://example.org/via-alias', ['unix:uid:1'], 'spiffe://example.org/alias'),
        entry('d', 'spiffe://example.org/node-group', ['join_token:t'], 'spiffe://example.org/spire/server'),
        entry('e', 'spiffe://example.org/via-node-group', ['unix:uid:1'], 'spiffe://example.org/node-group'),
        entry('f', 'spiffe://example.org/k8s', ['k8s:ns:default'], agentId),
        entry('g', 'spiffe://example.org/nested', ['unix:uid:1'], 'spiffe://example.org/web'),
      ],
    });
    const cache = new WorkloadCache({
      entries,
      bundles: new BundleCache(SpiffeBundle.fromBundles({ x509: ca.x509Bundle() })),
      agentId,
      selectorTypes: ['unix'],
    });
    assert.deepEqual(
      cache.servedEntries().map((e) => e.id),
      ['a', 'c', 'e'],
    );
    assert.deepEqual(
      cache.view(new Set(['unix:uid:1'])).identities.map((i) => i.entry.id),
      ['a', 'c', 'e'],
    );
    assert.deepEqual(cache.view(new Set(['unix:uid:2'])).identities, []);
  });

  it('rotates at half life, jittered by at most ±10 %', () => {
    const from = 0;
    const to = 3600_000;
    assert.equal(
      rotationTime(from, to, () => 0.5),
      1800_000,
    );
    assert.equal(
      rotationTime(from, to, () => 0),
      1800_000 - 180_000,
    );
    assert.equal(
      rotationTime(from, to, () => 0.999999),
      1800_000 + 180_000 - 0,
    );
  });

  it('keeps JWT-SVIDs per entry and audience set until half life, minting once for concurrent calls', async () => {
    const clock = new ManualClock(new Date('2030-01-01T00:00:00Z'));
    const cache = new JwtSvidCache(clock);
    let minted = 0;
    const now = () => Math.floor(clock.now().getTime() / 1000);
    const mint = async () => ({
      spiffeId: 'spiffe://example.org/web',
      token: `t${++minted}`,
      issuedAt: now(),
      expiresAt: now() + 300,
    });
    const [a, b] = await Promise.all([cache.get('e', ['x', 'y'], mint), cache.get('e', ['y', 'x', 'x'], mint)]);
    assert.equal(a.token, 't1');
    assert.equal(b.token, 't1');
    clock.advance(149_000);
    assert.equal((await cache.get('e', ['x', 'y'], mint)).token, 't1');
    clock.advance(1000);
    assert.equal((await cache.get('e', ['x', 'y'], mint)).token, 't2');
    assert.equal((await cache.get('e', ['x'], mint)).token, 't3');
    cache.retain(() => false);
    assert.equal(cache.size, 0);
    assert.equal(jwtCacheKey('e', ['b', 'a']), 'e\na\nb');
  });

  it('encodes bundles once: concatenated DER roots and a JWK Set of jwt-svid keys', () => {
    const ca = createTestCa({ trustDomain: 'example.org' });
    const jwt = createTestJwtAuthority({ trustDomain: 'example.org' });
    const bundle = SpiffeBundle.fromBundles({ x509: ca.x509Bundle(), jwt: jwt.jwtBundle() });
    assert.deepEqual(x509BundleDer(bundle), ca.certificate.raw);
    assert.equal(x509BundleDer(bundle), x509BundleDer(bundle), 'memoized');
    const jwks = JSON.parse(jwtBundleJwks(bundle).toString('utf8'));
    assert.deepEqual(
      jwks.keys.map((k: { use: string; kid: string }) => [k.use, k.kid]),
      [['jwt-svid', jwt.kid]],
    );
    const cache = new BundleCache(bundle);
    const partner = SpiffeBundle.fromBundles({ x509: createTestCa({ trustDomain: 'partner.org' }).x509Bundle() });
    assert.deepEqual([...cache.replace(bundle, [partner], 2n)], ['partner.org']);
    assert.deepEqual([...cache.replace(bundle, [], 3n)], ['partner.org'], 'a removed federated bundle is a change');
  });
});
