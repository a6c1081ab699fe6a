import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ManualClock } from '@steeple/spiffe/testing';
import { type Datastore, openDatastore } from '../../datastore/index.js';
import { ChangeFeed, type FeedChange } from './change-feed.js';

const TD = 'example.org';
const agent = `spiffe://${TD}/spire/agent/join_token/a`;
const sel = [{ type: 'unix', value: 'uid:1' }];

describe('ChangeFeed', () => {
  let dir: string;
  let ds: Datastore;
  let feed: ChangeFeed;
  const seen: FeedChange[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'steeple-feed-'));
    ds = await openDatastore({ type: 'sqlite', path: join(dir, 'ds.sqlite3') });
    await ds.entries.create({ spiffeId: `spiffe://${TD}/existing`, parentId: agent, selectors: sel });
    // A ManualClock never fires the poll timer by itself: refresh() is called explicitly.
    feed = await ChangeFeed.start({ source: ds, clock: new ManualClock(new Date()) });
    feed.subscribe((c) => seen.push(c));
  });

  after(async () => {
    await feed.close();
    await ds.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('loads every entry at start and reports no delta for the current revision', () => {
    assert.equal(feed.cache.size, 1);
    assert.deepEqual([...(feed.changedSince(feed.revision) ?? ['full'])], []);
  });

  it('refuses deltas from before it started (it cannot know what happened then)', () => {
    assert.equal(feed.changedSince(feed.revision - 1), undefined);
    assert.equal(feed.changedSince(feed.revision + 1), undefined);
  });

  it('applies changes on refresh, tells subscribers with the before and after states, and answers deltas', async () => {
    const start = feed.revision;
    const web = await ds.entries.create({ spiffeId: `spiffe://${TD}/web`, parentId: agent, selectors: sel });
    await ds.entries.update(web.id, { dnsNames: ['web.example.org'] });
    await feed.refresh();
    assert.ok(feed.revision > start);
    const last = seen.at(-1)!;
    assert.equal(last.entries.length, 1);
    assert.equal(last.entries[0]?.before, undefined, 'created in this batch');
    assert.deepEqual(last.entries[0]?.after?.dnsNames, ['web.example.org']);
    assert.deepEqual([...(feed.changedSince(start) ?? [])], [web.id]);

    const mid = feed.revision;
    await ds.entries.delete(web.id);
    await feed.refresh();
    assert.equal(feed.cache.get(web.id), undefined);
    assert.equal(seen.at(-1)?.entries[0]?.before?.id, web.id);
    assert.equal(seen.at(-1)?.entries[0]?.after, undefined);
    assert.deepEqual([...(feed.changedSince(mid) ?? [])], [web.id]);
    assert.deepEqual([...(feed.changedSince(start) ?? [])], [web.id]);
  });

  it('answers "full" across a change that moves other entries (a node alias, a new parent of existing entries)', async () => {
    const start = feed.revision;
    await ds.entries.create({
      spiffeId: `spiffe://${TD}/rack`,
      parentId: `spiffe://${TD}/spire/server`,
      selectors: sel,
    });
    await feed.refresh();
    assert.equal(feed.changedSince(start), undefined, 'a node alias changes who is authorized for what');

    const next = feed.revision;
    await ds.entries.create({ spiffeId: `spiffe://${TD}/team/app`, parentId: `spiffe://${TD}/team`, selectors: sel });
    await feed.refresh();
    assert.notEqual(feed.changedSince(next), undefined, 'a leaf entry is a plain delta');
    const beforeParent = feed.revision;
    await ds.entries.create({ spiffeId: `spiffe://${TD}/team`, parentId: agent, selectors: sel });
    await feed.refresh();
    assert.equal(feed.changedSince(beforeParent), undefined, 'the new parent authorizes an unchanged entry');
  });

  it('notices bundle changes, and digests them per trust domain', async () => {
    const own = feed.bundlesRevisionFor([TD]);
    const all = feed.bundlesRevision;
    await ds.bundles.set({ trustDomain: 'partner.org', bundle: '{"keys":[]}', sequence: 1n });
    await feed.refresh();
    assert.deepEqual(seen.at(-1)?.bundleTrustDomains, ['partner.org']);
    assert.equal(feed.bundle('partner.org')?.sequence, 1n);
    assert.equal(feed.bundlesRevisionFor([TD]), own, 'an agent without partner.org sees no change');
    assert.notEqual(feed.bundlesRevision, all);
  });

  it('reloads in full when the event log was pruned past it, and says so', async () => {
    await ds.entries.create({ spiffeId: `spiffe://${TD}/late`, parentId: agent, selectors: sel });
    await ds.entries.pruneEvents((await ds.entries.currentRevision()) + 1);
    const revision = await ds.entries.currentRevision();
    await feed.refresh();
    assert.equal(seen.at(-1)?.reloaded, true);
    assert.equal(feed.revision, revision);
    assert.ok([...feed.cache.entries()].some((e) => e.spiffeId.endsWith('/late')));
    assert.equal(feed.changedSince(revision - 1), undefined);
  });

  it('catchUp reads changes committed since the last refresh', async () => {
    const entry = await ds.entries.create({ spiffeId: `spiffe://${TD}/fresh`, parentId: agent, selectors: sel });
    assert.equal(feed.cache.get(entry.id), undefined);
    await feed.catchUp();
    assert.equal(feed.cache.get(entry.id)?.id, entry.id);
  });
});
