import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SpiffeBundle, TrustDomain, X509Bundle } from '@steeple/spiffe';
import { ManualClock } from '@steeple/spiffe/testing';
import { createSilentLogger } from '../../common/logger.js';
import type { NodeAttestorClient } from '../node-attestation/index.js';
import { AgentApiConnection } from '../server-api/agent-api-connection.js';
import { type FakeAgentApi, startFakeAgentApi } from '../testing/fake-agent-api.js';
import { AgentIdentity } from './agent-identity.js';
import { IdentityStore } from './identity-store.js';

/** A re-attestable method with a challenge, as the fake's `test_reattest` expects. */
const reattestable: NodeAttestorClient = {
  name: 'test_reattest',
  payload: async () => Buffer.from('node-1'),
  answer: async (challenge) => Uint8Array.from(challenge).reverse(),
};

describe('agent identity', () => {
  let dir: string;
  let fake: FakeAgentApi;
  const clock = new ManualClock(new Date());
  const td = TrustDomain.parse('example.org');

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'steeple-identity-'));
    fake = await startFakeAgentApi({ clock });
  });
  after(async () => {
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const make = (attestor: NodeAttestorClient, dataDir: string) => {
    const identity = new AgentIdentity({
      trustDomain: td,
      store: new IdentityStore(dataDir, td),
      attestor,
      bootstrapBundle: SpiffeBundle.fromBundles({ x509: X509Bundle.parse(td, fake.bundlePem) }),
      clock,
      logger: createSilentLogger(),
    });
    const connection = new AgentApiConnection({
      address: '127.0.0.1',
      port: fake.port,
      material: () => identity.material(),
      clock,
    });
    return { identity, connection };
  };

  it('attests with a challenge round, renews at half life, and re-attests an expired SVID when the method allows', async () => {
    const { identity, connection } = make(reattestable, join(dir, 'a'));
    try {
      await identity.load();
      await identity.ensure(connection.client());
      assert.equal(identity.spiffeId, 'spiffe://example.org/spire/agent/test/node-1');
      const saved = JSON.parse(readFileSync(join(dir, 'a', 'agent.json'), 'utf8'));
      assert.equal(saved.can_reattest, true);
      assert.ok(!JSON.stringify(saved).includes('join_token_sha256'));

      const first = identity.svid?.leaf.serialNumber;
      assert.ok(identity.renewAt()! > clock.now());
      await identity.renew(connection.client());
      assert.notEqual(identity.svid?.leaf.serialNumber, first);

      clock.advance(2 * 3600_000);
      assert.equal(identity.isUsable(), false);
      const attests = fake.calls.get('AttestAgent');
      await identity.ensure(connection.client());
      assert.equal(fake.calls.get('AttestAgent'), (attests ?? 0) + 1);
      assert.equal(identity.isUsable(), true);
    } finally {
      connection.close();
    }
  });

  it('a join-token agent whose SVID expired does not try again with the used token, and says why', async () => {
    fake.addJoinToken('tok-x');
    const attestor: NodeAttestorClient = {
      name: 'join_token',
      payload: async () => Buffer.from('tok-x'),
      answer: async () => {
        throw new Error('no challenge');
      },
    };
    const { identity, connection } = make(attestor, join(dir, 'b'));
    try {
      await identity.ensure(connection.client());
      clock.advance(2 * 3600_000);
      const attests = fake.calls.get('AttestAgent');
      await assert.rejects(
        identity.ensure(connection.client()),
        (err: Error & { code?: string }) => err.code === 'ERR_AGENT_NOT_ATTESTED',
      );
      assert.equal(fake.calls.get('AttestAgent'), attests, 'no attempt with the used token');
      assert.match(identity.problem ?? '', /cannot be repeated .* generate a new join token/);

      // After a restart the saved identity is found, and still refused for the same reason.
      const again = make(attestor, join(dir, 'b'));
      await again.identity.load();
      assert.equal(again.identity.spiffeId, 'spiffe://example.org/spire/agent/join_token/tok-x');
      await assert.rejects(again.identity.ensure(again.connection.client()), /single-use/);
      again.connection.close();
    } finally {
      connection.close();
    }
  });
});
