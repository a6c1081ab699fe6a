// How `steeple server federation show|list` print a relationship's status: the formatter with a
// fixed "now", then the commands in-process against a real admin server whose federation
// component reports a failing relationship from the config file.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { SpiffeBundle } from '@steeple/spiffe';
import { createTestCa } from '@steeple/spiffe/testing';
import { FederationRelationshipSchema } from '../gen/steeple/server/v1/trust_domain_pb.js';
import { type AdminFixture, startAdminFixture } from '../server/api/admin/testing/admin-fixture.js';
import type { FederationRelationshipStatus } from '../server/federation/federation-manager.js';
import { formatRelationship } from './federation-input.js';
import { runCli } from './main.js';

const NOW = new Date('2030-01-01T12:00:00Z');
const at = (secondsFromNow: number) => BigInt(NOW.getTime() / 1000 + secondsFromNow);

function relationship(fields: MessageInitShape<typeof FederationRelationshipSchema>) {
  return create(FederationRelationshipSchema, {
    trustDomain: 'cluster-b.test',
    bundleEndpointUrl: 'https://10.0.0.2:8443',
    bundleEndpointProfile: { case: 'httpsSpiffe', value: { endpointSpiffeId: 'spiffe://cluster-b.test/spire/server' } },
    source: 'config',
    ...fields,
  });
}

/** The value of the `Label : value` line. */
function row(text: string, label: string): string | undefined {
  const line = text.split('\n').find((l) => new RegExp(`^${label} +: `).test(l));
  return line?.replace(/^[^:]+: /, '');
}

