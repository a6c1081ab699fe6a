import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import net from 'node:net';
import { describe, it } from 'node:test';
import { SpiffeBundle, SpiffeId, TrustDomain, X509Bundle } from '@steeple/spiffe';
import { createTestCa, ManualClock } from '@steeple/spiffe/testing';
import { ConfigError } from '../../common/errors.js';
import { createMetrics } from '../../common/metrics.js';
import { DatastoreError } from '../datastore/index.js';
import { FederationError } from './federation-error.js';
import {
  FederationManager,
  type FederationManagerOptions,
  type FederationRelationshipSpec,
} from './federation-manager.js';
import {
  bundleOf,
  openTestDatastore,
  pemOf,
  startRawEndpoint,
  startTestPeer,
  type TestPeer,
  writeTemp,
} from './federation-test-support.js';

const tdA = TrustDomain.parse('cluster-a.test');
const tdB = TrustDomain.parse('cluster-b.test');
const SECOND = 1000;
const MINUTE = 60 * SECOND;

function spiffeSpec(peer: TestPeer, url = peer.url): FederationRelationshipSpec {
  return {
    trustDomain: peer.td,
    bundleEndpointUrl: url,
    profile: 'https_spiffe',
    endpointSpiffeId: peer.serverId,
    source: 'config',
  };
}

/** A peer (cluster-b.test, refresh hint 60 s), a datastore holding its configured bundle, a manager in cluster-a.test. */
async function world(options: { spec?: (peer: TestPeer) => FederationRelationshipSpec; bootstrap?: boolean } = {}) {
  const clock = new ManualClock(new Date());
  const peer = await startTestPeer('cluster-b.test', { clock, refreshHintSeconds: 60 });
  const store = await openTestDatastore(clock);
  if (options.bootstrap !== false) {
    // What `steeple server bundle set` (or trust_domain_bundle_path) leaves: the configured bundle (F-5).
    await store.ds.bundles.set({
      trustDomain: 'cluster-b.test',
      bundle: bundleOf(peer.ca, 1n).marshal(),
      sequence: 1n,
    });
  }
  const metrics = createMetrics();
  const changes: string[] = [];
  const make = (extra: Partial<FederationManagerOptions> = {}) => {
    const manager = new FederationManager({
      trustDomain: tdA,
      bundles: store.ds.bundles,
      relationships: store.ds.federation,
      staticRelationships: [options.spec ? options.spec(peer) : spiffeSpec(peer)],
      clock,
      metrics,
      relationshipSyncIntervalMs: 0,
      ...extra,
    });
    manager.onBundlesChanged((td) => changes.push(td));
    return manager;
  };
  const manager = make();
  const tick = async (ms: number) => {
    clock.advance(ms);
    await manager.whenIdle();
  };
  const stored = async (td = 'cluster-b.test') => {
    const s = await store.ds.bundles.get(td);
    return s === undefined ? undefined : { ...s, parsed: SpiffeBundle.parse(td, s.bundle) };
  };
  return {
    clock,
    peer,
    ds: store.ds,
    dir: store.dir,
    metrics,
    changes,
    manager,
    make,
    tick,
    stored,
    async close() {
      await manager.close();
      await peer.close();
      await store.close();
    },
  };
}

