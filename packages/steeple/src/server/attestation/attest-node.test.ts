import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SpiffeId, TrustDomain } from '@steeple/spiffe';
import { attestNode } from './attest-node.js';
import type { NodeAttestor } from './node-attestor.js';

const ctx = { trustDomain: TrustDomain.parse('example.org'), now: new Date('2030-01-01T00:00:00Z') };
const agentId = SpiffeId.parse('spiffe://example.org/spire/agent/x509pop/abc');
const fake: NodeAttestor = {
  name: 'x509pop',
  attest: async () => ({ agentId, selectors: [], canReattest: true }),
};
const catalog = new Map([[fake.name, fake]]);
const noChallenge = async () => new Uint8Array();

describe('attestNode', () => {
  it('runs the attestor named by AttestationData.type', async () => {
    const result = await attestNode(catalog, { type: 'x509pop', payload: new Uint8Array() }, noChallenge, ctx);
    assert.equal(result.agentId, agentId);
  });

  it('refuses a type that is not enabled as invalid data, listing the enabled ones', async () => {
    await assert.rejects(attestNode(catalog, { type: 'k8s_psat', payload: new Uint8Array() }, noChallenge, ctx), {
      code: 'ERR_ATTESTATION_DATA_INVALID',
      reason: 'node attestor "k8s_psat" is not enabled on this server (enabled: x509pop)',
    });
    await assert.rejects(
      attestNode(catalog, { type: 'x'.repeat(10_000), payload: new Uint8Array() }, noChallenge, ctx),
      (err: Error) => err.message.length < 300,
    );
  });

  it('refuses a banned agent, and admits it again once evicted (no record)', async () => {
    let record: { banned: boolean } | undefined = { banned: true };
    const agents = { get: async (id: string) => (id === agentId.toString() ? record : undefined) };
    await assert.rejects(
      attestNode(catalog, { type: 'x509pop', payload: new Uint8Array() }, noChallenge, ctx, { agents }),
      {
        code: 'ERR_ATTESTATION_FAILED',
        reason: /banned/,
      },
    );
    record = { banned: false };
    await attestNode(catalog, { type: 'x509pop', payload: new Uint8Array() }, noChallenge, ctx, { agents });
    record = undefined;
    await attestNode(catalog, { type: 'x509pop', payload: new Uint8Array() }, noChallenge, ctx, { agents });
  });
});
