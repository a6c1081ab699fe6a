import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Code, ConnectError } from '@connectrpc/connect';
import { MatchBehavior } from '../../../gen/steeple/server/v1/entry_pb.js';
import { type AdminFixture, startAdminFixture } from './testing/admin-fixture.js';

const TD = 'spiffe://example.org';
const JOIN = `${TD}/spire/agent/join_token/11111111-2222-3333-4444-555555555555`;
const POP = `${TD}/spire/agent/x509pop/0a1b2c`;
const POP2 = `${TD}/spire/agent/x509pop/ffee00`;

async function rejects(promise: Promise<unknown>, code: Code, message: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ConnectError);
    assert.equal(err.code, code, err.rawMessage);
    assert.match(err.rawMessage, message);
    return true;
  });
}

describe('AgentService over the admin socket', () => {
  let f: AdminFixture;
  before(async () => {
    f = await startAdminFixture();
    const agents = f.datastore.agents;
    await agents.create({
      spiffeId: JOIN,
      attestationType: 'join_token',
      serialNumber: '01',
      expiresAt: 2_000_000_000,
    });
    await agents.create({
      spiffeId: POP,
      attestationType: 'x509pop',
      serialNumber: '02',
      expiresAt: 1_000_000_000,
      selectors: [
        { type: 'x509pop', value: 'subject:cn:node-a' },
        { type: 'x509pop', value: 'ca:fingerprint:aa' },
      ],
    });
    await agents.create({
      spiffeId: POP2,
      attestationType: 'x509pop',
      serialNumber: '03',
      expiresAt: 2_000_000_000,
      selectors: [{ type: 'x509pop', value: 'ca:fingerprint:aa' }],
    });
  });
  after(async () => {
    await f.close();
  });

  it('lists every agent with its attestation details', async () => {
    const { agents, nextPageToken } = await f.client.agents.listAgents({});
    assert.deepEqual(
      agents.map((a) => [a.spiffeId, a.attestationType, a.canReattest]),
      [
        [JOIN, 'join_token', false],
        [POP, 'x509pop', true],
        [POP2, 'x509pop', true],
      ],
    );
    assert.equal(nextPageToken, '');
    assert.equal(agents[1]?.x509SvidExpiresAt, 1_000_000_000n);
    assert.equal(agents[1]?.selectors.length, 2);
  });

  it('filters by attestation type, expiry, re-attestability and selectors, and counts alike', async () => {
    const byType = await f.client.agents.listAgents({ filter: { byAttestationType: 'x509pop' } });
    assert.deepEqual(
      byType.agents.map((a) => a.spiffeId),
      [POP, POP2],
    );
    const expiring = await f.client.agents.listAgents({ filter: { byExpiresBefore: 1_500_000_000n } });
    assert.deepEqual(
      expiring.agents.map((a) => a.spiffeId),
      [POP],
    );
    const once = await f.client.agents.listAgents({ filter: { byCanReattest: false } });
    assert.deepEqual(
      once.agents.map((a) => a.spiffeId),
      [JOIN],
    );
    const bySelector = await f.client.agents.listAgents({
      filter: {
        bySelectors: { selectors: [{ type: 'x509pop', value: 'ca:fingerprint:aa' }], match: MatchBehavior.SUPERSET },
      },
    });
    assert.deepEqual(
      bySelector.agents.map((a) => a.spiffeId),
      [POP, POP2],
    );
    const exact = await f.client.agents.countAgents({
      filter: {
        bySelectors: { selectors: [{ type: 'x509pop', value: 'ca:fingerprint:aa' }], match: MatchBehavior.EXACT },
      },
    });
    assert.equal(exact.count, 1n);
    assert.equal((await f.client.agents.countAgents({})).count, 3n);
    assert.equal((await f.client.agents.countAgents({ filter: { byCanReattest: true } })).count, 2n);
  });

  it('pages agents, also when filtering in memory', async () => {
    const first = await f.client.agents.listAgents({ pageSize: 2 });
    assert.equal(first.agents.length, 2);
    const second = await f.client.agents.listAgents({ pageSize: 2, pageToken: first.nextPageToken });
    assert.deepEqual(
      second.agents.map((a) => a.spiffeId),
      [POP2],
    );
    assert.equal(second.nextPageToken, '');
    const filtered = await f.client.agents.listAgents({ pageSize: 1, filter: { byCanReattest: true } });
    assert.deepEqual(
      filtered.agents.map((a) => a.spiffeId),
      [POP],
    );
    const rest = await f.client.agents.listAgents({
      pageSize: 1,
      pageToken: filtered.nextPageToken,
      filter: { byCanReattest: true },
    });
    assert.deepEqual(
      rest.agents.map((a) => a.spiffeId),
      [POP2],
    );
  });

  it('shows one agent; NotFound for an unknown one, InvalidArgument for a malformed ID', async () => {
    const { agent } = await f.client.agents.getAgent({ spiffeId: POP });
    assert.equal(agent?.x509SvidSerialNumber, '02');
    await rejects(
      f.client.agents.getAgent({ spiffeId: `${TD}/spire/agent/x509pop/none` }),
      Code.NotFound,
      /no attested agent/,
    );
    await rejects(f.client.agents.getAgent({ spiffeId: 'nope' }), Code.InvalidArgument, /^spiffeId: invalid SPIFFE ID/);
    await rejects(f.client.agents.getAgent({ spiffeId: '' }), Code.InvalidArgument, /^spiffeId: required/);
  });

  it('bans an agent (listed as banned), then evicts it (gone); both logged with the caller', async () => {
    await f.client.agents.banAgent({ spiffeId: POP2 });
    const banned = await f.client.agents.listAgents({ filter: { byBanned: true } });
    assert.deepEqual(
      banned.agents.map((a) => [a.spiffeId, a.banned]),
      [[POP2, true]],
    );
    await f.client.agents.deleteAgent({ spiffeId: POP2 });
    await rejects(f.client.agents.getAgent({ spiffeId: POP2 }), Code.NotFound, /no attested agent/);
    await rejects(f.client.agents.deleteAgent({ spiffeId: POP2 }), Code.NotFound, /no attested agent/);
    await rejects(f.client.agents.banAgent({ spiffeId: POP2 }), Code.NotFound, /no attested agent/);
    const messages = f.logs.filter((l) => l['caller'] !== undefined).map((l) => l['msg']);
    assert.ok(messages.includes('banned agent'));
    assert.ok(messages.includes('evicted agent'));
    assert.ok(messages.includes('admin change refused'), 'refused changes are logged too');
  });

  it('creates a single-use join token whose secret never reaches the log', async () => {
    const before = Math.floor(Date.now() / 1000);
    const res = await f.client.agents.createJoinToken({ ttlSeconds: 600 });
    assert.match(res.token, /^[0-9a-f-]{36}$/);
    assert.equal(res.agentSpiffeId, `${TD}/spire/agent/join_token/${res.token}`);
    assert.ok(res.expiresAt >= BigInt(before + 600) && res.expiresAt <= BigInt(before + 601));
    assert.ok(!JSON.stringify(f.logs).includes(res.token), 'the token is not logged');
    assert.ok(
      f.logs.some((l) => l['msg'] === 'created join token'),
      'that a token was made is logged',
    );
    const consumed = await f.datastore.joinTokens.consume(res.token, before);
    assert.equal(consumed?.token, res.token);
    assert.equal(await f.datastore.joinTokens.consume(res.token, before), undefined, 'single use');
  });

  it('with an alias, creates the alias entry parented to the agent the token will produce (as SPIRE)', async () => {
    const res = await f.client.agents.createJoinToken({ ttlSeconds: 60, agentAliasSpiffeId: `${TD}/node/rack-1` });
    const { entries } = await f.client.entries.listEntries({ filter: { byParentId: res.agentSpiffeId } });
    assert.equal(entries.length, 1);
    assert.equal(entries[0]?.spiffeId, `${TD}/node/rack-1`);
    assert.deepEqual(
      entries[0]?.selectors.map((s) => [s.type, s.value]),
      [['spiffe_id', res.agentSpiffeId]],
    );
    assert.ok(!JSON.stringify(f.logs).includes(res.token));
  });

  it('refuses a non-positive TTL or a foreign alias, and then creates no token', async () => {
    const tokensBefore = await f.datastore.joinTokens.count();
    await rejects(
      f.client.agents.createJoinToken({ ttlSeconds: 0 }),
      Code.InvalidArgument,
      /^ttlSeconds: must be more than 0/,
    );
    await rejects(
      f.client.agents.createJoinToken({ ttlSeconds: 60, agentAliasSpiffeId: 'spiffe://other.org/node' }),
      Code.InvalidArgument,
      /^agentAliasSpiffeId: .*not in the server's trust domain/,
    );
    assert.equal(await f.datastore.joinTokens.count(), tokensBefore);
  });
});
