import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { MatchBehavior } from '../../../gen/steeple/server/v1/entry_pb.js';
import { type Entry, EntrySchema } from '../../../gen/steeple/types/v1/entry_pb.js';
import { type AdminFixture, startAdminFixture } from './testing/admin-fixture.js';

type EntryInit = MessageInitShape<typeof EntrySchema>;

const TD = 'spiffe://example.org';
const AGENT = `${TD}/spire/agent/x509pop/abc`;

function entry(init: EntryInit = {}): Entry {
  return create(EntrySchema, {
    spiffeId: `${TD}/web`,
    parentId: AGENT,
    selectors: [{ type: 'unix', value: 'uid:1000' }],
    ...init,
  });
}

let seq = 0;
/** A valid entry with a SPIFFE ID no other test uses. */
function unique(init: EntryInit = {}): Entry {
  seq += 1;
  return entry({ spiffeId: `${TD}/unique/${seq}`, ...init });
}

async function rejects(promise: Promise<unknown>, code: Code, message: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ConnectError, `expected a ConnectError, got ${String(err)}`);
    assert.equal(err.code, code, `status of ${err.rawMessage}`);
    assert.match(err.rawMessage, message);
    return true;
  });
}

describe('EntryService over the admin socket', () => {
  let f: AdminFixture;
  before(async () => {
    f = await startAdminFixture();
  });
  after(async () => {
    await f.close();
  });

  it('creates an entry, returns it with server-assigned fields, and shows it', async () => {
    const { results } = await f.client.entries.createEntries({
      entries: [entry({ dnsNames: ['web.example.org', '*.web.example.org'], x509SvidTtl: 600, hint: 'web' })],
    });
    assert.equal(results.length, 1);
    assert.equal(results[0]?.status?.code, 0);
    const created = results[0]?.entry;
    assert.ok(created);
    assert.match(created.id, /^[0-9a-f-]{36}$/);
    assert.ok(created.revisionNumber > 0n);
    assert.ok(created.createdAt > 0n);
    assert.deepEqual(created.dnsNames, ['web.example.org', '*.web.example.org']);
    const { entry: shown } = await f.client.entries.getEntry({ id: created.id });
    assert.equal(shown?.spiffeId, `${TD}/web`);
    assert.equal(shown?.x509SvidTtl, 600);
    assert.ok(f.changes.includes('entries'), 'listeners are told about the change');
  });

  it('logs the change at info with the caller and the entry, not the join token of a parent', async () => {
    const parentId = `${TD}/spire/agent/join_token/secret-token-123`;
    const res = await f.client.entries.createEntries({ entries: [unique({ parentId })] });
    assert.equal(res.results[0]?.status?.code, 0);
    const line = f.logs.findLast((l) => l['msg'] === 'created registration entries');
    assert.ok(line);
    assert.equal(line['level'], 'info');
    assert.equal(line['rpc'], 'EntryService.CreateEntries');
    assert.deepEqual(line['caller'], { transport: 'unix-socket' });
    assert.ok(
      !JSON.stringify(f.logs).includes('secret-token-123'),
      'the token in a join-token parent ID is not logged',
    );
  });

  it('refuses a duplicate with AlreadyExists and returns the existing entry', async () => {
    const first = await f.client.entries.createEntries({ entries: [entry({ spiffeId: `${TD}/dup` })] });
    const existing = first.results[0]?.entry;
    const again = await f.client.entries.createEntries({ entries: [entry({ spiffeId: `${TD}/dup` })] });
    assert.equal(again.results[0]?.status?.code, Code.AlreadyExists);
    assert.match(again.results[0]?.status?.message ?? '', /already exists/);
    assert.equal(again.results[0]?.entry?.id, existing?.id);
  });

  it('answers a batch item by item, in order: OK, AlreadyExists, InvalidArgument', async () => {
    const before = await f.client.entries.countEntries({});
    const fresh = unique();
    const { results } = await f.client.entries.createEntries({
      entries: [fresh, entry({ spiffeId: `${TD}/dup` }), unique({ spiffeId: 'spiffe://other.org/x' }), fresh],
    });
    assert.deepEqual(
      results.map((r) => r.status?.code),
      [0, Code.AlreadyExists, Code.InvalidArgument, Code.AlreadyExists],
    );
    assert.equal(results[3]?.entry?.id, results[0]?.entry?.id, 'a duplicate within the batch names the first');
    const afterCount = await f.client.entries.countEntries({});
    assert.equal(afterCount.count, before.count + 1n);
  });

  const invalid: [string, EntryInit, RegExp][] = [
    [
      'spiffeId in another trust domain',
      { spiffeId: 'spiffe://other.org/web' },
      /^spiffeId: .*not in the server's trust domain "example.org"/,
    ],
    ['malformed spiffeId', { spiffeId: 'spiffe://example.org/a//b' }, /^spiffeId: invalid SPIFFE ID/],
    ['spiffeId without a scheme', { spiffeId: 'example.org/web' }, /^spiffeId: invalid SPIFFE ID/],
    ['empty spiffeId', { spiffeId: '' }, /^spiffeId: required/],
    ['spiffeId without a path (X-2)', { spiffeId: 'spiffe://example.org' }, /^spiffeId: .*has no path/],
    ['spiffeId of the server itself', { spiffeId: `${TD}/spire/server` }, /^spiffeId: .*server's own ID/],
    [
      'parentId in another trust domain',
      { parentId: 'spiffe://other.org/agent' },
      /^parentId: .*not in the server's trust domain/,
    ],
    ['empty parentId', { parentId: '' }, /^parentId: required/],
    ['no selectors', { selectors: [] }, /^selectors: at least one selector is required/],
    [
      'selector without type',
      { selectors: [{ type: '', value: 'x' }] },
      /^selectors\[0\]: selector type must not be empty/,
    ],
    [
      'selector type with a colon',
      { selectors: [{ type: 'unix:uid', value: '1' }] },
      /^selectors\[0\]: selector type "unix:uid" must not contain ":"/,
    ],
    [
      'selector without value',
      {
        selectors: [
          { type: 'unix', value: 'uid:1' },
          { type: 'k8s', value: '' },
        ],
      },
      /^selectors\[1\]: selector "k8s:" has an empty value/,
    ],
    ['negative x509SvidTtl', { x509SvidTtl: -1 }, /^x509SvidTtl: must be 0 or more, got -1/],
    ['negative jwtSvidTtl', { jwtSvidTtl: -5 }, /^jwtSvidTtl: must be 0 or more, got -5/],
    [
      'DNS name with an empty label',
      { dnsNames: ['ok.example.org', 'bad..example.org'] },
      /^dnsNames\[1\]: "bad..example.org" has an empty label/,
    ],
    [
      'DNS name with a leading hyphen',
      { dnsNames: ['-web.example.org'] },
      /^dnsNames\[0\]: .*letters, digits or inner hyphens/,
    ],
    [
      'DNS name with a misplaced wildcard',
      { dnsNames: ['web.*.example.org'] },
      /^dnsNames\[0\]: .*"\*" only as the whole first label/,
    ],
    ['DNS name with a space', { dnsNames: ['web example.org'] }, /^dnsNames\[0\]:/],
    ['malformed federatesWith', { federatesWith: ['Partner.ORG!'] }, /^federatesWith\[0\]: invalid trust domain/],
    [
      'federatesWith the own trust domain',
      { federatesWith: ['example.org'] },
      /^federatesWith\[0\]: "example.org" is the server's own trust domain/,
    ],
    ['hint over 1024 bytes', { hint: 'é'.repeat(513) }, /^hint: is 1026 bytes; at most 1024 are allowed/],
    ['negative expiresAt', { expiresAt: -1n }, /^expiresAt: must be epoch seconds/],
    ['an id given on create', { id: 'my-id' }, /^id: is assigned by the server/],
  ];
  for (const [what, init, message] of invalid) {
    it(`refuses ${what} with InvalidArgument naming the field, and stores nothing`, async () => {
      const before = await f.client.entries.countEntries({});
      const { results } = await f.client.entries.createEntries({ entries: [unique(init)] });
      assert.equal(results[0]?.status?.code, Code.InvalidArgument);
      assert.match(results[0]?.status?.message ?? '', message);
      assert.equal(results[0]?.entry, undefined);
      assert.equal((await f.client.entries.countEntries({})).count, before.count);
    });
  }

  it('accepts a hint of exactly 1024 bytes, a wildcard DNS name, and federatesWith as an ID', async () => {
    const { results } = await f.client.entries.createEntries({
      entries: [
        unique({ hint: 'h'.repeat(1024), dnsNames: ['*.example.org'], federatesWith: ['spiffe://partner.org'] }),
      ],
    });
    assert.equal(results[0]?.status?.code, 0, results[0]?.status?.message);
    assert.deepEqual(results[0]?.entry?.federatesWith, ['partner.org']);
  });

  it('answers NotFound for an unknown id and InvalidArgument for an empty one', async () => {
    await rejects(
      f.client.entries.getEntry({ id: 'no-such-entry' }),
      Code.NotFound,
      /no registration entry with id "no-such-entry"/,
    );
    await rejects(f.client.entries.getEntry({ id: '' }), Code.InvalidArgument, /^id: required/);
  });

  it('lists and counts with filters', async () => {
    const parentId = `${TD}/spire/agent/filters`;
    const { results } = await f.client.entries.createEntries({
      entries: [
        unique({ parentId, selectors: [{ type: 'unix', value: 'uid:1' }] }),
        unique({
          parentId,
          selectors: [
            { type: 'unix', value: 'uid:1' },
            { type: 'unix', value: 'gid:1' },
          ],
          downstream: true,
        }),
        unique({
          parentId,
          selectors: [{ type: 'k8s', value: 'ns:default' }],
          federatesWith: ['partner.org'],
          hint: 'h1',
        }),
      ],
    });
    const ids = results.map((r) => r.entry?.id);
    const byParent = await f.client.entries.listEntries({ filter: { byParentId: parentId } });
    assert.deepEqual(byParent.entries.map((e) => e.id).sort(), [...ids].sort());
    const superset = await f.client.entries.listEntries({
      filter: {
        byParentId: parentId,
        bySelectors: { selectors: [{ type: 'unix', value: 'uid:1' }], match: MatchBehavior.SUPERSET },
      },
    });
    assert.deepEqual(superset.entries.map((e) => e.id).sort(), [ids[0], ids[1]].sort());
    const exact = await f.client.entries.listEntries({
      filter: {
        byParentId: parentId,
        bySelectors: { selectors: [{ type: 'unix', value: 'uid:1' }], match: MatchBehavior.EXACT },
      },
    });
    assert.deepEqual(
      exact.entries.map((e) => e.id),
      [ids[0]],
    );
    const fed = await f.client.entries.listEntries({
      filter: { byParentId: parentId, byFederatesWith: { trustDomains: ['partner.org'], match: MatchBehavior.ANY } },
    });
    assert.deepEqual(
      fed.entries.map((e) => e.id),
      [ids[2]],
    );
    const hint = await f.client.entries.listEntries({ filter: { byParentId: parentId, byHint: 'h1' } });
    assert.deepEqual(
      hint.entries.map((e) => e.id),
      [ids[2]],
    );
    const downstream = await f.client.entries.countEntries({ filter: { byParentId: parentId, byDownstream: true } });
    assert.equal(downstream.count, 1n);
    const bySpiffeId = await f.client.entries.listEntries({ filter: { bySpiffeId: byParent.entries[0]?.spiffeId } });
    assert.equal(bySpiffeId.entries.length, 1);
  });

  it('pages through entries without gaps or repeats', async () => {
    const parentId = `${TD}/spire/agent/paging`;
    await f.client.entries.createEntries({ entries: Array.from({ length: 5 }, () => unique({ parentId })) });
    const seen: string[] = [];
    let pageToken = '';
    let pages = 0;
    do {
      const page = await f.client.entries.listEntries({ filter: { byParentId: parentId }, pageSize: 2, pageToken });
      assert.ok(page.entries.length <= 2);
      seen.push(...page.entries.map((e) => e.id));
      pageToken = page.nextPageToken;
      pages += 1;
    } while (pageToken !== '');
    assert.equal(pages, 3);
    assert.equal(new Set(seen).size, 5);
  });

  it('refuses bad filters and page sizes naming the field', async () => {
    await rejects(
      f.client.entries.listEntries({ pageSize: -1 }),
      Code.InvalidArgument,
      /^pageSize: must be 0 \(all\) or more/,
    );
    await rejects(
      f.client.entries.listEntries({ filter: { bySpiffeId: 'not-an-id' } }),
      Code.InvalidArgument,
      /^filter\.bySpiffeId: invalid SPIFFE ID/,
    );
    await rejects(
      f.client.entries.countEntries({ filter: { bySelectors: { selectors: [], match: MatchBehavior.EXACT } } }),
      Code.InvalidArgument,
      /^filter\.bySelectors\.selectors: at least one selector/,
    );
  });

  it('updates the whole entry without a mask (as SPIRE does) and only masked fields with one', async () => {
    const { results } = await f.client.entries.createEntries({
      entries: [unique({ dnsNames: ['a.example.org'], admin: true })],
    });
    const stored = results[0]?.entry;
    assert.ok(stored);
    const whole = await f.client.entries.updateEntries({
      entries: [
        create(EntrySchema, {
          id: stored.id,
          spiffeId: stored.spiffeId,
          parentId: stored.parentId,
          selectors: stored.selectors,
          x509SvidTtl: 120,
        }),
      ],
    });
    assert.equal(whole.results[0]?.status?.code, 0, whole.results[0]?.status?.message);
    assert.deepEqual(whole.results[0]?.entry?.dnsNames, [], 'fields left out are reset');
    assert.equal(whole.results[0]?.entry?.admin, false);
    assert.equal(whole.results[0]?.entry?.x509SvidTtl, 120);
    assert.ok((whole.results[0]?.entry?.revisionNumber ?? 0n) > stored.revisionNumber);

    const masked = await f.client.entries.updateEntries({
      entries: [create(EntrySchema, { id: stored.id, jwtSvidTtl: 60 })],
      mask: { jwtSvidTtl: true },
    });
    assert.equal(masked.results[0]?.status?.code, 0, masked.results[0]?.status?.message);
    assert.equal(masked.results[0]?.entry?.jwtSvidTtl, 60);
    assert.equal(masked.results[0]?.entry?.x509SvidTtl, 120, 'unmasked fields keep their values');
  });

  it('answers updates item by item: NotFound, InvalidArgument naming the field, AlreadyExists, missing id', async () => {
    const a = (await f.client.entries.createEntries({ entries: [unique()] })).results[0]?.entry;
    const b = (await f.client.entries.createEntries({ entries: [unique()] })).results[0]?.entry;
    assert.ok(a && b);
    const { results } = await f.client.entries.updateEntries({
      entries: [
        create(EntrySchema, { id: 'no-such-entry', x509SvidTtl: 1 }),
        create(EntrySchema, { id: a.id, x509SvidTtl: -3 }),
        create(EntrySchema, { id: b.id, spiffeId: a.spiffeId }),
        create(EntrySchema, { x509SvidTtl: 1 }),
      ],
      mask: { x509SvidTtl: true, spiffeId: false },
    });
    assert.equal(results[0]?.status?.code, Code.NotFound);
    assert.equal(results[1]?.status?.code, Code.InvalidArgument);
    assert.match(results[1]?.status?.message ?? '', /^x509SvidTtl:/);
    assert.equal(results[3]?.status?.code, Code.InvalidArgument);
    assert.match(results[3]?.status?.message ?? '', /^id: required/);
    const dup = await f.client.entries.updateEntries({
      entries: [create(EntrySchema, { id: b.id, spiffeId: a.spiffeId })],
      mask: { spiffeId: true },
    });
    assert.equal(dup.results[0]?.status?.code, Code.AlreadyExists);
  });

  it('deletes entries, then answers NotFound for them', async () => {
    const a = (await f.client.entries.createEntries({ entries: [unique()] })).results[0]?.entry;
    assert.ok(a);
    const first = await f.client.entries.deleteEntries({ ids: [a.id, 'no-such-entry'] });
    assert.deepEqual(
      first.results.map((r) => [r.id, r.status?.code]),
      [
        [a.id, 0],
        ['no-such-entry', Code.NotFound],
      ],
    );
    await rejects(f.client.entries.getEntry({ id: a.id }), Code.NotFound, /no registration entry/);
    const line = f.logs.findLast((l) => l['msg'] === 'deleted registration entries');
    assert.equal(line?.['count'], 1);
  });
});
