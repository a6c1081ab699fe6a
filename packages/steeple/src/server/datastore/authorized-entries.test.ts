import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { computeAuthorizedEntries, EntryIndex, isNodeAlias, serverIdFor } from './authorized-entries.js';
import { EntryCache } from './entry-cache.js';
import type { EntryChanges, RegistrationEntry, Selector } from './types.js';

const TD = 'example.org';
const AGENT = `spiffe://${TD}/spire/agent/join_token/t1`;
const SERVER = serverIdFor(TD);
const sel = (type: string, value: string): Selector => ({ type, value });

let counter = 0;
function make(spiffePath: string, parentId: string, selectors: Selector[] = [sel('unix', 'uid:1')]): RegistrationEntry {
  counter++;
  return {
    id: `id-${String(counter).padStart(4, '0')}`,
    spiffeId: `spiffe://${TD}${spiffePath}`,
    parentId,
    selectors,
    x509SvidTtl: 0,
    jwtSvidTtl: 0,
    dnsNames: [],
    federatesWith: [],
    admin: false,
    downstream: false,
    hint: '',
    expiresAt: null,
    createdAt: 0,
    revisionNumber: counter,
  };
}

const ids = (list: readonly RegistrationEntry[]) => list.map((e) => e.id).sort();

describe('authorized entries (SPIRE semantics)', () => {
  it('recognizes node aliases by the server ID as parent', () => {
    assert.equal(serverIdFor(TD), 'spiffe://example.org/spire/server');
    assert.ok(isNodeAlias({ parentId: 'spiffe://example.org/spire/server' }));
    assert.ok(!isNodeAlias({ parentId: 'spiffe://example.org/spire/server/x' }));
    assert.ok(!isNodeAlias({ parentId: 'spiffe://example.org/spire/agent' }));
    assert.ok(!isNodeAlias({ parentId: '/spire/server' }));
  });

  it('authorizes children of the agent, of matching aliases, and their descendants — never the aliases', () => {
    const aliasEu = make('/node/eu', SERVER, [sel('region', 'eu')]);
    const aliasEuProd = make('/node/eu-prod', SERVER, [sel('region', 'eu'), sel('env', 'prod')]);
    const aliasUs = make('/node/us', SERVER, [sel('region', 'us')]);
    const direct = make('/direct', AGENT);
    const viaEu = make('/via-eu', aliasEu.spiffeId);
    const viaEuProd = make('/via-eu-prod', aliasEuProd.spiffeId);
    const viaUs = make('/via-us', aliasUs.spiffeId);
    const child = make('/child', direct.spiffeId);
    const grandchild = make('/grandchild', child.spiffeId);
    const otherAgent = make('/other', `spiffe://${TD}/spire/agent/join_token/t2`);
    const all = [aliasEu, aliasEuProd, aliasUs, direct, viaEu, viaEuProd, viaUs, child, grandchild, otherAgent];
    const index = new EntryIndex(all);

    const eu = [sel('join_token', 't1'), sel('region', 'eu')];
    assert.deepEqual(ids(index.authorizedEntries(AGENT, eu)), ids([direct, viaEu, child, grandchild]));
    assert.deepEqual(ids(index.aliasesOf(eu)), ids([aliasEu]), 'an alias needs all of its selectors');
    const euProd = [...eu, sel('env', 'prod')];
    assert.deepEqual(ids(index.authorizedEntries(AGENT, euProd)), ids([direct, viaEu, viaEuProd, child, grandchild]));
    assert.deepEqual(ids(index.authorizedEntries(AGENT, [])), ids([direct, child, grandchild]));
    for (const selectors of [eu, euProd, []]) {
      assert.deepEqual(
        ids(computeAuthorizedEntries(all, AGENT, selectors)),
        ids(index.authorizedEntries(AGENT, selectors)),
      );
    }
  });

  it('terminates on parent cycles and returns each entry once', () => {
    const a = make('/a', AGENT);
    const b = make('/b', a.spiffeId);
    const back = make('/a', b.spiffeId, [sel('unix', 'uid:2')]); // b's child has a's SPIFFE ID again
    const index = new EntryIndex([a, b, back]);
    assert.deepEqual(ids(index.authorizedEntries(AGENT, [])), ids([a, b, back]));
    assert.deepEqual(ids(computeAuthorizedEntries([a, b, back], AGENT, [])), ids([a, b, back]));
  });

  it('an index updated entry by entry answers like the full computation (property)', () => {
    const paths = ['/a', '/b', '/c', '/d'];
    const parents = [AGENT, SERVER, ...paths.map((p) => `spiffe://${TD}${p}`), `spiffe://${TD}/elsewhere`];
    const selectorPool = [sel('region', 'eu'), sel('region', 'us'), sel('env', 'prod')];
    const arbEntry = fc.record({
      slot: fc.integer({ min: 0, max: 11 }),
      path: fc.constantFrom(...paths),
      parent: fc.constantFrom(...parents),
      selectors: fc.subarray(selectorPool),
    });
    const arbOp = fc.oneof(
      arbEntry.map((e) => ({ op: 'upsert' as const, ...e })),
      fc.integer({ min: 0, max: 11 }).map((slot) => ({ op: 'remove' as const, slot })),
    );
    fc.assert(
      fc.property(fc.array(arbOp, { maxLength: 40 }), fc.subarray(selectorPool), (ops, agentSelectors) => {
        const index = new EntryIndex();
        const model = new Map<string, RegistrationEntry>();
        for (const op of ops) {
          const id = `slot-${op.slot}`;
          if (op.op === 'remove') {
            assert.equal(index.remove(id), model.delete(id));
          } else {
            const e = { ...make(op.path, op.parent, op.selectors), id };
            index.upsert(e);
            model.set(id, e);
          }
        }
        assert.equal(index.size, model.size);
        assert.deepEqual(
          ids(index.authorizedEntries(AGENT, agentSelectors)),
          ids(computeAuthorizedEntries(model.values(), AGENT, agentSelectors)),
        );
      }),
      { numRuns: 300 },
    );
  });
});

