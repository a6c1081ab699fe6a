import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { SpiffeBundle } from '@steeple/spiffe';
import { createTestCa } from '@steeple/spiffe/testing';
import {
  type FederationRelationship,
  FederationRelationshipSchema,
} from '../../../gen/steeple/server/v1/trust_domain_pb.js';
import { type AdminFixture, startAdminFixture } from './testing/admin-fixture.js';

async function rejects(promise: Promise<unknown>, code: Code, message: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ConnectError);
    assert.equal(err.code, code, err.rawMessage);
    assert.match(err.rawMessage, message);
    return true;
  });
}

function web(td: string, url = `https://${td}/bundle`): FederationRelationship {
  return create(FederationRelationshipSchema, {
    trustDomain: td,
    bundleEndpointUrl: url,
    bundleEndpointProfile: { case: 'httpsWeb', value: {} },
  });
}

function spiffe(td: string, endpointSpiffeId: string): FederationRelationship {
  return create(FederationRelationshipSchema, {
    trustDomain: td,
    bundleEndpointUrl: `https://${td}:8443`,
    bundleEndpointProfile: { case: 'httpsSpiffe', value: { endpointSpiffeId } },
  });
}

describe('TrustDomainService over the admin socket', () => {
  let f: AdminFixture;
  before(async () => {
    f = await startAdminFixture();
  });
  after(async () => {
    await f.close();
  });

  it('creates, shows and lists a relationship; a second one for the trust domain is AlreadyExists', async () => {
    const { relationship } = await f.client.trustDomains.createFederationRelationship({ relationship: web('web.org') });
    assert.equal(relationship?.trustDomain, 'web.org');
    assert.equal(relationship?.bundleEndpointProfile.case, 'httpsWeb');
    assert.equal(relationship?.trustDomainBundle, undefined);
    const shown = await f.client.trustDomains.getFederationRelationship({ trustDomain: 'web.org' });
    assert.equal(shown.relationship?.bundleEndpointUrl, 'https://web.org/bundle');
    const { relationships } = await f.client.trustDomains.listFederationRelationships({});
    assert.ok(relationships.some((r) => r.trustDomain === 'web.org'));
    await rejects(
      f.client.trustDomains.createFederationRelationship({ relationship: web('web.org') }),
      Code.AlreadyExists,
      /already exists/,
    );
    assert.ok(f.changes.includes('federation'));
  });

  it('stores the initial bundle given with an https_spiffe relationship', async () => {
    const bundle = SpiffeBundle.fromBundles({ x509: createTestCa({ trustDomain: 'peer.org' }).x509Bundle() });
    const r = spiffe('peer.org', 'spiffe://peer.org/spire/server');
    r.trustDomainBundle = {
      $typeName: 'steeple.types.v1.Bundle',
      trustDomain: 'peer.org',
      spiffeBundleJson: bundle.marshal(),
      sequence: 0n,
    };
    const { relationship } = await f.client.trustDomains.createFederationRelationship({ relationship: r });
    assert.equal(relationship?.bundleEndpointProfile.case, 'httpsSpiffe');
    assert.equal(relationship?.bundleEndpointProfile.value?.endpointSpiffeId, 'spiffe://peer.org/spire/server');
    assert.equal(relationship?.trustDomainBundle?.trustDomain, 'peer.org');
    const stored = await f.client.bundles.getFederatedBundle({ trustDomain: 'peer.org' });
    assert.equal(stored.bundle?.spiffeBundleJson, relationship?.trustDomainBundle?.spiffeBundleJson);
  });

  it('refuses bad relationships naming the field', async () => {
    const create_ = (relationship: FederationRelationship) =>
      f.client.trustDomains.createFederationRelationship({ relationship });
    await rejects(
      f.client.trustDomains.createFederationRelationship({}),
      Code.InvalidArgument,
      /^relationship: required/,
    );
    await rejects(create_(web('example.org')), Code.InvalidArgument, /^relationship\.trustDomain: .*own trust domain/);
    await rejects(create_(web('bad td')), Code.InvalidArgument, /^relationship\.trustDomain: invalid trust domain/);
    await rejects(
      create_(web('a.org', 'http://a.org/b')),
      Code.InvalidArgument,
      /^relationship\.bundleEndpointUrl: .*must use https/,
    );
    await rejects(
      create_(web('a.org', 'https://u:p@a.org/b')),
      Code.InvalidArgument,
      /^relationship\.bundleEndpointUrl: must not contain user/,
    );
    await rejects(
      create_(web('a.org', 'not a url')),
      Code.InvalidArgument,
      /^relationship\.bundleEndpointUrl: .*is not a URL/,
    );
    const noProfile = web('a.org');
    noProfile.bundleEndpointProfile = { case: undefined };
    await rejects(create_(noProfile), Code.InvalidArgument, /^relationship\.bundleEndpointProfile: required/);
    await rejects(
      create_(spiffe('a.org', '')),
      Code.InvalidArgument,
      /^relationship\.httpsSpiffe\.endpointSpiffeId: required/,
    );
    const wrongBundle = web('a.org');
    wrongBundle.trustDomainBundle = {
      $typeName: 'steeple.types.v1.Bundle',
      trustDomain: 'b.org',
      spiffeBundleJson: '{}',
      sequence: 0n,
    };
    await rejects(
      create_(wrongBundle),
      Code.InvalidArgument,
      /^relationship\.trustDomainBundle\.trustDomain: "b.org" differs/,
    );
    const badBundle = web('a.org');
    badBundle.trustDomainBundle = {
      $typeName: 'steeple.types.v1.Bundle',
      trustDomain: '',
      spiffeBundleJson: 'nope',
      sequence: 0n,
    };
    await rejects(create_(badBundle), Code.InvalidArgument, /^relationship\.trustDomainBundle\.spiffeBundleJson: /);
    await rejects(
      f.client.trustDomains.getFederationRelationship({ trustDomain: 'a.org' }),
      Code.NotFound,
      /no federation relationship/,
    );
  });

  it('updates the fields the mask names, all of them without a mask', async () => {
    await f.client.trustDomains.createFederationRelationship({ relationship: web('upd.org') });
    const onlyUrl = await f.client.trustDomains.updateFederationRelationship({
      relationship: spiffe('upd.org', 'spiffe://upd.org/spire/server'),
      mask: { bundleEndpointUrl: true },
    });
    assert.equal(onlyUrl.relationship?.bundleEndpointUrl, 'https://upd.org:8443');
    assert.equal(onlyUrl.relationship?.bundleEndpointProfile.case, 'httpsWeb');
    const all = await f.client.trustDomains.updateFederationRelationship({
      relationship: spiffe('upd.org', 'spiffe://upd.org/spire/server'),
    });
    assert.equal(all.relationship?.bundleEndpointProfile.case, 'httpsSpiffe');
    const back = await f.client.trustDomains.updateFederationRelationship({ relationship: web('upd.org') });
    assert.equal(back.relationship?.bundleEndpointProfile.case, 'httpsWeb');
    await rejects(
      f.client.trustDomains.updateFederationRelationship({ relationship: web('none.org') }),
      Code.NotFound,
      /no federation relationship/,
    );
  });

  it('says refresh is not available yet (Unimplemented), after checking the relationship exists', async () => {
    await f.client.trustDomains.createFederationRelationship({ relationship: web('refresh.org') });
    await rejects(
      f.client.trustDomains.refreshBundle({ trustDomain: 'refresh.org' }),
      Code.Unimplemented,
      /does not fetch federated bundles yet/,
    );
    await rejects(
      f.client.trustDomains.refreshBundle({ trustDomain: 'none.org' }),
      Code.NotFound,
      /no federation relationship/,
    );
  });

  it('deletes a relationship with its bundle; refuses while entries federate with the trust domain', async () => {
    const bundle = SpiffeBundle.fromBundles({ x509: createTestCa({ trustDomain: 'del.org' }).x509Bundle() });
    const r = web('del.org');
    r.trustDomainBundle = {
      $typeName: 'steeple.types.v1.Bundle',
      trustDomain: 'del.org',
      spiffeBundleJson: bundle.marshal(),
      sequence: 0n,
    };
    await f.client.trustDomains.createFederationRelationship({ relationship: r });
    const user = await f.client.entries.createEntries({
      entries: [
        {
          spiffeId: 'spiffe://example.org/del-user',
          parentId: 'spiffe://example.org/agent',
          selectors: [{ type: 'unix', value: 'uid:9' }],
          federatesWith: ['del.org'],
        },
      ],
    });
    await rejects(
      f.client.trustDomains.deleteFederationRelationship({ trustDomain: 'del.org' }),
      Code.FailedPrecondition,
      /1 registration entries federate with "del.org"/,
    );
    await f.client.entries.deleteEntries({ ids: [user.results[0]?.entry?.id ?? ''] });
    await f.client.trustDomains.deleteFederationRelationship({ trustDomain: 'del.org' });
    await rejects(
      f.client.trustDomains.getFederationRelationship({ trustDomain: 'del.org' }),
      Code.NotFound,
      /no federation/,
    );
    await rejects(f.client.bundles.getFederatedBundle({ trustDomain: 'del.org' }), Code.NotFound, /no bundle/);
    await rejects(
      f.client.trustDomains.deleteFederationRelationship({ trustDomain: 'del.org' }),
      Code.NotFound,
      /no federation/,
    );
  });
});

describe('TrustDomainService with a bundle fetcher', () => {
  it('refreshes through AdminDeps.refreshBundle', async () => {
    const fetched = SpiffeBundle.fromBundles({
      x509: createTestCa({ trustDomain: 'live.org' }).x509Bundle(),
      sequenceNumber: 7n,
    });
    const asked: string[] = [];
    const f = await startAdminFixture({
      refreshBundle: async (td) => {
        asked.push(td.name);
        return fetched;
      },
    });
    try {
      await f.client.trustDomains.createFederationRelationship({ relationship: web('live.org') });
      const { bundle } = await f.client.trustDomains.refreshBundle({ trustDomain: 'spiffe://live.org' });
      assert.deepEqual(asked, ['live.org']);
      assert.equal(bundle?.sequence, 7n);
    } finally {
      await f.close();
    }
  });
});