describe('formatRelationship', () => {
  it('a failing relationship: since when, why, and which bundle stays in force', () => {
    const text = formatRelationship(
      relationship({
        trustDomainBundle: { trustDomain: 'cluster-b.test', spiffeBundleJson: '{}', sequence: 3n },
        status: {
          state: 'failing',
          lastAttemptAt: at(-5),
          lastSuccessAt: at(-600),
          lastChangeAt: at(-3600),
          failingSince: at(-65),
          consecutiveFailures: 2,
          lastError: {
            at: at(-5),
            code: 'ERR_FEDERATION_ENDPOINT_UNREACHABLE',
            reason: 'connection-failed',
            message: 'connect ECONNREFUSED 10.0.0.2:8443',
          },
          nextRefreshAt: at(55),
          refreshIntervalSeconds: 60,
          currentBundle: { sequence: 3n, refreshHintSeconds: 60n, storedAt: at(-3600) },
        },
      }),
      NOW,
    );
    assert.equal(row(text, 'Defined in'), 'config file (federation.federates_with; read only through the API)');
    assert.equal(row(text, 'Endpoint SPIFFE ID'), 'spiffe://cluster-b.test/spire/server');
    assert.equal(
      row(text, 'Status'),
      'failing since 2030-01-01T11:58:55Z (65s ago) (connection-failed: connect ECONNREFUSED 10.0.0.2:8443); ' +
        'serving the last good bundle (sequence 3) fetched at 2030-01-01T11:50:00Z (10m ago)',
    );
    assert.equal(row(text, 'Bundle sequence'), '3');
    assert.equal(row(text, 'Bundle refresh hint'), '60s');
    assert.equal(row(text, 'Last success'), '2030-01-01T11:50:00Z (10m ago)');
    assert.equal(row(text, 'Last attempt'), '2030-01-01T11:59:55Z (5s ago)');
    assert.equal(row(text, 'Consecutive failures'), '2');
    assert.equal(
      row(text, 'Last error'),
      '2030-01-01T11:59:55Z (5s ago): connection-failed (ERR_FEDERATION_ENDPOINT_UNREACHABLE): connect ECONNREFUSED 10.0.0.2:8443',
    );
    assert.equal(row(text, 'Next refresh'), '2030-01-01T12:00:55Z (in 55s), then every 60s');
  });

  it('failing with no bundle held says its SVIDs cannot be verified', () => {
    const text = formatRelationship(
      relationship({
        status: {
          state: 'failing',
          failingSince: at(-10),
          consecutiveFailures: 1,
          lastError: { at: at(-10), code: '', reason: 'internal', message: 'boom' },
        },
      }),
      NOW,
    );
    assert.match(
      row(text, 'Status') ?? '',
      /^failing since .* \(internal: boom\); no bundle of "cluster-b\.test" is held yet, so its SVIDs cannot be verified$/,
    );
    assert.equal(row(text, 'Bundle sequence'), 'no bundle yet');
    assert.equal(row(text, 'Last success'), 'none since the server started');
    assert.equal(row(text, 'Last error'), '2030-01-01T11:59:50Z (10s ago): internal: boom');
  });

  it('ok, and not yet fetched', () => {
    const ok = formatRelationship(
      relationship({
        source: 'datastore',
        status: {
          state: 'ok',
          lastSuccessAt: at(-2),
          lastError: { at: at(-7200), code: 'X', reason: 'timeout', message: 'slow' },
          currentBundle: { sequence: 4n, refreshHintSeconds: 0n, storedAt: at(-2) },
          nextRefreshAt: at(298),
          refreshIntervalSeconds: 300,
        },
      }),
      NOW,
    );
    assert.equal(row(ok, 'Defined in'), 'API (stored in the datastore)');
    assert.equal(row(ok, 'Status'), 'ok: bundle (sequence 4) refreshed at 2030-01-01T11:59:58Z (2s ago)');
    assert.equal(row(ok, 'Bundle refresh hint'), 'none (the default applies)');
    assert.match(row(ok, 'Last error') ?? '', /timeout \(X\): slow \(recovered since\)$/);
    assert.equal(row(ok, 'Consecutive failures'), undefined);

    const pending = formatRelationship(
      relationship({
        status: {
          state: 'not-yet-fetched',
          currentBundle: { sequence: 1n, refreshHintSeconds: 0n, storedAt: at(-30) },
          nextRefreshAt: at(0),
        },
      }),
      NOW,
    );
    assert.equal(
      row(pending, 'Status'),
      'not yet fetched; serving the bundle (sequence 1) stored at 2030-01-01T11:59:30Z (30s ago)',
    );
    assert.equal(row(pending, 'Last attempt'), 'none yet');
    assert.equal(row(pending, 'Next refresh'), '2030-01-01T12:00:00Z (now)');
  });

  it('from a server that reports no status', () => {
    const text = formatRelationship(relationship({ source: '' }), NOW);
    assert.equal(row(text, 'Defined in'), undefined);
    assert.equal(row(text, 'Status'), 'unknown (this server does not report the fetch status)');
    assert.equal(row(text, 'Next refresh'), undefined);
  });
});

