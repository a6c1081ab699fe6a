import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { SpiffeBundle, SpiffeId, TrustDomain, verifyX509Svid } from '@steeple/spiffe';
import { ManualClock } from '@steeple/spiffe/testing';
import { createMetrics } from '../../common/metrics.js';
import { MemoryJournalStorage } from '../ca/ca-journal.js';
import { CaManager } from '../ca/ca-manager.js';
import { MemoryKeyManager } from '../ca/key-manager.js';
import { ServerSvidRotator } from '../ca/server-svid.js';
import { DatastoreBundlePublisher } from '../datastore-bundle-publisher.js';
import { tlsMaterialFromSvidSource } from './bundle-endpoint-server.js';
import type { FederationConfig } from './federation-config.js';
import { openTestDatastore, writeTemp } from './federation-test-support.js';
import { type RunningFederation, startFederation } from './start-federation.js';

const MINUTE = 60_000;

/** One trust domain's server parts that federation touches: datastore, CA, server SVID. */
async function cluster(name: string, clock: ManualClock) {
  const trustDomain = TrustDomain.parse(name);
  const store = await openTestDatastore(clock);
  const ca = new CaManager({
    trustDomain,
    keyManager: new MemoryKeyManager(),
    journal: new MemoryJournalStorage(),
    publisher: new DatastoreBundlePublisher({ trustDomain, bundles: store.ds.bundles, clock }),
    clock,
    caTtlSeconds: 3600, // prepare the next CA at 30 min, activate it at 50 min, expire at 60 min
  });
  await ca.start();
  const svid = new ServerSvidRotator({ ca, clock, ttlSeconds: 600 });
  await svid.start();
  return { trustDomain, ds: store.ds, dir: store.dir, ca, svid, close: store.close };
}

