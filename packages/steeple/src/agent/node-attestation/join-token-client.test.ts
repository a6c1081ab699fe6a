import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../common/errors.js';
import { createJoinTokenClient } from './join-token-client.js';
import { NodeAttestationClientError } from './node-attestor-client.js';

describe('join_token client', () => {
  it('sends the token as UTF-8, every time it is asked', async () => {
    const client = createJoinTokenClient('4b0c7e2a-1f3d-4c5b-8a9e-6d7f8e9a0b1c');
    assert.equal(client.name, 'join_token');
    assert.equal(Buffer.from(await client.payload()).toString('utf8'), '4b0c7e2a-1f3d-4c5b-8a9e-6d7f8e9a0b1c');
    assert.deepEqual(await client.payload(), await client.payload());
  });

  it('refuses a challenge: join_token has none', async () => {
    const client = createJoinTokenClient('token');
    await assert.rejects(client.answer(new Uint8Array(32)), (err: unknown) => {
      assert.ok(err instanceof NodeAttestationClientError);
      assert.equal(err.code, 'ERR_ATTESTATION_FAILED');
      assert.match(err.reason, /join_token has none/);
      return true;
    });
  });

  it('refuses a token that cannot be valid, naming the key but never the token', () => {
    const cases: [string, RegExp][] = [
      ['', /must not be empty/],
      ['s3cret-token\n', /stray newline/],
      ['s3cret token', /must not contain spaces/],
      ['s3cret/token', /may hold only letters/],
      ['..', /may hold only letters/],
      [`s3cret${'x'.repeat(300)}`, /at most 256 characters/],
    ];
    for (const [token, message] of cases) {
      assert.throws(
        () => createJoinTokenClient(token, { configKey: 'agent.join_token' }),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          assert.equal(err.issues[0]?.path, 'agent.join_token');
          assert.match(err.message, message);
          assert.ok(!err.message.includes('s3cret'), 'the token must not be echoed');
          return true;
        },
      );
    }
  });
});