describe('FederationManager: polling', () => {
  it('fetches at start, stores the bundle under its trust domain and polls again at the refresh hint (F-7, F-8)', async () => {
    const w = await world();
    try {
      await w.manager.start();
      assert.equal(w.manager.status('cluster-b.test')?.state, 'not-yet-fetched');
      await w.tick(0);
      const s = await w.stored();
      assert.ok(s?.parsed.x509Bundle().equals(w.peer.ca.x509Bundle()));
      assert.equal(s?.parsed.refreshHintSeconds, 60);
      assert.deepEqual(w.changes, ['cluster-b.test']);
      const status = w.manager.status('cluster-b.test');
      assert.equal(status?.state, 'ok');
      assert.equal(status?.sequence, 1n);
      assert.equal(status?.refreshIntervalSeconds, 60);
      assert.deepEqual(status?.lastSuccessAt, w.clock.now());
      assert.deepEqual(status?.nextRefreshAt, new Date(w.clock.now().getTime() + MINUTE));
      assert.equal(status?.source, 'config');
      assert.equal(status?.endpointSpiffeId, 'spiffe://cluster-b.test/spire/server');
      assert.equal((await w.ds.bundles.list()).length, 1, 'no other trust domain was touched');

      await w.tick(59 * SECOND);
      assert.equal(w.manager.status('cluster-b.test')?.lastAttemptAt?.getTime(), status?.lastAttemptAt?.getTime());
      await w.tick(1 * SECOND);
      assert.deepEqual(w.manager.status('cluster-b.test')?.lastAttemptAt, w.clock.now(), 'polled after 60 s');
      assert.deepEqual(w.changes, ['cluster-b.test'], 'an unchanged bundle is not written again');
      const text = await w.metrics.render();
      assert.match(
        text,
        /steeple_federation_bundle_fetches_total\{federated_trust_domain="cluster-b.test",result="success",reason="ok"\} 2/,
      );
      assert.match(text, /steeple_federation_bundle_age_seconds\{federated_trust_domain="cluster-b.test"\} 0/);
    } finally {
      await w.close();
    }
  });

  it("picks up the peer's next CA at the next poll, so its CA rotation never breaks federation (F-5, F-9)", async () => {
    const w = await world();
    try {
      await w.manager.start();
      await w.tick(0);
      const oldCa = w.peer.ca;
      const nextCa = createTestCa({ trustDomain: tdB, clock: w.clock });

      w.peer.publish(nextCa); // step 1: the next CA is published, still unused
      await w.tick(MINUTE);
      let s = await w.stored();
      assert.equal(s?.sequence, 2n);
      assert.deepEqual(
        s?.parsed.x509Authorities.map((c) => c.fingerprint256),
        [oldCa.certificate.fingerprint256, nextCa.certificate.fingerprint256],
      );
      assert.deepEqual(w.changes, ['cluster-b.test', 'cluster-b.test']);

      w.peer.switchTo(nextCa); // step 2: the endpoint now presents an SVID of the new CA, the old one is gone
      await w.tick(MINUTE);
      s = await w.stored();
      assert.equal(
        w.manager.status('cluster-b.test')?.state,
        'ok',
        w.manager.status('cluster-b.test')?.lastError?.message,
      );
      assert.equal(s?.sequence, 3n);
      assert.ok(
        s?.parsed.x509Bundle().equals(nextCa.x509Bundle()),
        'the latest fetched bundle authenticated the endpoint',
      );
    } finally {
      await w.close();
    }
  });

  it('refuses an endpoint whose new CA was never published first, and says so (F-9 broken by the peer)', async () => {
    const w = await world();
    try {
      await w.manager.start();
      await w.tick(0);
      w.peer.switchTo(createTestCa({ trustDomain: tdB, clock: w.clock })); // no overlap: step 1 skipped
      await w.tick(MINUTE);
      const status = w.manager.status('cluster-b.test');
      assert.equal(status?.state, 'failing');
      assert.equal(status?.lastError?.reason, 'endpoint-svid-invalid');
      assert.match(status?.lastError?.message ?? '', /not a valid X\.509-SVID of trust domain "cluster-b\.test"/);
      assert.equal((await w.stored())?.sequence, 1n, 'the last good bundle stays in force');
    } finally {
      await w.close();
    }
  });

  it('keeps the last good bundle while the endpoint is unreachable, says why, and retries only at the next interval (F-7)', async () => {
    const w = await world();
    try {
      await w.manager.start();
      await w.tick(0);
      const before = await w.stored();
      await w.peer.close();
      await w.tick(MINUTE);
      const status = w.manager.status('cluster-b.test');
      assert.equal(status?.state, 'failing');
      assert.equal(status?.lastError?.code, 'ERR_FEDERATION_ENDPOINT_UNREACHABLE');
      assert.equal(status?.lastError?.reason, 'connection-failed');
      assert.match(status?.lastError?.message ?? '', /ECONNREFUSED/);
      assert.equal(status?.consecutiveFailures, 1);
      assert.deepEqual(status?.failingSince, w.clock.now(), 'the failures began with this fetch');
      assert.equal(status?.sequence, 1n, 'the bundle in force is still the last good one');
      assert.deepEqual(status?.nextRefreshAt, new Date(w.clock.now().getTime() + MINUTE), 'no hammering');
      assert.deepEqual(await w.stored(), before, 'the stored bundle is untouched');
      await w.tick(30 * SECOND);
      assert.equal(w.manager.status('cluster-b.test')?.consecutiveFailures, 1, 'no retry before the interval');
      await w.tick(30 * SECOND);
      assert.equal(w.manager.status('cluster-b.test')?.consecutiveFailures, 2);
      assert.deepEqual(
        w.manager.status('cluster-b.test')?.failingSince,
        status?.failingSince,
        'failing since the first failure of the run, not the latest',
      );
      const text = await w.metrics.render();
      assert.match(
        text,
        /steeple_federation_bundle_fetches_total\{federated_trust_domain="cluster-b.test",result="failure",reason="connection-failed"\} 2/,
      );
      assert.match(text, /steeple_federation_bundle_consecutive_failures\{federated_trust_domain="cluster-b.test"\} 2/);
      assert.match(text, /steeple_federation_bundle_age_seconds\{federated_trust_domain="cluster-b.test"\} 120/);
    } finally {
      await w.close();
    }
  });

  it('backs off from 10 s on first contact while no bundle was ever fetched', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const w = await world({
      bootstrap: false,
      spec: () => ({
        trustDomain: tdB,
        bundleEndpointUrl: `https://127.0.0.1:${port}/`,
        profile: 'https_web',
        source: 'config',
      }),
    });
    try {
      await w.manager.start();
      const delays: number[] = [];
      for (let i = 0; i < 7; i++) {
        const due = w.manager.status('cluster-b.test')?.nextRefreshAt?.getTime() ?? 0;
        await w.tick(due - w.clock.now().getTime());
        delays.push(
          ((w.manager.status('cluster-b.test')?.nextRefreshAt?.getTime() ?? 0) - w.clock.now().getTime()) / 1000,
        );
      }
      assert.deepEqual(delays, [10, 20, 40, 80, 160, 300, 300]);
      assert.equal(w.manager.status('cluster-b.test')?.sequence, undefined);
    } finally {
      await w.close();
    }
  });
});