describe('startFederation: two trust domains', () => {
  it('federates both ways and survives a CA rotation on one side without any manual step (F-5, F-7, F-9, F-10)', async () => {
    const clock = new ManualClock(new Date());
    const a = await cluster('cluster-a.test', clock);
    const b = await cluster('cluster-b.test', clock);
    const running: RunningFederation[] = [];
    const changedInB: string[] = [];
    try {
      const endpoint = { address: '127.0.0.1', port: 0, refresh_hint: 300, profile: { type: 'https_spiffe' as const } };
      const fedB = await startFederation({
        config: { bundle_endpoint: endpoint, federates_with: {} },
        trustDomain: b.trustDomain,
        datastore: b.ds,
        serverSvid: tlsMaterialFromSvidSource(b.svid),
        clock,
        metrics: createMetrics(),
        onBundlesChanged: (td) => changedInB.push(td),
      });
      running.push(fedB);
      // The operators exchange bundles once (`steeple server bundle show` on one side, a file on the other)
      // and create one relationship in each direction (F-10): A through its config, B through the admin API.
      const bBundleFile = await writeTemp(a.dir, 'cluster-b.json', b.ca.bundle().marshal());
      const configA: FederationConfig = {
        bundle_endpoint: endpoint,
        federates_with: {
          'cluster-b.test': {
            bundle_endpoint_url: fedB.endpoint?.url ?? '',
            bundle_endpoint_profile: {
              type: 'https_spiffe',
              endpointSpiffeId: 'spiffe://cluster-b.test/spire/server',
              trustDomainBundlePath: bBundleFile,
            },
          },
        },
      };
      const fedA = await startFederation({
        config: configA,
        trustDomain: a.trustDomain,
        datastore: a.ds,
        serverSvid: tlsMaterialFromSvidSource(a.svid),
        clock,
      });
      running.push(fedA);
      await b.ds.bundles.set({
        trustDomain: 'cluster-a.test',
        bundle: a.ca.bundle().marshal(),
        sequence: a.ca.bundle().sequenceNumber ?? 1n,
      });
      await b.ds.federation.create({
        trustDomain: 'cluster-a.test',
        bundleEndpointUrl: fedA.endpoint?.url ?? '',
        profile: 'https_spiffe',
        endpointSpiffeId: 'spiffe://cluster-a.test/spire/server',
      });
      await fedB.manager.sync();

      const idle = async () => {
        await Promise.all([a.ca.whenIdle(), b.ca.whenIdle(), a.svid.whenIdle(), b.svid.whenIdle()]);
        await Promise.all([fedA.manager.whenIdle(), fedB.manager.whenIdle()]);
      };
      const storedAt = async (ds: typeof a.ds, td: string) => {
        const s = await ds.bundles.get(td);
        return s === undefined ? undefined : SpiffeBundle.parse(td, s.bundle);
      };
      const workloadKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      const bWorkload = () =>
        b.ca.x509Ca().signX509Svid({
          publicKey: workloadKey,
          spiffeId: SpiffeId.parse('spiffe://cluster-b.test/api'),
          ttlSeconds: 300,
        });

      clock.advance(0);
      await idle();
      assert.equal(
        fedA.manager.status('cluster-b.test')?.state,
        'ok',
        fedA.manager.status('cluster-b.test')?.lastError?.message,
      );
      assert.equal(
        fedB.manager.status('cluster-a.test')?.state,
        'ok',
        fedB.manager.status('cluster-a.test')?.lastError?.message,
      );
      assert.equal(fedA.manager.status('cluster-b.test')?.refreshIntervalSeconds, 300, 'the served refresh hint');

      // Run 75 minutes: B prepares its next CA at 30 min, activates it at 50, its first CA expires at 60.
      const firstAuthority = b.ca.status().x509.current?.id;
      let sawNextBeforeActivation = false;
      for (let t = 0; t < 75; t++) {
        clock.advance(MINUTE);
        await idle();
        const status = fedA.manager.status('cluster-b.test');
        assert.equal(status?.state, 'ok', `minute ${t + 1}: ${status?.lastError?.message}`);
        const stored = await storedAt(a.ds, 'cluster-b.test');
        assert.ok(stored, `minute ${t + 1}`);
        // Every B workload SVID verifies in A at every moment (A's agents get this bundle).
        verifyX509Svid(
          bWorkload().certificates.map((der) => new X509Certificate(der)),
          stored.x509Bundle(),
          { now: clock.now() },
        );
        if (b.ca.status().x509.current?.id === firstAuthority && stored.x509Authorities.length === 2) {
          sawNextBeforeActivation = true;
        }
      }
      assert.notEqual(b.ca.status().x509.current?.id, firstAuthority, 'B rotated its CA');
      assert.ok(sawNextBeforeActivation, "A held B's next CA before B started using it");
      const finalB = b.ca.bundle();
      const finalInA = await storedAt(a.ds, 'cluster-b.test');
      assert.ok(finalInA?.x509Bundle().equals(finalB.x509Bundle()), "A holds B's current bundle");
      assert.equal(fedB.manager.status('cluster-a.test')?.state, 'ok');
      assert.deepEqual(new Set(changedInB), new Set(['cluster-a.test']), "B's listener saw A's bundle arrive");
      assert.equal((await a.ds.bundles.list()).map((x) => x.trustDomain).join(), 'cluster-a.test,cluster-b.test');
    } finally {
      for (const f of running) await f.close();
      a.ca.stop();
      b.ca.stop();
      a.svid.stop();
      b.svid.stop();
      await a.close();
      await b.close();
    }
  });

  it('runs the manager without a bundle endpoint, and needs the server SVID for an https_spiffe one', async () => {
    const clock = new ManualClock(new Date());
    const store = await openTestDatastore(clock);
    try {
      const fed = await startFederation({
        config: undefined,
        trustDomain: TrustDomain.parse('solo.test'),
        datastore: store.ds,
        clock,
      });
      assert.equal(fed.endpoint, undefined);
      assert.deepEqual(fed.manager.status(), []);
      await fed.close();
      await fed.close();
      await assert.rejects(
        startFederation({
          config: {
            bundle_endpoint: { address: '127.0.0.1', port: 0, refresh_hint: 300, profile: { type: 'https_spiffe' } },
            federates_with: {},
          },
          trustDomain: TrustDomain.parse('solo.test'),
          datastore: store.ds,
          clock,
        }),
        /needs the server SVID/,
      );
    } finally {
      await store.close();
    }
  });
});
