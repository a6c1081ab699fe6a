/**
 * The datastore's contract, run against every engine (datastore-sqlite.test.ts,
 * datastore-postgres.test.ts). Each test gets fresh, empty storage and may open it several
 * times, as several servers or as a restarted server would.
 * @module
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { computeAuthorizedEntries } from './authorized-entries.js';
import type { Datastore, DatastoreOptions } from './datastore.js';
import { DatastoreError } from './datastore-error.js';
import { EntryCache } from './entry-cache.js';
import { matchesSet, selectorKey } from './selector-set.js';
import { LATEST_SCHEMA_VERSION } from './sql/migrations.js';
import type { NewEntry, RegistrationEntry, Selector, SetMatch } from './types.js';

export interface DatastoreStorage {
  /** Opens the storage (again); every instance sees the same data. */
  open(options?: DatastoreOptions): Promise<Datastore>;
  /** Runs raw SQL on the storage, to set up states the API cannot produce. */
  exec(sqlText: string): Promise<void>;
  dispose(): Promise<void>;
}

export interface DatastoreHarness {
  fresh(): Promise<DatastoreStorage>;
}

/** A clock the tests move by hand. */
class TestClock {
  seconds = 1_900_000_000;
  now(): Date {
    return new Date(this.seconds * 1000);
  }
}

const TD = 'example.org';
const id = (path: string) => `spiffe://${TD}${path}`;
const sel = (type: string, value: string): Selector => ({ type, value });
const code = (c: string) => (err: unknown) => err instanceof DatastoreError && err.code === c;

function entry(
  path: string,
  parent = '/agent',
  selectors: Selector[] = [sel('unix', 'uid:1000')],
  extra: Partial<NewEntry> = {},
): NewEntry {
  return { spiffeId: id(path), parentId: id(parent), selectors, ...extra };
}

const ids = (list: readonly { id: string }[]) => list.map((e) => e.id).sort();

