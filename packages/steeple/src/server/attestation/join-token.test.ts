import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TrustDomain } from '@steeple/spiffe';
import { type Datastore, DatastoreError, openDatastore } from '../datastore/index.js';
import { createJoinTokenAttestor, type JoinTokenConsumer } from './join-token.js';
import { AttestationError } from './node-attestor.js';

const td = TrustDomain.parse('example.org');
const NOW = new Date('2030-01-01T00:00:00Z');
const nowSeconds = NOW.getTime() / 1000;
const ctx = { trustDomain: td, now: NOW };
const bytes = (s: string) => new TextEncoder().encode(s);
const noChallenge = async (): Promise<Uint8Array> => {
  throw new Error('join_token must not send a challenge');
};

/** Asserts an AttestationError with `code` whose message, reason and stack never mention `secret`. */
async function refused(promise: Promise<unknown>, code: string, reason: string | RegExp, secret?: string) {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof AttestationError, `expected AttestationError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.equal(err.attestor, 'join_token');
    if (typeof reason === 'string') assert.equal(err.reason, reason);
    else assert.match(err.reason, reason);
    if (secret !== undefined) {
      for (const text of [err.message, err.reason, err.stack ?? '', JSON.stringify(err)]) {
        assert.ok(!text.includes(secret), `the token leaked into ${JSON.stringify(text)}`);
      }
    }
    return true;
  });
}

describe('join_token node attestor', () => {
  let ds: Datastore;
  before(async () => {
    ds = await openDatastore({ type: 'sqlite', path: ':memory:' }, { clock: { now: () => NOW } });
  });
  after(async () => {
    await ds.close();
  });

  it('admits an agent once as spiffe://<td>/spire/agent/join_token/<token>, without selectors and without re-attestation', async () => {
    const token = 'f3c1a3b2-6d8e-4f1a-9b7c-2e5d4a3b1c0d';
    await ds.joinTokens.create({ token, expiresAt: nowSeconds + 600 });
    const attestor = createJoinTokenAttestor({ joinTokens: ds.joinTokens });
    assert.equal(attestor.name, 'join_token');

    const result = await attestor.attest(bytes(token), noChallenge, ctx);
    assert.equal(result.agentId.toString(), `spiffe://example.org/spire/agent/join_token/${token}`);
    assert.deepEqual(result.selectors, []);
    assert.equal(result.canReattest, false);
    assert.equal(result.consumedJoinToken, true);
    assert.equal(result.joinTokenSpiffeId, undefined);
  });

  it('refuses the second use of a token, without naming the token', async () => {
    const token = 'single-use-token-0001';
    await ds.joinTokens.create({ token, expiresAt: nowSeconds + 600 });
    const attestor = createJoinTokenAttestor({ joinTokens: ds.joinTokens });
    await attestor.attest(bytes(token), noChallenge, ctx);
    await refused(
      attestor.attest(bytes(token), noChallenge, ctx),
      'ERR_ATTESTATION_FAILED',
      'join token not found or already used',
      token,
    );
  });

  it('lets exactly one of two concurrent attestations with the same token through', async () => {
    const token = 'raced-token-0002';
    await ds.joinTokens.create({ token, expiresAt: nowSeconds + 600 });
    const attestor = createJoinTokenAttestor({ joinTokens: ds.joinTokens });
    const results = await Promise.allSettled([
      attestor.attest(bytes(token), noChallenge, ctx),
      attestor.attest(bytes(token), noChallenge, ctx),
    ]);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  });

  it('refuses an expired token as "join token expired" and uses it up', async () => {
    const token = 'expired-token-0003';
    await ds.joinTokens.create({ token, expiresAt: nowSeconds - 1 });
    const attestor = createJoinTokenAttestor({ joinTokens: ds.joinTokens });
    await refused(
      attestor.attest(bytes(token), noChallenge, ctx),
      'ERR_ATTESTATION_FAILED',
      'join token expired',
      token,
    );
    await refused(
      attestor.attest(bytes(token), noChallenge, ctx),
      'ERR_ATTESTATION_FAILED',
      'join token not found or already used',
      token,
    );
  });

  it('judges expiry by the attestation context clock: valid until its expiry second, refused at it', async () => {
    const attestor = createJoinTokenAttestor({ joinTokens: ds.joinTokens });
    await ds.joinTokens.create({ token: 'edge-a', expiresAt: nowSeconds + 1 });
    await ds.joinTokens.create({ token: 'edge-b', expiresAt: nowSeconds });
    await attestor.attest(bytes('edge-a'), noChallenge, ctx);
    await refused(attestor.attest(bytes('edge-b'), noChallenge, ctx), 'ERR_ATTESTATION_FAILED', 'join token expired');
  });

  it('refuses an unknown token', async () => {
    const attestor = createJoinTokenAttestor({ joinTokens: ds.joinTokens });
    await refused(
      attestor.attest(bytes('never-generated'), noChallenge, ctx),
      'ERR_ATTESTATION_FAILED',
      'join token not found or already used',
      'never-generated',
    );
  });

  it('hands back the SPIFFE ID the token was generated for (token generate -spiffeID)', async () => {
    await ds.joinTokens.create({
      token: 'with-alias',
      spiffeId: 'spiffe://example.org/node/a',
      expiresAt: nowSeconds + 60,
    });
    const attestor = createJoinTokenAttestor({ joinTokens: ds.joinTokens });
    const result = await attestor.attest(bytes('with-alias'), noChallenge, ctx);
    assert.equal(result.joinTokenSpiffeId?.toString(), 'spiffe://example.org/node/a');
  });

  it('refuses malformed tokens as invalid data without touching the store and without echoing them', async () => {
    let consumed = 0;
    const store: JoinTokenConsumer = {
      async consume() {
        consumed++;
        return undefined;
      },
    };
    const attestor = createJoinTokenAttestor({ joinTokens: store });
    const cases: [Uint8Array, RegExp, string | undefined][] = [
      [new Uint8Array(0), /empty/, undefined],
      [bytes('x'.repeat(257)), /longer than 256 bytes/, 'x'.repeat(257)],
      [new Uint8Array([0x61, 0xff, 0xfe]), /not valid UTF-8/, undefined],
      [bytes('secret token\n'), /only letters, digits/, 'secret token'],
      [bytes('../../admin'), /only letters, digits/, 'admin'],
      [bytes('..'), /only letters, digits/, undefined],
      [bytes('tök€n'), /only letters, digits/, 'tök€n'],
    ];
    for (const [payload, reason, secret] of cases) {
      await refused(attestor.attest(payload, noChallenge, ctx), 'ERR_ATTESTATION_DATA_INVALID', reason, secret);
    }
    assert.equal(consumed, 0);
  });

  it('lets a datastore outage through as itself, not as a refusal', async () => {
    const store: JoinTokenConsumer = {
      async consume() {
        throw new DatastoreError('ERR_DATASTORE_UNAVAILABLE', 'database is down');
      },
    };
    const attestor = createJoinTokenAttestor({ joinTokens: store });
    await assert.rejects(attestor.attest(bytes('tok'), noChallenge, ctx), { code: 'ERR_DATASTORE_UNAVAILABLE' });
  });
});
