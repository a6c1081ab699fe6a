// TrustDomainService with a real FederationManager behind it: relationships from the config file
// are listed and shown (read only), and every relationship carries the manager's status.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { TrustDomain } from '@steeple/spiffe';
import { ManualClock } from '@steeple/spiffe/testing';
import {
  type FederationRelationship,
  FederationRelationshipSchema,
} from '../../../gen/steeple/server/v1/trust_domain_pb.js';
import { FederationManager } from '../../federation/federation-manager.js';
import { bundleOf, startTestPeer, type TestPeer } from '../../federation/federation-test-support.js';
import { type AdminFixture, startAdminFixture } from './testing/admin-fixture.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const unix = (d: Date) => BigInt(Math.floor(d.getTime() / 1000));

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

describe('TrustDomainService: relationships from the config file, and the status of each', () => {
  // The admin server of example.org; cluster-b.test is in its config file (federates_with),
  // with its bundle configured for first contact, and polled every 60 s (its refresh hint).
  let clock: ManualClock;
  let peer: TestPeer;
  let f: AdminFixture;
  let manager: FederationManager;
  const tick = async (ms: number) => {
    clock.advance(ms);
    await manager.whenIdle();
  };

  before(async () => {
    clock = new ManualClock(new Date());
    peer = await startTestPeer('cluster-b.test', { clock, refreshHintSeconds: 60 });
    f = await startAdminFixture({
      refreshBundle: (td) => manager.refresh(td),
      federationStatus: () => manager.status(),
    });
    await f.datastore.bundles.set({
      trustDomain: 'cluster-b.test',
      bundle: bundleOf(peer.ca, 1n).marshal(),
      sequence: 1n,
    });
    manager = new FederationManager({
      trustDomain: TrustDomain.parse('example.org'),
      bundles: f.datastore.bundles,
      relationships: f.datastore.federation,
      staticRelationships: [
        {
          trustDomain: peer.td,
          bundleEndpointUrl: peer.url,
          profile: 'https_spiffe',
          endpointSpiffeId: peer.serverId,
          source: 'config',
        },
      ],
      clock,
      relationshipSyncIntervalMs: 0,
    });
    await manager.start();
  });
  after(async () => {
    await manager.close();
    await peer.close();
    await f.close();
  });

  it('shows the config relationship before its first fetch as not yet fetched, with the configured bundle', async () => {
    const { relationship: r } = await f.client.trustDomains.getFederationRelationship({
      trustDomain: 'cluster-b.test',
    });
    assert.equal(r?.source, 'config');
    assert.equal(r?.bundleEndpointUrl, peer.url);
    assert.equal(r?.bundleEndpointProfile.case, 'httpsSpiffe');
    assert.equal(r?.bundleEndpointProfile.value?.endpointSpiffeId, 'spiffe://cluster-b.test/spire/server');
    assert.equal(r?.status?.state, 'not-yet-fetched');
    assert.equal(r?.status?.lastAttemptAt, 0n);
    assert.equal(r?.status?.nextRefreshAt, unix(clock.now()), 'the first fetch is due at once');
    assert.equal(r?.status?.currentBundle?.sequence, 1n, 'the configured bundle is in force');
    assert.equal(r?.status?.currentBundle?.refreshHintSeconds, 0n, 'the configured bundle has no refresh hint');
  });

  it('after a fetch: ok, with the bundle in force, its refresh hint, the times and the next refresh', async () => {
    await tick(0);
    const fetchedAt = clock.now();
    const { relationship: r } = await f.client.trustDomains.getFederationRelationship({
      trustDomain: 'cluster-b.test',
    });
    const s = r?.status;
    assert.equal(s?.state, 'ok', s?.lastError?.message);
    assert.equal(s?.lastSuccessAt, unix(fetchedAt));
    assert.equal(s?.lastAttemptAt, unix(fetchedAt));
    assert.equal(s?.lastChangeAt, 0n, 'the endpoint serves the authorities that were configured: nothing new');
    assert.equal(s?.consecutiveFailures, 0);
    assert.equal(s?.failingSince, 0n);
    assert.equal(s?.lastError, undefined);
    assert.equal(s?.nextRefreshAt, unix(fetchedAt) + 60n);
    assert.equal(s?.refreshIntervalSeconds, 60);
    assert.equal(s?.currentBundle?.sequence, 1n);
    assert.equal(s?.currentBundle?.refreshHintSeconds, 60n);
    assert.ok((s?.currentBundle?.storedAt ?? 0n) > 0n);
    assert.equal(r?.trustDomainBundle?.sequence, 1n);
  });

  it('lists the config relationship next to the datastore ones, ordered by trust domain, page by page', async () => {
    await f.client.trustDomains.createFederationRelationship({ relationship: web('api.org') });
    await f.client.trustDomains.createFederationRelationship({ relationship: web('zz.org') });
    const { relationships } = await f.client.trustDomains.listFederationRelationships({});
    assert.deepEqual(
      relationships.map((r) => [r.trustDomain, r.source, r.status?.state]),
      [
        ['api.org', 'datastore', 'not-yet-fetched'],
        ['cluster-b.test', 'config', 'ok'],
        ['zz.org', 'datastore', 'not-yet-fetched'],
      ],
    );
    const first = await f.client.trustDomains.listFederationRelationships({ pageSize: 1 });
    const second = await f.client.trustDomains.listFederationRelationships({
      pageSize: 1,
      pageToken: first.nextPageToken,
    });
    assert.equal(second.relationships[0]?.trustDomain, 'cluster-b.test');
    assert.equal(second.relationships[0]?.source, 'config');
    await f.client.trustDomains.deleteFederationRelationship({ trustDomain: 'api.org' });
    await f.client.trustDomains.deleteFederationRelationship({ trustDomain: 'zz.org' });
  });

  it('refuses to create, update or delete the config relationship, naming the trust domain and the config file', async () => {
    const rel = web('cluster-b.test', 'https://elsewhere.example/bundle');
    await rejects(
      f.client.trustDomains.createFederationRelationship({ relationship: rel }),
      Code.AlreadyExists,
      /"cluster-b\.test" is already defined in the server's config file \(federation\.federates_with\["cluster-b\.test"\]\)/,
    );
    await rejects(
      f.client.trustDomains.updateFederationRelationship({ relationship: rel }),
      Code.FailedPrecondition,
      /^cannot update the federation relationship with trust domain "cluster-b\.test": it is defined in the server's config file/,
    );
    await rejects(
      f.client.trustDomains.deleteFederationRelationship({ trustDomain: 'cluster-b.test' }),
      Code.FailedPrecondition,
      /^cannot delete the federation relationship with trust domain "cluster-b\.test": it is defined in the server's config file/,
    );
    const { relationship: r } = await f.client.trustDomains.getFederationRelationship({
      trustDomain: 'cluster-b.test',
    });
    assert.equal(r?.bundleEndpointUrl, peer.url, 'unchanged');
    assert.equal(r?.trustDomainBundle?.sequence, 1n, 'its bundle is still there');
  });

  it('while the endpoint is down: failing since the first failure, with the reason, and the last good bundle in force', async () => {
    const lastGood = await f.client.trustDomains.getFederationRelationship({ trustDomain: 'cluster-b.test' });
    const lastSuccessAt = lastGood.relationship?.status?.lastSuccessAt;
    await peer.close();
    await tick(MINUTE);
    const failedAt = clock.now();
    await tick(MINUTE);
    const { relationship: r } = await f.client.trustDomains.getFederationRelationship({
      trustDomain: 'cluster-b.test',
    });
    const s = r?.status;
    assert.equal(s?.state, 'failing');
    assert.equal(s?.failingSince, unix(failedAt), 'since the first failure of the run');
    assert.equal(s?.consecutiveFailures, 2);
    assert.equal(s?.lastAttemptAt, unix(clock.now()));
    assert.equal(s?.lastError?.at, unix(clock.now()));
    assert.equal(s?.lastError?.code, 'ERR_FEDERATION_ENDPOINT_UNREACHABLE');
    assert.equal(s?.lastError?.reason, 'connection-failed');
    assert.match(s?.lastError?.message ?? '', /"cluster-b\.test".*ECONNREFUSED/);
    assert.equal(s?.lastSuccessAt, lastSuccessAt, 'the last success is still the one before the outage');
    assert.equal(s?.currentBundle?.sequence, 1n, 'the last good bundle stays in force');
    assert.equal(s?.nextRefreshAt, unix(clock.now()) + 60n, 'retried at the next interval, not sooner');
    assert.deepEqual(r?.trustDomainBundle, lastGood.relationship?.trustDomainBundle, 'the stored bundle is untouched');

    const { relationships } = await f.client.trustDomains.listFederationRelationships({});
    assert.equal(relationships.find((x) => x.trustDomain === 'cluster-b.test')?.status?.state, 'failing');

    await rejects(
      f.client.trustDomains.refreshBundle({ trustDomain: 'cluster-b.test' }),
      Code.Unavailable,
      /cannot connect/,
    );
    const after = await f.client.trustDomains.getFederationRelationship({ trustDomain: 'cluster-b.test' });
    assert.equal(
      after.relationship?.status?.consecutiveFailures,
      3,
      'the manual refresh reached the config relationship',
    );
  });
});

describe('TrustDomainService without a federation component', () => {
  it('lists the datastore relationships with their source and no status', async () => {
    const f = await startAdminFixture();
    try {
      await f.client.trustDomains.createFederationRelationship({ relationship: web('plain.org') });
      const { relationship: r } = await f.client.trustDomains.getFederationRelationship({ trustDomain: 'plain.org' });
      assert.equal(r?.source, 'datastore');
      assert.equal(r?.status, undefined);
    } finally {
      await f.close();
    }
  });

  it('reports a datastore relationship the manager has not picked up yet as not yet fetched', async () => {
    const f = await startAdminFixture({ federationStatus: () => [] });
    try {
      await f.client.trustDomains.createFederationRelationship({ relationship: web('new.org') });
      const { relationship: r } = await f.client.trustDomains.getFederationRelationship({ trustDomain: 'new.org' });
      assert.equal(r?.source, 'datastore');
      assert.equal(r?.status?.state, 'not-yet-fetched');
      assert.equal(r?.status?.currentBundle, undefined, 'no bundle of new.org is held');
    } finally {
      await f.close();
    }
  });
});