describe('EntryCache.apply', () => {
  const changes = (
    since: number,
    revision: number,
    events: EntryChanges['events'],
    entries: RegistrationEntry[],
  ): EntryChanges => ({
    since,
    revision,
    events,
    entries,
    more: false,
  });

  it('upserts entries named by events and removes those absent from the changes', () => {
    const a = make('/a', AGENT);
    const b = make('/b', AGENT);
    const cache = new EntryCache([a, b], 2);
    const a2 = { ...a, hint: 'v2', revisionNumber: 3 };
    const touched = cache.apply(
      changes(
        2,
        4,
        [
          { revision: 3, entryId: a.id, kind: 'updated', at: 0 },
          { revision: 4, entryId: b.id, kind: 'deleted', at: 0 },
        ],
        [a2],
      ),
    );
    assert.deepEqual(touched.sort(), [a.id, b.id].sort());
    assert.equal(cache.revision, 4);
    assert.equal(cache.get(a.id)?.hint, 'v2');
    assert.equal(cache.get(b.id), undefined);
    assert.deepEqual(ids(cache.authorizedEntries(AGENT, [])), [a.id]);
  });

  it('serves an agent the same frozen list until the entries change, then a fresh one', () => {
    const a = make('/a', AGENT);
    const alias = make('/node', SERVER, [sel('k8s', 'cluster:c1')]);
    const cache = new EntryCache([a, alias], 2);
    const first = cache.authorizedEntries(AGENT, []);
    assert.equal(cache.authorizedEntries(AGENT, []), first, 'the same list while nothing changed');
    assert.ok(Object.isFrozen(first));
    // Other selectors are another agent state: their own list.
    const viaAlias = cache.authorizedEntries(AGENT, [sel('k8s', 'cluster:c1')]);
    assert.notEqual(viaAlias, first);
    assert.deepEqual(ids(viaAlias), ids([a]));
    const child = make('/a/child', a.spiffeId);
    cache.apply(changes(2, 3, [{ revision: 3, entryId: child.id, kind: 'created', at: 0 }], [child]));
    assert.deepEqual(ids(cache.authorizedEntries(AGENT, [])), ids([a, child]), 'a change makes a fresh list');
    // Many agents: the kept lists are bounded, and an evicted agent's list is computed again.
    for (let i = 0; i < 300; i++) cache.authorizedEntries(`spiffe://${TD}/spire/agent/x/${i}`, []);
    assert.deepEqual(ids(cache.authorizedEntries(AGENT, [])), ids([a, child]));
  });

  it('refuses changes that do not start at its revision (they would skip or replay events)', () => {
    const cache = new EntryCache([], 5);
    assert.throws(() => cache.apply(changes(3, 6, [], [])), RangeError);
    assert.throws(() => cache.apply(changes(6, 7, [], [])), RangeError);
    assert.equal(cache.revision, 5);
  });
});