/** A small deterministic PRNG, so that failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

export function datastoreContract(engineName: string, harness: DatastoreHarness): void {
  describe(`datastore contract on ${engineName}`, () => {
    let storage: DatastoreStorage;
    let clock: TestClock;
    let ds: Datastore;
    const opened: Datastore[] = [];
    const open = async (options: DatastoreOptions = {}) => {
      const d = await storage.open({ clock, ...options });
      opened.push(d);
      return d;
    };

    beforeEach(async () => {
      storage = await harness.fresh();
      clock = new TestClock();
      ds = await open();
    });

    afterEach(async () => {
      for (const d of opened.splice(0)) await d.close().catch(() => undefined);
      await storage.dispose();
    });

    describe('schema and lifecycle', () => {
      it('migrates a new database to the latest version, and a second open applies nothing', async () => {
        assert.deepEqual(ds.migration, { from: 0, to: LATEST_SCHEMA_VERSION });
        const again = await open();
        assert.deepEqual(again.migration, { from: LATEST_SCHEMA_VERSION, to: LATEST_SCHEMA_VERSION });
        const third = await open();
        assert.deepEqual(third.migration, { from: LATEST_SCHEMA_VERSION, to: LATEST_SCHEMA_VERSION });
      });

      it('refuses a database migrated by a newer build (ERR_DATASTORE_SCHEMA_TOO_NEW)', async () => {
        await storage.exec(`insert into schema_migrations (version, name, applied_at) values (9999, 'future', 0)`);
        await assert.rejects(open(), code('ERR_DATASTORE_SCHEMA_TOO_NEW'));
      });

      it('keeps every record across close and reopen', async () => {
        const e = await ds.entries.create(
          entry('/web', '/agent', [sel('unix', 'uid:1')], { federatesWith: ['other.org'] }),
        );
        await ds.agents.create({
          spiffeId: id('/agent'),
          attestationType: 'join_token',
          serialNumber: '1',
          expiresAt: 2e9,
        });
        await ds.joinTokens.create({ token: 'tok-1', expiresAt: 2e9 });
        await ds.bundles.set({ trustDomain: 'other.org', bundle: '{"keys":[]}', sequence: 7n });
        await ds.federation.create({
          trustDomain: 'other.org',
          bundleEndpointUrl: 'https://o/b',
          profile: 'https_web',
        });
        await ds.caJournal.save('x509', 'journal');
        const revision = await ds.entries.currentRevision();
        await ds.close();

        const re = await open();
        assert.deepEqual(await re.entries.get(e.id), e);
        assert.equal(await re.entries.currentRevision(), revision);
        assert.equal((await re.agents.get(id('/agent')))?.serialNumber, '1');
        assert.equal((await re.joinTokens.consume('tok-1', 0))?.token, 'tok-1');
        assert.equal((await re.bundles.get('other.org'))?.sequence, 7n);
        assert.equal((await re.federation.get('other.org'))?.profile, 'https_web');
        assert.equal((await re.caJournal.load('x509'))?.data, 'journal');
      });

      it('returns 64-bit integer columns as exact numbers (times beyond 2^32, revisions, counts)', async () => {
        const far = 2 ** 40 + 1; // does not fit int4
        const e = await ds.entries.create(entry('/w', '/agent', undefined, { expiresAt: far }));
        for (const v of [e.createdAt, e.revisionNumber, e.expiresAt]) assert.equal(typeof v, 'number');
        const got = await ds.entries.get(e.id);
        assert.equal(got?.expiresAt, far);
        assert.equal(typeof got?.createdAt, 'number');
        assert.equal(typeof got?.revisionNumber, 'number');
        const count = await ds.entries.count();
        assert.equal(count, 1);
        const [event] = await ds.entries.listEventsSince(0);
        assert.equal(typeof event?.revision, 'number');
        assert.equal(typeof event?.at, 'number');
        const agent = await ds.agents.create({
          spiffeId: id('/a'),
          attestationType: 'x509pop',
          serialNumber: 'ff',
          expiresAt: far,
        });
        assert.equal((await ds.agents.get(agent.spiffeId))?.expiresAt, far);
        assert.equal(typeof (await ds.agents.count()), 'number');
        assert.equal(typeof (await ds.entries.currentRevision()), 'number');
      });
    });

    describe('registration entries', () => {
      it('creates an entry with canonical selectors and defaults, and gets it back unchanged', async () => {
        const e = await ds.entries.create({
          spiffeId: id('/web'),
          parentId: id('/agent'),
          selectors: [sel('unix', 'uid:1000'), sel('k8s', 'ns:prod'), sel('unix', 'uid:1000'), sel('unix', 'gid:1')],
          dnsNames: ['b.example', 'a.example', 'b.example'],
          federatesWith: ['z.org', 'a.org', 'z.org'],
        });
        assert.match(e.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        assert.deepEqual(e.selectors, [sel('k8s', 'ns:prod'), sel('unix', 'gid:1'), sel('unix', 'uid:1000')]);
        assert.deepEqual(e.dnsNames, ['b.example', 'a.example'], 'DNS names keep their order (the first is the CN)');
        assert.deepEqual(e.federatesWith, ['a.org', 'z.org']);
        assert.equal(e.x509SvidTtl, 0);
        assert.equal(e.jwtSvidTtl, 0);
        assert.equal(e.admin, false);
        assert.equal(e.downstream, false);
        assert.equal(e.hint, '');
        assert.equal(e.expiresAt, null);
        assert.equal(e.createdAt, clock.seconds);
        assert.ok(Object.isFrozen(e) && Object.isFrozen(e.selectors));
        assert.deepEqual(await ds.entries.get(e.id), e);
        assert.equal(await ds.entries.get('00000000-0000-4000-8000-000000000000'), undefined);
      });

      it('refuses a duplicate (same SPIFFE ID, parent and selector set, in any order) naming the existing entry', async () => {
        const first = await ds.entries.create(entry('/web', '/agent', [sel('unix', 'uid:1'), sel('unix', 'gid:2')]));
        const err = await ds.entries
          .create(
            entry('/web', '/agent', [sel('unix', 'gid:2'), sel('unix', 'uid:1')], { hint: 'other fields differ' }),
          )
          .then(
            () => assert.fail('duplicate accepted'),
            (e: unknown) => e,
          );
        assert.ok(err instanceof DatastoreError);
        assert.equal(err.code, 'ERR_ENTRY_DUPLICATE');
        assert.equal(err.existingEntryId, first.id);
        assert.match(err.message, new RegExp(first.id));
        // Any difference in the identity makes it a different entry.
        await ds.entries.create(entry('/web', '/agent', [sel('unix', 'uid:1')]));
        await ds.entries.create(entry('/web', '/other-agent', [sel('unix', 'uid:1'), sel('unix', 'gid:2')]));
        await ds.entries.create(entry('/web2', '/agent', [sel('unix', 'uid:1'), sel('unix', 'gid:2')]));
        assert.equal(await ds.entries.count(), 4);
      });

      it('creates a batch in one transaction: all or nothing, one revision per entry', async () => {
        const batch = Array.from({ length: 500 }, (_, i) => entry(`/w/${i}`));
        const created = await ds.entries.createMany(batch);
        assert.equal(created.length, 500);
        assert.deepEqual(
          created.map((e) => e.spiffeId),
          batch.map((b) => b.spiffeId),
          'returned in input order',
        );
        assert.deepEqual(
          created.map((e) => e.revisionNumber),
          Array.from({ length: 500 }, (_, i) => i + 1),
        );
        assert.equal(await ds.entries.currentRevision(), 500);

        await assert.rejects(ds.entries.createMany([entry('/new/1'), entry('/w/3')]), code('ERR_ENTRY_DUPLICATE'));
        await assert.rejects(ds.entries.createMany([entry('/new/2'), entry('/new/2')]), code('ERR_ENTRY_DUPLICATE'));
        assert.equal(await ds.entries.count(), 500, 'a refused batch writes nothing');
        assert.equal(await ds.entries.currentRevision(), 500, 'nor takes revisions');
        assert.deepEqual(await ds.entries.createMany([]), []);
      });

      it('updates only the given fields, keeps createdAt, and bumps the revision', async () => {
        const e = await ds.entries.create(
          entry('/web', '/agent', [sel('unix', 'uid:1')], { hint: 'h', expiresAt: 2e9 }),
        );
        clock.seconds += 60;
        const u = await ds.entries.update(e.id, {
          x509SvidTtl: 600,
          selectors: [sel('unix', 'uid:2'), sel('unix', 'uid:2')],
        });
        assert.equal(u.x509SvidTtl, 600);
        assert.deepEqual(u.selectors, [sel('unix', 'uid:2')]);
        assert.equal(u.hint, 'h');
        assert.equal(u.spiffeId, e.spiffeId);
        assert.equal(u.createdAt, e.createdAt);
        assert.equal(u.revisionNumber, e.revisionNumber + 1);
        assert.deepEqual(await ds.entries.get(e.id), u);
        // The selector index follows the update.
        assert.deepEqual(
          ids((await ds.entries.list({ selectors: { selectors: [sel('unix', 'uid:2')], match: 'exact' } })).items),
          [e.id],
        );
        assert.equal(await ds.entries.count({ selectors: { selectors: [sel('unix', 'uid:1')], match: 'any' } }), 0);

        const cleared = await ds.entries.update(e.id, { expiresAt: null });
        assert.equal(cleared.expiresAt, null);
        const same = await ds.entries.update(e.id, { hint: 'h' });
        assert.equal(same.revisionNumber, cleared.revisionNumber, 'an update that changes nothing takes no revision');
        assert.equal(await ds.entries.currentRevision(), cleared.revisionNumber);
      });

      it('refuses an update into another entry’s identity, and an update of a missing entry', async () => {
        const a = await ds.entries.create(entry('/a'));
        const b = await ds.entries.create(entry('/b'));
        await assert.rejects(ds.entries.update(b.id, { spiffeId: a.spiffeId }), (err: unknown) => {
          return err instanceof DatastoreError && err.code === 'ERR_ENTRY_DUPLICATE' && err.existingEntryId === a.id;
        });
        assert.deepEqual(await ds.entries.get(b.id), b, 'a refused update changes nothing');
        await assert.rejects(ds.entries.update('missing', { hint: 'x' }), code('ERR_ENTRY_NOT_FOUND'));
      });

      it('deletes an entry and returns it; deleting again is ERR_ENTRY_NOT_FOUND', async () => {
        const e = await ds.entries.create(
          entry('/web', '/agent', [sel('unix', 'uid:1')], { federatesWith: ['o.org'] }),
        );
        assert.deepEqual(await ds.entries.delete(e.id), e);
        assert.equal(await ds.entries.get(e.id), undefined);
        assert.equal(await ds.entries.count({ federatesWith: { trustDomains: ['o.org'], match: 'any' } }), 0);
        await assert.rejects(ds.entries.delete(e.id), code('ERR_ENTRY_NOT_FOUND'));
        // The identity is free again.
        await ds.entries.create(entry('/web', '/agent', [sel('unix', 'uid:1')]));
      });

      it('rejects malformed numbers as programming errors (RangeError), not datastore errors', async () => {
        await assert.rejects(ds.entries.create(entry('/w', '/a', undefined, { x509SvidTtl: -1 })), RangeError);
        await assert.rejects(ds.entries.create(entry('/w', '/a', undefined, { jwtSvidTtl: 1.5 })), RangeError);
        await assert.rejects(ds.entries.list(undefined, { pageSize: -1 }), RangeError);
      });

      it('filters by SPIFFE ID, parent ID, hint and downstream, and counts with the same filters', async () => {
        const a = await ds.entries.create(entry('/a', '/agent1', undefined, { hint: 'x' }));
        const b = await ds.entries.create(entry('/b', '/agent1', undefined, { downstream: true }));
        const c = await ds.entries.create(entry('/a', '/agent2'));
        assert.deepEqual(ids((await ds.entries.list({ spiffeId: id('/a') })).items), ids([a, c]));
        assert.deepEqual(ids((await ds.entries.list({ parentId: id('/agent1') })).items), ids([a, b]));
        assert.deepEqual(ids((await ds.entries.list({ spiffeId: id('/a'), parentId: id('/agent2') })).items), [c.id]);
        assert.deepEqual(ids((await ds.entries.list({ hint: 'x' })).items), [a.id]);
        assert.deepEqual(ids((await ds.entries.list({ downstream: true })).items), [b.id]);
        assert.equal(await ds.entries.count({ parentId: id('/agent1') }), 2);
        assert.equal(await ds.entries.count({ downstream: false }), 2);
        assert.equal(await ds.entries.count(), 3);
      });

      it('matches selectors exact/subset/superset/any like SPIRE -matchSelectorsOn, and federatesWith alike', async () => {
        const pool = [
          sel('unix', 'uid:1'),
          sel('unix', 'uid:2'),
          sel('unix', 'gid:1'),
          sel('k8s', 'ns:a'),
          sel('k8s', 'sa:b'),
        ];
        const tds = ['a.org', 'b.org', 'c.org', 'd.org'];
        const random = rng(42);
        const pick = <T>(from: readonly T[], min: number) => {
          const out = from.filter(() => random() < 0.45);
          while (out.length < min) out.push(from[Math.floor(random() * from.length)]!);
          return out;
        };
        const created: RegistrationEntry[] = [];
        for (let i = 0; i < 60; i++) {
          const input = entry(`/w/${i}`, '/agent', pick(pool, 1), { federatesWith: pick(tds, 0) });
          created.push(await ds.entries.create(input));
        }
        const filters: Selector[][] = [[], [pool[0]!], [pool[0]!, pool[2]!], [pool[3]!, pool[4]!, pool[1]!], pool];
        for (let i = 0; i < 10; i++) filters.push(pick(pool, 1));
        const modes: SetMatch[] = ['exact', 'subset', 'superset', 'any'];
        for (const filter of filters) {
          const filterKeys = new Set(filter.map(selectorKey));
          for (const match of modes) {
            const expected = created.filter((e) =>
              matchesSet(new Set(e.selectors.map(selectorKey)), filterKeys, match),
            );
            const got = await ds.entries.list({ selectors: { selectors: filter, match } });
            assert.deepEqual(ids(got.items), ids(expected), `selectors ${match} ${[...filterKeys].join(',')}`);
            assert.equal(await ds.entries.count({ selectors: { selectors: filter, match } }), expected.length);
          }
        }
        for (const filter of [[], ['a.org'], ['a.org', 'c.org'], tds, pick(tds, 1), pick(tds, 2)]) {
          for (const match of modes) {
            const expected = created.filter((e) => matchesSet(new Set(e.federatesWith), new Set(filter), match));
            const got = await ds.entries.list({ federatesWith: { trustDomains: filter, match } });
            assert.deepEqual(ids(got.items), ids(expected), `federatesWith ${match} ${filter.join(',')}`);
          }
        }
        // Filters combine with AND.
        const both = await ds.entries.list({
          selectors: { selectors: [pool[0]!], match: 'superset' },
          federatesWith: { trustDomains: ['a.org'], match: 'superset' },
        });
        const expectedBoth = created.filter(
          (e) => e.selectors.some((s) => selectorKey(s) === 'unix:uid:1') && e.federatesWith.includes('a.org'),
        );
        assert.deepEqual(ids(both.items), ids(expectedBoth));
      });

      it('paginates by key: every entry exactly once, in id order, stable across concurrent inserts and deletes', async () => {
        const all = await ds.entries.createMany(Array.from({ length: 30 }, (_, i) => entry(`/p/${i}`)));
        const seen: string[] = [];
        let token: string | undefined;
        let pages = 0;
        const deletedMidway: string[] = [];
        do {
          const page = await ds.entries.list(
            { parentId: id('/agent') },
            { pageSize: 7, ...(token ? { pageToken: token } : {}) },
          );
          assert.ok(page.items.length <= 7);
          seen.push(...page.items.map((e) => e.id));
          token = page.nextPageToken;
          pages++;
          if (pages === 2) {
            // Writes between pages neither repeat nor skip the entries that were there all along.
            await ds.entries.create(entry('/p/new'));
            const victim = all.map((e) => e.id).sort()[29]!;
            await ds.entries.delete(victim);
            deletedMidway.push(victim);
          }
        } while (token !== undefined);
        assert.deepEqual(seen, [...seen].sort(), 'id order');
        assert.equal(new Set(seen).size, seen.length, 'no entry twice');
        const survivors = ids(all).filter((x) => !deletedMidway.includes(x));
        for (const s of survivors) assert.ok(seen.includes(s), `entry ${s} was skipped`);
        const full = await ds.entries.list(undefined, { pageSize: 31 });
        assert.equal(full.items.length, 30);
        assert.equal(full.nextPageToken, undefined, 'no token after the last page');
        const exact = await ds.entries.list(undefined, { pageSize: 30 });
        assert.equal(exact.nextPageToken, undefined, 'a full last page carries no token');
      });

      it('prunes expired entries, recording their deletion', async () => {
        const keep = await ds.entries.create(entry('/keep', '/a', undefined, { expiresAt: 2_000_000_000 }));
        const never = await ds.entries.create(entry('/never'));
        const gone = await ds.entries.create(entry('/gone', '/a', undefined, { expiresAt: 1_000 }));
        const before = await ds.entries.currentRevision();
        assert.equal(await ds.entries.pruneExpired(1_950_000_000), 1);
        assert.deepEqual(ids((await ds.entries.list()).items), ids([keep, never]));
        assert.deepEqual(
          (await ds.entries.listEventsSince(before)).map((e) => [e.kind, e.entryId]),
          [['deleted', gone.id]],
        );
      });
    });

    describe('revisions and entry events', () => {
      it('bumps one global revision per change and logs it; deletions appear by id', async () => {
        assert.equal(await ds.entries.currentRevision(), 0);
        const a = await ds.entries.create(entry('/a'));
        const b = await ds.entries.create(entry('/b'));
        await ds.entries.update(a.id, { hint: 'changed' });
        await ds.entries.delete(b.id);
        assert.equal(await ds.entries.currentRevision(), 4);
        const events = await ds.entries.listEventsSince(0);
        assert.deepEqual(
          events.map((e) => [e.revision, e.kind, e.entryId]),
          [
            [1, 'created', a.id],
            [2, 'created', b.id],
            [3, 'updated', a.id],
            [4, 'deleted', b.id],
          ],
        );
        assert.deepEqual(
          (await ds.entries.listEventsSince(2)).map((e) => e.revision),
          [3, 4],
          'exactly the changes after the revision',
        );
        assert.deepEqual(await ds.entries.listEventsSince(4), []);
        assert.deepEqual(
          (await ds.entries.listEventsSince(0, 2)).map((e) => e.revision),
          [1, 2],
        );
      });

      it('returns changes with the current state of changed entries, in pages', async () => {
        const a = await ds.entries.create(entry('/a'));
        const b = await ds.entries.create(entry('/b'));
        const c = await ds.entries.create(entry('/c'));
        await ds.entries.update(a.id, { hint: 'v2' });
        await ds.entries.delete(b.id);

        const all = await ds.entries.changesSince(0);
        assert.equal(all.since, 0);
        assert.equal(all.revision, 5);
        assert.equal(all.more, false);
        assert.deepEqual(ids(all.entries), ids([a, c]), 'deleted entries are named by events only');
        assert.equal(all.entries.find((e) => e.id === a.id)?.hint, 'v2', 'the current state, not the created one');

        const first = await ds.entries.changesSince(0, 2);
        assert.deepEqual([first.revision, first.more, first.events.length], [2, true, 2]);
        const rest = await ds.entries.changesSince(first.revision, 10);
        assert.deepEqual([rest.since, rest.revision, rest.more], [2, 5, false]);
        assert.deepEqual(
          rest.events.map((e) => e.revision),
          [3, 4, 5],
        );
      });

      it('prunes old events and refuses delta syncs from before the horizon (ERR_REVISION_OUT_OF_RANGE)', async () => {
        for (let i = 0; i < 6; i++) await ds.entries.create(entry(`/e/${i}`));
        assert.equal(await ds.entries.oldestRetainedRevision(), 0);
        assert.equal(await ds.entries.pruneEvents(4), 3);
        assert.equal(await ds.entries.oldestRetainedRevision(), 3);
        assert.deepEqual(
          (await ds.entries.listEventsSince(3)).map((e) => e.revision),
          [4, 5, 6],
        );
        await assert.rejects(ds.entries.listEventsSince(2), code('ERR_REVISION_OUT_OF_RANGE'));
        await assert.rejects(ds.entries.changesSince(0), code('ERR_REVISION_OUT_OF_RANGE'));
        await assert.rejects(
          ds.entries.listEventsSince(7),
          code('ERR_REVISION_OUT_OF_RANGE'),
          'a revision from the future (a restored database) cannot be served either',
        );
        assert.equal(await ds.entries.pruneEvents(2), 0, 'the horizon never moves back');
        assert.equal(await ds.entries.oldestRetainedRevision(), 3);
        assert.equal(await ds.entries.pruneEvents(1_000), 3, 'pruning stops at the current revision');
        assert.equal(await ds.entries.oldestRetainedRevision(), 6);
        assert.deepEqual(await ds.entries.listEventsSince(6), [], 'an up-to-date caller can still sync');
        await ds.entries.create(entry('/after'));
        assert.deepEqual(
          (await ds.entries.listEventsSince(6)).map((e) => e.revision),
          [7],
        );
      });

      it('prunes events older than a retention period by their time', async () => {
        await ds.entries.create(entry('/old1'));
        await ds.entries.create(entry('/old2'));
        clock.seconds += 3600;
        await ds.entries.create(entry('/new'));
        assert.equal(await ds.entries.pruneEventsOlderThan(clock.seconds - 60), 2);
        assert.equal(await ds.entries.oldestRetainedRevision(), 2);
        assert.equal(await ds.entries.pruneEventsOlderThan(clock.seconds + 60), 1);
        assert.equal(await ds.entries.oldestRetainedRevision(), 3);
      });
    });

    describe('authorized entries and the entry cache', () => {
      it('authorizes direct children, node-alias children and descendants, as the full computation does', async () => {
        const agent = id('/spire/agent/join_token/abc');
        const nodeSelectors = [sel('join_token', 'abc'), sel('region', 'eu')];
        const alias = await ds.entries.create(entry('/cluster/eu', '/spire/server', [sel('region', 'eu')]));
        const otherAlias = await ds.entries.create(entry('/cluster/us', '/spire/server', [sel('region', 'us')]));
        const direct = await ds.entries.create({
          spiffeId: id('/direct'),
          parentId: agent,
          selectors: [sel('unix', 'uid:1')],
        });
        const viaAlias = await ds.entries.create(entry('/via-alias', '/cluster/eu'));
        const nested = await ds.entries.create(
          entry('/nested', '/via-alias', [sel('unix', 'uid:2')], { downstream: true }),
        );
        await ds.entries.create(entry('/elsewhere', '/cluster/us'));
        const cache = await EntryCache.load(ds.entries);
        const got = cache.authorizedEntries(agent, nodeSelectors);
        assert.deepEqual(ids(got), ids([direct, viaAlias, nested]));
        assert.ok(
          !ids(got).includes(alias.id) && !ids(got).includes(otherAlias.id),
          'aliases themselves are not handed out',
        );
        const snapshot = await ds.entries.snapshot();
        assert.deepEqual(ids(computeAuthorizedEntries(snapshot.entries, agent, nodeSelectors)), ids(got));
      });

      it('keeps a cache equal to the datastore by applying events, and reloads when its revision was pruned', async () => {
        const agent = id('/agent');
        const random = rng(7);
        const live: string[] = [];
        const cache = await EntryCache.load(ds.entries);
        const second = await open(); // another server writing to the same store
        for (let round = 0; round < 8; round++) {
          for (let i = 0; i < 12; i++) {
            const writer = random() < 0.5 ? ds : second;
            const r = random();
            if (r < 0.5 || live.length === 0) {
              const parent = random() < 0.3 && live.length > 0 ? (await ds.entries.get(live[0]!))!.spiffeId : agent;
              const e = await writer.entries.create({
                spiffeId: id(`/r${round}/${i}`),
                parentId: parent,
                selectors: [sel('unix', `uid:${i}`)],
              });
              live.push(e.id);
            } else if (r < 0.8) {
              await writer.entries.update(live[Math.floor(random() * live.length)]!, { hint: `h${round}.${i}` });
            } else {
              const [victim] = live.splice(Math.floor(random() * live.length), 1);
              await writer.entries.delete(victim!);
            }
          }
          const result = await cache.sync(ds.entries, 5);
          assert.equal(result.reloaded, false);
          const snap = await ds.entries.snapshot();
          assert.equal(cache.revision, snap.revision);
          assert.deepEqual(
            [...cache.entries()].sort((a, b) => (a.id < b.id ? -1 : 1)),
            snap.entries,
          );
          assert.deepEqual(
            ids(cache.authorizedEntries(agent, [])),
            ids(computeAuthorizedEntries(snap.entries, agent, [])),
          );
        }
        // Overlapping syncs (a burst of change notifications) queue instead of clashing.
        await ds.entries.create(entry('/burst/1'));
        const burst = await Promise.all([cache.sync(ds.entries), cache.sync(ds.entries), cache.sync(ds.entries)]);
        assert.ok(burst.every((r) => !r.reloaded));
        assert.equal(cache.revision, await ds.entries.currentRevision());
        // A cache that fell behind the pruned horizon recovers with a full reload.
        const stale = new EntryCache([], 0);
        await ds.entries.pruneEvents(await ds.entries.currentRevision());
        const result = await stale.sync(ds.entries);
        assert.equal(result.reloaded, true);
        assert.deepEqual(
          [...stale.entries()].sort((a, b) => (a.id < b.id ? -1 : 1)),
          (await ds.entries.snapshot()).entries,
        );
      });
    });

    describe('attested agents', () => {
      const agentId = id('/spire/agent/x509pop/abc');
      const newAgent = { spiffeId: agentId, attestationType: 'x509pop', serialNumber: '01', expiresAt: 1_900_003_600 };

      it('creates, gets, updates on re-attestation, and refuses a second create', async () => {
        const a = await ds.agents.create({ ...newAgent, selectors: [sel('x509pop', 'ca:b'), sel('x509pop', 'ca:a')] });
        assert.deepEqual(a.selectors, [sel('x509pop', 'ca:a'), sel('x509pop', 'ca:b')]);
        assert.equal(a.banned, false);
        assert.deepEqual([a.createdAt, a.updatedAt], [clock.seconds, clock.seconds]);
        assert.deepEqual(await ds.agents.get(agentId), a);
        await assert.rejects(ds.agents.create(newAgent), code('ERR_AGENT_EXISTS'));
        clock.seconds += 10;
        const u = await ds.agents.update(agentId, { serialNumber: '02', selectors: [sel('x509pop', 'ca:c')] });
        assert.deepEqual([u.serialNumber, u.createdAt, u.updatedAt], ['02', a.createdAt, clock.seconds]);
        assert.deepEqual(u.selectors, [sel('x509pop', 'ca:c')]);
        await assert.rejects(ds.agents.update(id('/nobody'), { serialNumber: '1' }), code('ERR_AGENT_NOT_FOUND'));
      });

      it('records a renewed serial, with compare-and-set against a concurrent renewal', async () => {
        await ds.agents.create(newAgent);
        const renewed = await ds.agents.updateSerial(agentId, '02', 1_900_007_200);
        assert.deepEqual([renewed?.serialNumber, renewed?.expiresAt], ['02', 1_900_007_200]);
        assert.equal(await ds.agents.updateSerial(agentId, '03', 1_900_010_000, { expectedSerial: '01' }), undefined);
        assert.equal(
          (await ds.agents.updateSerial(agentId, '03', 1_900_010_000, { expectedSerial: '02' }))?.serialNumber,
          '03',
        );
        await assert.rejects(ds.agents.updateSerial(id('/nobody'), '1', 1), code('ERR_AGENT_NOT_FOUND'));
        await assert.rejects(
          ds.agents.updateSerial(id('/nobody'), '1', 1, { expectedSerial: '0' }),
          code('ERR_AGENT_NOT_FOUND'),
        );
      });

      it('bans (sticky through updates) and evicts', async () => {
        await ds.agents.create(newAgent);
        assert.equal((await ds.agents.ban(agentId)).banned, true);
        assert.equal((await ds.agents.update(agentId, { serialNumber: '09' })).banned, true, 'an update never unbans');
        assert.equal((await ds.agents.delete(agentId)).banned, true);
        assert.equal(await ds.agents.get(agentId), undefined);
        await assert.rejects(ds.agents.delete(agentId), code('ERR_AGENT_NOT_FOUND'));
        await assert.rejects(ds.agents.ban(agentId), code('ERR_AGENT_NOT_FOUND'));
        assert.equal((await ds.agents.create(newAgent)).banned, false, 'an evicted agent may attest again');
      });

      it('lists and counts with filters and pagination', async () => {
        for (let i = 0; i < 9; i++) {
          await ds.agents.create({
            spiffeId: id(`/spire/agent/n${i}`),
            attestationType: i % 3 === 0 ? 'join_token' : 'x509pop',
            serialNumber: String(i),
            expiresAt: 1_900_000_000 + i * 100,
          });
        }
        await ds.agents.ban(id('/spire/agent/n4'));
        assert.equal(await ds.agents.count(), 9);
        assert.equal(await ds.agents.count({ attestationType: 'join_token' }), 3);
        assert.equal(await ds.agents.count({ banned: true }), 1);
        assert.equal(await ds.agents.count({ expiresBefore: 1_900_000_250 }), 3);
        const seen: string[] = [];
        let token: string | undefined;
        do {
          const page = await ds.agents.list({ banned: false }, { pageSize: 3, ...(token ? { pageToken: token } : {}) });
          seen.push(...page.items.map((a) => a.spiffeId));
          token = page.nextPageToken;
        } while (token);
        assert.equal(seen.length, 8);
        assert.deepEqual(seen, [...seen].sort());
      });
    });

    describe('join tokens', () => {
      it('is consumed exactly once, with its optional alias SPIFFE ID', async () => {
        await ds.joinTokens.create({ token: 'secret-1', spiffeId: id('/node/group'), expiresAt: clock.seconds + 600 });
        await ds.joinTokens.create({ token: 'secret-2', expiresAt: clock.seconds + 600 });
        assert.deepEqual(await ds.joinTokens.consume('secret-1', clock.seconds), {
          token: 'secret-1',
          spiffeId: id('/node/group'),
          expiresAt: clock.seconds + 600,
        });
        assert.equal(await ds.joinTokens.consume('secret-1', clock.seconds), undefined, 'single use');
        assert.deepEqual(await ds.joinTokens.consume('secret-2', clock.seconds), {
          token: 'secret-2',
          expiresAt: clock.seconds + 600,
        });
        assert.equal(await ds.joinTokens.consume('never-issued', clock.seconds), undefined);
      });

      it('refuses an expired token and deletes it', async () => {
        await ds.joinTokens.create({ token: 'late', expiresAt: clock.seconds + 10 });
        assert.equal(await ds.joinTokens.consume('late', clock.seconds + 10), undefined);
        assert.equal(await ds.joinTokens.count(), 0);
      });

      it('refuses a token that already exists, without echoing it', async () => {
        await ds.joinTokens.create({ token: 'dup-token-value', expiresAt: clock.seconds + 10 });
        await assert.rejects(
          ds.joinTokens.create({ token: 'dup-token-value', expiresAt: clock.seconds + 10 }),
          (err: unknown) => {
            return (
              err instanceof DatastoreError &&
              err.code === 'ERR_JOIN_TOKEN_EXISTS' &&
              !err.message.includes('dup-token-value')
            );
          },
        );
      });

      it('prunes expired tokens', async () => {
        await ds.joinTokens.create({ token: 'a', expiresAt: clock.seconds - 1 });
        await ds.joinTokens.create({ token: 'b', expiresAt: clock.seconds + 100 });
        assert.equal(await ds.joinTokens.pruneExpired(clock.seconds), 1);
        assert.equal(await ds.joinTokens.count(), 1);
      });
    });

    describe('bundles', () => {
      it('sets, replaces, gets and lists bundles by trust domain, keeping a 64-bit sequence exactly', async () => {
        const max = (1n << 64n) - 1n;
        await ds.bundles.set({ trustDomain: TD, bundle: '{"keys":[],"spiffe_sequence":1}', sequence: 1n });
        await ds.bundles.set({ trustDomain: 'other.org', bundle: '{"keys":[]}', sequence: max });
        clock.seconds += 5;
        const replaced = await ds.bundles.set({ trustDomain: TD, bundle: '{"keys":[1]}', sequence: 2n ** 53n + 1n });
        assert.equal(replaced.updatedAt, clock.seconds);
        assert.equal((await ds.bundles.get('other.org'))?.sequence, max);
        const own = await ds.bundles.get(TD);
        assert.equal(own?.sequence, 2n ** 53n + 1n);
        assert.equal(own?.bundle, '{"keys":[1]}');
        assert.deepEqual(
          (await ds.bundles.list()).map((b) => b.trustDomain),
          [TD, 'other.org'],
        );
        assert.equal(await ds.bundles.count(), 2);
        assert.equal(await ds.bundles.get('unknown.org'), undefined);
        await assert.rejects(ds.bundles.set({ trustDomain: 'x', bundle: '{}', sequence: max + 1n }), RangeError);
        await assert.rejects(ds.bundles.set({ trustDomain: 'x', bundle: '{}', sequence: -1n }), RangeError);
      });

      it('deletes a bundle: refused while entries federate with it, or dissociating or deleting them', async () => {
        await ds.bundles.set({ trustDomain: 'fed.org', bundle: '{}', sequence: 0n });
        const e1 = await ds.entries.create(entry('/e1', '/a', undefined, { federatesWith: ['fed.org', 'keep.org'] }));
        await assert.rejects(ds.bundles.delete('fed.org'), code('ERR_BUNDLE_IN_USE'));
        assert.ok(await ds.bundles.get('fed.org'), 'refused delete keeps the bundle');
        const before = await ds.entries.currentRevision();
        const result = await ds.bundles.delete('fed.org', 'dissociate');
        assert.equal(result.affectedEntries, 1);
        const after = await ds.entries.get(e1.id);
        assert.deepEqual(after?.federatesWith, ['keep.org']);
        assert.ok((after?.revisionNumber ?? 0) > before);
        assert.deepEqual(
          (await ds.entries.listEventsSince(before)).map((e) => [e.kind, e.entryId]),
          [['updated', e1.id]],
        );
        assert.equal(await ds.entries.count({ federatesWith: { trustDomains: ['fed.org'], match: 'any' } }), 0);
        assert.equal(await ds.bundles.get('fed.org'), undefined);

        await ds.bundles.set({ trustDomain: 'keep.org', bundle: '{}', sequence: 0n });
        assert.equal((await ds.bundles.delete('keep.org', 'delete')).affectedEntries, 1);
        assert.equal(await ds.entries.get(e1.id), undefined);
        await assert.rejects(ds.bundles.delete('keep.org'), code('ERR_BUNDLE_NOT_FOUND'));
      });
    });

    describe('federation relationships', () => {
      it('creates, lists, updates and deletes relationships', async () => {
        const r = await ds.federation.create({
          trustDomain: 'b.org',
          bundleEndpointUrl: 'https://b.org:8443/bundle',
          profile: 'https_spiffe',
          endpointSpiffeId: 'spiffe://b.org/spire/server',
        });
        assert.equal(r.endpointSpiffeId, 'spiffe://b.org/spire/server');
        await ds.federation.create({
          trustDomain: 'a.org',
          bundleEndpointUrl: 'https://a.org/b',
          profile: 'https_web',
        });
        await assert.rejects(
          ds.federation.create({ trustDomain: 'a.org', bundleEndpointUrl: 'https://x', profile: 'https_web' }),
          code('ERR_FEDERATION_RELATIONSHIP_EXISTS'),
        );
        assert.deepEqual(
          (await ds.federation.list()).map((x) => x.trustDomain),
          ['a.org', 'b.org'],
        );
        const u = await ds.federation.update('b.org', { profile: 'https_web', endpointSpiffeId: null });
        assert.equal(u.profile, 'https_web');
        assert.equal(u.endpointSpiffeId, undefined);
        assert.deepEqual(await ds.federation.get('b.org'), u);
        await assert.rejects(
          ds.federation.create({ trustDomain: 'c.org', bundleEndpointUrl: 'https://c', profile: 'ftp' as 'https_web' }),
          TypeError,
        );
        assert.equal((await ds.federation.delete('a.org')).trustDomain, 'a.org');
        await assert.rejects(ds.federation.delete('a.org'), code('ERR_FEDERATION_RELATIONSHIP_NOT_FOUND'));
        await assert.rejects(
          ds.federation.update('a.org', { profile: 'https_web' }),
          code('ERR_FEDERATION_RELATIONSHIP_NOT_FOUND'),
        );
      });
    });

    describe('CA journal', () => {
      it('saves, replaces, loads and deletes named documents', async () => {
        assert.equal(await ds.caJournal.load('x509'), undefined);
        await ds.caJournal.save('x509', 'v1');
        clock.seconds += 1;
        await ds.caJournal.save('x509', 'v2');
        assert.deepEqual(await ds.caJournal.load('x509'), { name: 'x509', data: 'v2', updatedAt: clock.seconds });
        assert.equal(await ds.caJournal.delete('x509'), true);
        assert.equal(await ds.caJournal.delete('x509'), false);
      });
    });

    describe('several servers on one store', () => {
      it('each instance sees the other’s writes at once', async () => {
        const other = await open();
        const e = await ds.entries.create(entry('/shared'));
        assert.deepEqual(await other.entries.get(e.id), e);
        await other.entries.update(e.id, { hint: 'from the other server' });
        assert.equal((await ds.entries.get(e.id))?.hint, 'from the other server');
        assert.equal(await ds.entries.currentRevision(), await other.entries.currentRevision());
        await assert.rejects(other.entries.create(entry('/shared')), code('ERR_ENTRY_DUPLICATE'));
      });

      it('keeps revisions unique and gap-free under concurrent writers', async () => {
        const other = await open();
        const writers = [ds, other];
        const perWriter = 40;
        await Promise.all(
          writers.map((w, wi) =>
            Promise.all(Array.from({ length: perWriter }, (_, i) => w.entries.create(entry(`/c/${wi}/${i}`)))),
          ),
        );
        // Concurrent updates of one entry, too.
        const target = (await ds.entries.list({ spiffeId: id('/c/0/0') })).items[0]!;
        await Promise.all(
          Array.from({ length: 10 }, (_, i) => writers[i % 2]!.entries.update(target.id, { hint: `h${i}` })),
        );
        const total = perWriter * writers.length + 10;
        assert.equal(await ds.entries.currentRevision(), total);
        const events = await ds.entries.listEventsSince(0, 10_000);
        assert.deepEqual(
          events.map((e) => e.revision),
          Array.from({ length: total }, (_, i) => i + 1),
        );
        const revisions = (await ds.entries.list()).items.map((e) => e.revisionNumber);
        assert.equal(new Set(revisions).size, revisions.length);
      });

      it('lets exactly one of two racing servers consume a join token', async () => {
        const other = await open();
        for (let i = 0; i < 20; i++) {
          await ds.joinTokens.create({ token: `race-${i}`, expiresAt: clock.seconds + 60 });
          const results = await Promise.all([
            ds.joinTokens.consume(`race-${i}`, clock.seconds),
            other.joinTokens.consume(`race-${i}`, clock.seconds),
          ]);
          assert.equal(results.filter((r) => r !== undefined).length, 1);
        }
      });

      it('refuses the same duplicate from two racing servers, keeping one entry', async () => {
        const other = await open();
        const results = await Promise.allSettled([
          ds.entries.create(entry('/race')),
          other.entries.create(entry('/race')),
        ]);
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
        const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
        assert.ok(code('ERR_ENTRY_DUPLICATE')(rejected.reason));
        assert.equal(await ds.entries.count({ spiffeId: id('/race') }), 1);
      });
    });
  });
}
