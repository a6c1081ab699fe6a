import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Code, ConnectError } from '@connectrpc/connect';
import { SpiffeBundle } from '@steeple/spiffe';
import { createTestCa, createTestJwtAuthority } from '@steeple/spiffe/testing';
import { BundleDeleteMode } from '../../../gen/steeple/server/v1/bundle_pb.js';
import { type AdminFixture, startAdminFixture } from './testing/admin-fixture.js';

async function rejects(promise: Promise<unknown>, code: Code, message: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ConnectError);
    assert.equal(err.code, code, err.rawMessage);
    assert.match(err.rawMessage, message);
    return true;
  });
}

const pem = (td: string) => createTestCa({ trustDomain: td }).x509Bundle().marshal();

describe('BundleService over the admin socket', () => {
  let f: AdminFixture;
  before(async () => {
    f = await startAdminFixture();
  });
  after(async () => {
    await f.close();
  });

  it("shows the server's own bundle as SPIFFE bundle JSON (B-1: with its trust domain)", async () => {
    const { bundle } = await f.client.bundles.getBundle({});
    assert.equal(bundle?.trustDomain, 'example.org');
    assert.equal(bundle?.sequence, 1n);
    const parsed = SpiffeBundle.parse('example.org', bundle?.spiffeBundleJson ?? '');
    assert.ok(parsed.x509Bundle().hasAuthority(f.ca.x509.certificate));
    assert.equal(parsed.jwtAuthorities.size, 1);
  });

  it('sets a federated bundle from PEM; the sequence grows only when the authorities change', async () => {
    const first = pem('partner.org');
    const set = await f.client.bundles.setFederatedBundle({
      trustDomain: 'partner.org',
      content: { case: 'x509AuthoritiesPem', value: first },
    });
    assert.equal(set.bundle?.trustDomain, 'partner.org');
    assert.equal(set.bundle?.sequence, 1n);
    const same = await f.client.bundles.setFederatedBundle({
      trustDomain: 'spiffe://partner.org',
      content: { case: 'x509AuthoritiesPem', value: first },
    });
    assert.equal(same.bundle?.sequence, 1n);
    const changed = await f.client.bundles.setFederatedBundle({
      trustDomain: 'partner.org',
      content: { case: 'x509AuthoritiesPem', value: pem('partner.org') },
    });
    assert.equal(changed.bundle?.sequence, 2n);
    const { bundle } = await f.client.bundles.getFederatedBundle({ trustDomain: 'partner.org' });
    assert.equal(bundle?.spiffeBundleJson, changed.bundle?.spiffeBundleJson);
    assert.ok(f.logs.some((l) => l['msg'] === 'replaced federated bundle' && l['trustDomain'] === 'partner.org'));
  });

  it("sets a bundle from SPIFFE bundle JSON, keeping the document's spiffe_sequence exactly (B-3)", async () => {
    const x509 = createTestCa({ trustDomain: 'json.org' }).x509Bundle();
    const jwt = createTestJwtAuthority({ trustDomain: 'json.org' }).jwtBundle();
    const doc = SpiffeBundle.fromBundles({ x509, jwt, sequenceNumber: 18_446_744_073_709_551_615n }).marshal();
    const res = await f.client.bundles.setFederatedBundle({
      trustDomain: 'json.org',
      content: { case: 'spiffeBundleJson', value: doc },
    });
    assert.equal(res.bundle?.sequence, 18_446_744_073_709_551_615n);
    const back = SpiffeBundle.parse('json.org', res.bundle?.spiffeBundleJson ?? '');
    assert.equal(back.jwtAuthorities.size, 1);
  });

  it('lists federated bundles only, never the own one even when it is stored', async () => {
    await f.datastore.bundles.set({ trustDomain: 'example.org', bundle: '{"keys":[]}', sequence: 9n });
    const { bundles } = await f.client.bundles.listFederatedBundles({});
    const names = bundles.map((b) => b.trustDomain);
    assert.ok(names.includes('partner.org'));
    assert.ok(!names.includes('example.org'));
    const page = await f.client.bundles.listFederatedBundles({ pageSize: 1 });
    assert.equal(page.bundles.length, 1);
    assert.notEqual(page.nextPageToken, '');
    const next = await f.client.bundles.listFederatedBundles({ pageSize: 1, pageToken: page.nextPageToken });
    assert.notEqual(next.bundles[0]?.trustDomain, page.bundles[0]?.trustDomain);
  });

  it('refuses bad input naming the field', async () => {
    await rejects(
      f.client.bundles.setFederatedBundle({
        trustDomain: 'example.org',
        content: { case: 'x509AuthoritiesPem', value: pem('example.org') },
      }),
      Code.InvalidArgument,
      /^trustDomain: "example.org" is the server's own trust domain/,
    );
    await rejects(
      f.client.bundles.setFederatedBundle({
        trustDomain: 'Not A TD',
        content: { case: 'x509AuthoritiesPem', value: pem('x.org') },
      }),
      Code.InvalidArgument,
      /^trustDomain: invalid trust domain/,
    );
    await rejects(
      f.client.bundles.setFederatedBundle({ trustDomain: 'x.org' }),
      Code.InvalidArgument,
      /^content: required/,
    );
    await rejects(
      f.client.bundles.setFederatedBundle({
        trustDomain: 'x.org',
        content: { case: 'x509AuthoritiesPem', value: 'garbage' },
      }),
      Code.InvalidArgument,
      /^x509AuthoritiesPem: /,
    );
    await rejects(
      f.client.bundles.setFederatedBundle({
        trustDomain: 'x.org',
        content: { case: 'spiffeBundleJson', value: '{"keys": 5}' },
      }),
      Code.InvalidArgument,
      /^spiffeBundleJson: /,
    );
    await rejects(
      f.client.bundles.setFederatedBundle({
        trustDomain: 'x.org',
        content: { case: 'spiffeBundleJson', value: '{"keys": []}' },
      }),
      Code.InvalidArgument,
      /^spiffeBundleJson: the bundle of "x.org" holds no X.509 or JWT authority/,
    );
    await rejects(
      f.client.bundles.getFederatedBundle({ trustDomain: 'example.org' }),
      Code.InvalidArgument,
      /^trustDomain: .*own trust domain/,
    );
    await rejects(
      f.client.bundles.getFederatedBundle({ trustDomain: 'unknown.org' }),
      Code.NotFound,
      /no bundle stored/,
    );
  });

  it('deletes a bundle in restrict, dissociate and delete modes as SPIRE does', async () => {
    const set = (td: string) =>
      f.client.bundles.setFederatedBundle({ trustDomain: td, content: { case: 'x509AuthoritiesPem', value: pem(td) } });
    await set('gone.org');
    const user = await f.client.entries.createEntries({
      entries: [
        {
          spiffeId: 'spiffe://example.org/fed-user',
          parentId: 'spiffe://example.org/agent',
          selectors: [{ type: 'unix', value: 'uid:7' }],
          federatesWith: ['gone.org'],
        },
      ],
    });
    const entryId = user.results[0]?.entry?.id ?? '';
    await rejects(
      f.client.bundles.deleteFederatedBundle({ trustDomain: 'gone.org' }),
      Code.FailedPrecondition,
      /federated with by 1 entries/,
    );
    await f.client.bundles.deleteFederatedBundle({ trustDomain: 'gone.org', mode: BundleDeleteMode.DISSOCIATE });
    const { entry } = await f.client.entries.getEntry({ id: entryId });
    assert.deepEqual(entry?.federatesWith, []);
    await rejects(f.client.bundles.getFederatedBundle({ trustDomain: 'gone.org' }), Code.NotFound, /no bundle stored/);
    await rejects(f.client.bundles.deleteFederatedBundle({ trustDomain: 'gone.org' }), Code.NotFound, /no bundle/);

    await set('gone2.org');
    await f.client.entries.updateEntries({
      entries: [{ id: entryId, federatesWith: ['gone2.org'] }],
      mask: { federatesWith: true },
    });
    await f.client.bundles.deleteFederatedBundle({ trustDomain: 'gone2.org', mode: BundleDeleteMode.DELETE });
    await rejects(f.client.entries.getEntry({ id: entryId }), Code.NotFound, /no registration entry/);
  });
});