describe('FederationManager: refusals keep the last good bundle', () => {
  it('refuses malformed, oversized, empty, foreign and rolled-back bundles, each with its reason', async () => {
    const w = await world();
    let respond: (res: ServerResponse) => void = (res) => res.end(bundleOf(w.peer.ca, 5n).marshal());
    const raw = await startRawEndpoint(pemOf(w.peer.svid), (_req, res) => respond(res));
    const manager = w.make({ staticRelationships: [spiffeSpec(w.peer, raw.url)], maxBundleBytes: 4096 });
    const tick = async () => {
      w.clock.advance(5 * MINUTE);
      await manager.whenIdle();
    };
    try {
      await manager.start();
      w.clock.advance(0);
      await manager.whenIdle();
      const good = await w.stored();
      assert.equal(good?.sequence, 5n);
      const otherTd = createTestCa({ trustDomain: 'cluster-c.test', clock: w.clock });
      const extra = createTestCa({ trustDomain: tdB, clock: w.clock });
      const withExtra = (seq: bigint) =>
        SpiffeBundle.fromBundles({
          x509: X509Bundle.fromAuthorities(tdB, [w.peer.ca.certificate, extra.certificate]),
          sequenceNumber: seq,
        }).marshal();
      const cases: [string, (res: ServerResponse) => void, string][] = [
        ['malformed', (res) => res.end('{"keys": "nope"}'), 'malformed'],
        ['oversized', (res) => res.end(' '.repeat(5000)), 'oversized'],
        ['empty', (res) => res.end('{"keys": [], "spiffe_sequence": 9}'), 'empty'],
        ['another trust domain', (res) => res.end(bundleOf(otherTd, 9n).marshal()), 'other-trust-domain'],
        ['an older sequence', (res) => res.end(withExtra(4n)), 'sequence-rollback'],
      ];
      for (const [what, answer, reason] of cases) {
        respond = answer;
        await tick();
        const status = manager.status('cluster-b.test');
        assert.equal(status?.state, 'failing', what);
        assert.equal(status?.lastError?.reason, reason, `${what}: ${status?.lastError?.message}`);
        assert.deepEqual(await w.stored(), good, `${what}: the last good bundle stays`);
      }
      assert.match(manager.status('cluster-b.test')?.lastError?.message ?? '', /spiffe_sequence 4 is lower than/);

      // The same authorities under an older number are no news, not an attack.
      respond = (res) => res.end(bundleOf(w.peer.ca, 3n).marshal());
      await tick();
      assert.equal(manager.status('cluster-b.test')?.state, 'ok');
      assert.equal((await w.stored())?.sequence, 5n);

      respond = (res) => res.end(withExtra(6n));
      await tick();
      assert.equal((await w.stored())?.sequence, 6n, 'a newer bundle is accepted again');
    } finally {
      await manager.close();
      await raw.close();
      await w.close();
    }
  });

  it('numbers a bundle that has no spiffe_sequence itself, growing with each change', async () => {
    const w = await world();
    let doc = SpiffeBundle.fromBundles({ x509: w.peer.ca.x509Bundle() }).marshal();
    const raw = await startRawEndpoint(pemOf(w.peer.svid), (_req, res) => res.end(doc));
    const manager = w.make({ staticRelationships: [spiffeSpec(w.peer, raw.url)] });
    const tick = async () => {
      w.clock.advance(5 * MINUTE);
      await manager.whenIdle();
    };
    try {
      await manager.start();
      await tick();
      assert.equal((await w.stored())?.sequence, 1n, 'same authorities as the configured bundle');
      await tick();
      assert.equal((await w.stored())?.sequence, 1n);
      const extra = createTestCa({ trustDomain: tdB, clock: w.clock });
      doc = SpiffeBundle.fromBundles({
        x509: X509Bundle.fromAuthorities(tdB, [w.peer.ca.certificate, extra.certificate]),
      }).marshal();
      await tick();
      const s = await w.stored();
      assert.equal(s?.sequence, 2n);
      assert.equal(s?.parsed.sequenceNumber, 2n, 'the stored document carries the number too');
    } finally {
      await manager.close();
      await raw.close();
      await w.close();
    }
  });
});

