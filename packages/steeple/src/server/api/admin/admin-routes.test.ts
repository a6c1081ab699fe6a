import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Code, ConnectError } from '@connectrpc/connect';
import { TrustDomain } from '@steeple/spiffe';
import { createMetrics } from '../../../common/metrics.js';
import { ServingStatus } from '../../../gen/steeple/server/v1/health_pb.js';
import { DatastoreError } from '../../datastore/index.js';
import { grpcCodeFor } from './grpc-status.js';
import { createFakeAdminCa, startAdminFixture } from './testing/admin-fixture.js';

describe('admin routes', () => {
  it('reports health: serving when the datastore and CA are, not serving with the reason otherwise', async () => {
    let agentApiUp = true;
    const f = await startAdminFixture({
      healthChecks: () => [{ name: 'agent_api', healthy: agentApiUp, message: agentApiUp ? '' : 'not listening' }],
    });
    try {
      const ok = await f.client.health.check({});
      assert.equal(ok.status, ServingStatus.SERVING);
      assert.deepEqual(
        ok.components.map((c) => [c.name, c.healthy]),
        [
          ['datastore', true],
          ['ca', true],
          ['agent_api', true],
        ],
      );
      agentApiUp = false;
      const down = await f.client.health.check({});
      assert.equal(down.status, ServingStatus.NOT_SERVING);
      assert.equal(down.components.find((c) => c.name === 'agent_api')?.message, 'not listening');
    } finally {
      await f.close();
    }
  });

  it('answers an unexpected failure with Internal and an incident id, never the stack; the log has the details', async () => {
    const ca = createFakeAdminCa(TrustDomain.parse('example.org'));
    const f = await startAdminFixture({
      ca: {
        ...ca,
        mintJwtSvid: async () => {
          throw new Error('signing key unavailable at /secret/path');
        },
      },
    });
    try {
      await assert.rejects(
        f.client.svids.mintJwtSvid({ spiffeId: 'spiffe://example.org/x', audience: ['a'] }),
        (err: unknown) => {
          assert.ok(err instanceof ConnectError);
          assert.equal(err.code, Code.Internal);
          assert.match(err.rawMessage, /^internal error \(incident [0-9a-f]{8}; see the server log\)$/);
          assert.ok(!err.rawMessage.includes('/secret/path'));
          return true;
        },
      );
      const line = f.logs.find((l) => l['msg'] === 'admin API call failed unexpectedly');
      assert.equal(line?.['level'], 'error');
      assert.equal(line?.['rpc'], 'SvidService.MintJwtSvid');
    } finally {
      await f.close();
    }
  });

  it('maps typed datastore errors to their status (ERR_DATASTORE_UNAVAILABLE → Unavailable)', async () => {
    const f = await startAdminFixture(
      {},
      {
        wrapDatastore: (ds) => {
          const failing = Object.create(ds.entries) as typeof ds.entries;
          failing.count = async () => {
            throw new DatastoreError('ERR_DATASTORE_UNAVAILABLE', 'database "test" is unreachable');
          };
          return { ...ds, entries: failing };
        },
      },
    );
    try {
      await assert.rejects(f.client.entries.countEntries({}), (err: unknown) => {
        assert.ok(err instanceof ConnectError);
        assert.equal(err.code, Code.Unavailable);
        assert.equal(err.rawMessage, 'database "test" is unreachable');
        return true;
      });
    } finally {
      await f.close();
    }
  });

  it('counts calls by method and status code when given metrics', async () => {
    const metrics = createMetrics();
    const f = await startAdminFixture({ metrics });
    try {
      await f.client.entries.countEntries({});
      await assert.rejects(f.client.entries.getEntry({ id: 'missing' }));
      const text = await metrics.render();
      assert.match(text, /steeple_admin_api_calls_total\{method="EntryService.CountEntries",code="OK"\} 1/);
      assert.match(text, /steeple_admin_api_calls_total\{method="EntryService.GetEntry",code="NotFound"\} 1/);
      assert.match(text, /steeple_admin_api_call_duration_seconds_count\{method="EntryService.CountEntries"\} 1/);
    } finally {
      await f.close();
    }
  });

  it('maps every typed error code to a status other than OK', () => {
    for (const [code, status] of Object.entries(grpcCodeFor)) {
      assert.ok(Number.isInteger(status) && status > 0, `${code} maps to ${status}`);
    }
    assert.equal(grpcCodeFor.ERR_ENTRY_DUPLICATE, Code.AlreadyExists);
    assert.equal(grpcCodeFor.ERR_ENTRY_NOT_FOUND, Code.NotFound);
    assert.equal(grpcCodeFor.ERR_SPIFFEID_INVALID, Code.InvalidArgument);
  });
});