describe('steeple server federation show|list|update|delete on a relationship from the config file', () => {
  let f: AdminFixture;
  let sock: string[];
  const failing: FederationRelationshipStatus = {
    trustDomain: 'cluster-b.test',
    source: 'config',
    bundleEndpointUrl: 'https://10.0.0.2:8443',
    profile: 'https_spiffe',
    endpointSpiffeId: 'spiffe://cluster-b.test/spire/server',
    state: 'failing',
    lastAttemptAt: new Date(Date.now() - 5000),
    lastSuccessAt: new Date(Date.now() - 600_000),
    failingSince: new Date(Date.now() - 65_000),
    lastError: {
      at: new Date(Date.now() - 5000),
      code: 'ERR_FEDERATION_ENDPOINT_UNREACHABLE',
      reason: 'connection-failed',
      message: 'bundle endpoint of "cluster-b.test" https://10.0.0.2:8443/: cannot connect (ECONNREFUSED)',
    },
    consecutiveFailures: 2,
    nextRefreshAt: new Date(Date.now() + 55_000),
    refreshIntervalSeconds: 60,
    sequence: 3n,
  };

  async function cli(...args: string[]) {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli([...args, ...sock], { out: (t) => out.push(t), err: (t) => err.push(t) });
    return { code, stdout: out.join(''), stderr: err.join('') };
  }

  before(async () => {
    f = await startAdminFixture({ federationStatus: () => [failing] });
    sock = ['-socketPath', f.socketPath];
    const bundle = SpiffeBundle.fromBundles({
      x509: createTestCa({ trustDomain: 'cluster-b.test' }).x509Bundle(),
      sequenceNumber: 3n,
      refreshHintSeconds: 60,
    });
    await f.datastore.bundles.set({ trustDomain: 'cluster-b.test', bundle: bundle.marshal(), sequence: 3n });
  });
  after(async () => {
    await f.close();
  });

  it('show prints the status lines; -output json has the same fields', async () => {
    const shown = await cli('server', 'federation', 'show', '-trustDomain', 'cluster-b.test');
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^Defined in +: config file/m);
    assert.match(
      shown.stdout,
      /^Status +: failing since \S+ \(\d+s ago\) \(connection-failed: bundle endpoint of "cluster-b\.test" .*ECONNREFUSED\)\); serving the last good bundle \(sequence 3\) fetched at \S+ \(\d+m ago\)$/m,
    );
    assert.match(shown.stdout, /^Bundle refresh hint +: 60s$/m);
    assert.match(shown.stdout, /^Next refresh +: \S+ \(in \d+s\), then every 60s$/m);

    const json = await cli('server', 'federation', 'show', '-trustDomain', 'cluster-b.test', '-output', 'json');
    assert.equal(json.code, 0, json.stderr);
    const doc = JSON.parse(json.stdout);
    assert.equal(doc.source, 'config');
    assert.equal(doc.https_spiffe.endpoint_spiffe_id, 'spiffe://cluster-b.test/spire/server');
    assert.equal(doc.status.state, 'failing');
    assert.equal(doc.status.last_error.reason, 'connection-failed');
    assert.equal(doc.status.last_error.code, 'ERR_FEDERATION_ENDPOINT_UNREACHABLE');
    assert.equal(doc.status.consecutive_failures, 2);
    assert.equal(doc.status.refresh_interval_seconds, 60);
    assert.equal(doc.status.current_bundle.sequence, '3');
    assert.equal(doc.status.current_bundle.refresh_hint_seconds, '60');
    for (const key of ['last_attempt_at', 'last_success_at', 'failing_since', 'next_refresh_at']) {
      assert.match(doc.status[key], /^\d{10}$/, `${key} in Unix seconds`);
    }
  });

  it('list includes it', async () => {
    const listed = await cli('server', 'federation', 'list');
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^Found 1 federation relationship$/m);
    assert.match(listed.stdout, /^Status +: failing since /m);
    const json = JSON.parse((await cli('server', 'federation', 'list', '-output', 'json')).stdout);
    assert.equal(json.relationships[0].status.state, 'failing');
  });

  it('update and delete are refused, naming the trust domain and the config file', async () => {
    const update = await cli(
      'server',
      'federation',
      'update',
      '-trustDomain',
      'cluster-b.test',
      '-bundleEndpointURL',
      'https://other.example:8443',
      '-bundleEndpointProfile',
      'https_web',
    );
    assert.equal(update.code, 1);
    assert.match(
      update.stderr,
      /cannot update the federation relationship with trust domain "cluster-b\.test": it is defined in the server's config file .*\(FailedPrecondition\)/,
    );
    const del = await cli('server', 'federation', 'delete', '-id', 'cluster-b.test');
    assert.equal(del.code, 1);
    assert.match(del.stderr, /cannot delete .*"cluster-b\.test".*config file.*\(FailedPrecondition\)/);
    assert.ok(await f.datastore.bundles.get('cluster-b.test'), 'the bundle is still there');
  });
});