describe('FederationManager: relationships', () => {
  it('polls relationships created in the datastore and stops when they are deleted (F-10)', async () => {
    const w = await world();
    const manager = w.make({ staticRelationships: [] });
    try {
      await manager.start();
      assert.deepEqual(manager.status(), []);
      await w.ds.federation.create({
        trustDomain: 'cluster-b.test',
        bundleEndpointUrl: w.peer.url,
        profile: 'https_spiffe',
        endpointSpiffeId: w.peer.serverId.toString(),
      });
      await manager.sync();
      w.clock.advance(0);
      await manager.whenIdle();
      assert.equal(manager.status('cluster-b.test')?.state, 'ok');
      assert.equal(manager.status('cluster-b.test')?.source, 'datastore');

      // What the admin API does: delete the relationship, then its bundle.
      await w.ds.federation.delete('cluster-b.test');
      await w.ds.bundles.delete('cluster-b.test');
      await manager.sync();
      assert.equal(manager.status('cluster-b.test'), undefined);
      w.clock.advance(10 * MINUTE);
      await manager.whenIdle();
      assert.equal(await w.ds.bundles.get('cluster-b.test'), undefined, 'polling stopped: nothing written back');
    } finally {
      await manager.close();
      await w.close();
    }
  });

  it('never writes back the bundle of a relationship deleted while its fetch was in flight', async () => {
    const w = await world();
    let release: () => void = () => undefined;
    const raw = await startRawEndpoint(pemOf(w.peer.svid), (_req, res) => {
      release = () => res.end(bundleOf(w.peer.ca, 8n).marshal());
    });
    const manager = w.make({ staticRelationships: [] });
    try {
      await w.ds.federation.create({
        trustDomain: 'cluster-b.test',
        bundleEndpointUrl: raw.url,
        profile: 'https_spiffe',
        endpointSpiffeId: w.peer.serverId.toString(),
      });
      await manager.start();
      w.clock.advance(0); // the fetch starts
      while (raw.requests() === 0) await new Promise((r) => setTimeout(r, 5));
      await w.ds.federation.delete('cluster-b.test');
      await w.ds.bundles.delete('cluster-b.test');
      release();
      await manager.whenIdle();
      assert.equal(await w.ds.bundles.get('cluster-b.test'), undefined);
    } finally {
      await manager.close();
      await raw.close();
      await w.close();
    }
  });

  it('refresh() fetches at once and returns the bundle in force; it names what went wrong otherwise', async () => {
    const w = await world();
    try {
      await w.manager.start();
      const bundle = await w.manager.refresh('cluster-b.test');
      assert.ok(bundle.x509Bundle().equals(w.peer.ca.x509Bundle()));
      assert.equal(bundle.sequenceNumber, 1n);
      await assert.rejects(
        w.manager.refresh('nobody.test'),
        (e: unknown) => e instanceof DatastoreError && e.code === 'ERR_FEDERATION_RELATIONSHIP_NOT_FOUND',
      );
      w.peer.svid = w.peer.ca.issueX509Svid('spiffe://cluster-b.test/not-the-server');
      await assert.rejects(w.manager.refresh(tdB), (e: unknown) => {
        assert.ok(e instanceof FederationError);
        assert.equal(e.reason, 'wrong-endpoint-id');
        return true;
      });
      assert.equal(w.manager.status('cluster-b.test')?.lastError?.reason, 'wrong-endpoint-id');
    } finally {
      await w.close();
    }
  });

  it('stores the configured initial bundle (trust_domain_bundle_path) only while none is stored', async () => {
    const w = await world({ bootstrap: false });
    const managers: FederationManager[] = [];
    try {
      const pem = await writeTemp(w.dir, 'peer.pem', w.peer.ca.certificate.toString());
      const first = w.make({ staticRelationships: [{ ...spiffeSpec(w.peer), trustDomainBundlePath: pem }] });
      managers.push(first);
      await first.start();
      const boot = await w.stored();
      assert.ok(boot?.parsed.x509Bundle().equals(w.peer.ca.x509Bundle()), 'stored before the first fetch');
      assert.deepEqual(w.changes, ['cluster-b.test']);
      w.clock.advance(0);
      await first.whenIdle();
      assert.equal(first.status('cluster-b.test')?.state, 'ok', 'the first contact was authenticated with it');
      await first.close();

      // After a restart the stored (fetched) bundle wins over the file.
      const stranger = createTestCa({ trustDomain: tdB, clock: w.clock });
      const other = await writeTemp(w.dir, 'other.json', bundleOf(stranger, 50n).marshal());
      const second = w.make({ staticRelationships: [{ ...spiffeSpec(w.peer), trustDomainBundlePath: other }] });
      managers.push(second);
      await second.start();
      assert.ok((await w.stored())?.parsed.x509Bundle().equals(w.peer.ca.x509Bundle()));

      await w.ds.bundles.delete('cluster-b.test');
      const third = w.make({
        staticRelationships: [{ ...spiffeSpec(w.peer), trustDomainBundlePath: `${w.dir}/missing.pem` }],
      });
      managers.push(third);
      await assert.rejects(third.start(), (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.match(e.message, /https_spiffe\.trust_domain_bundle_path: cannot read .*missing\.pem/);
        return true;
      });
    } finally {
      for (const m of managers) await m.close();
      await w.close();
    }
  });

  it('authenticates a non-self-serving endpoint with the stored bundle of the endpoint trust domain (F-5)', async () => {
    const w = await world();
    const dCa = createTestCa({ trustDomain: 'cluster-d.test', clock: w.clock });
    const raw = await startRawEndpoint(pemOf(w.peer.svid), (_req, res) => res.end(bundleOf(dCa, 2n).marshal()));
    const manager = w.make({
      staticRelationships: [
        {
          trustDomain: TrustDomain.parse('cluster-d.test'),
          bundleEndpointUrl: raw.url,
          profile: 'https_spiffe',
          endpointSpiffeId: w.peer.serverId,
          source: 'config',
        },
      ],
    });
    try {
      await manager.start();
      w.clock.advance(0);
      await manager.whenIdle();
      const d = await w.stored('cluster-d.test');
      assert.ok(d?.parsed.x509Bundle().equals(dCa.x509Bundle()), manager.status('cluster-d.test')?.lastError?.message);
      assert.ok((await w.stored('cluster-b.test'))?.parsed.x509Bundle().equals(w.peer.ca.x509Bundle()), 'untouched');
    } finally {
      await manager.close();
      await raw.close();
      await w.close();
    }
  });

  it('refuses to federate with its own trust domain', async () => {
    assert.throws(
      () =>
        new FederationManager({
          trustDomain: tdA,
          bundles: { get: async () => undefined, set: async () => Promise.reject(new Error('no')) },
          relationships: { list: async () => [], get: async () => undefined },
          staticRelationships: [
            {
              trustDomain: tdA,
              bundleEndpointUrl: 'https://a/',
              profile: 'https_spiffe',
              endpointSpiffeId: SpiffeId.parse('spiffe://cluster-a.test/spire/server'),
              source: 'config',
            },
          ],
        }),
      /own trust domain/,
    );
  });
});
