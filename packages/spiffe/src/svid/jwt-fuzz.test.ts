// Property tests: whatever token arrives, JwtSvid either accepts it or throws a
// SpiffeError — never another exception, never a hang — and never accepts a token that a
// key outside the subject's trust domain signed.
import assert from 'node:assert/strict';
import { sign } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { BundleSet } from '../bundle/bundle-set.js';
import type { Clock } from '../clock.js';
import { JwtSvidError, SpiffeError } from '../errors.js';
import { createTestJwtAuthority } from '../testing/jwt-authority.js';
import { JwtSvid } from './jwt-svid.js';

const NOW = new Date('2030-01-01T00:00:00Z');
const T = NOW.getTime() / 1000;
const clock: Clock = { now: () => NOW, setTimer: () => ({ cancel() {} }) };
const authA = createTestJwtAuthority({ trustDomain: 'a.org', clock, kid: 'ka' });
const authB = createTestJwtAuthority({ trustDomain: 'b.org', clock, kid: 'kb' });
const bundles = BundleSet.of(authA.jwtBundle(), authB.jwtBundle());
const at = { now: NOW };
const b64 = (s: string) => Buffer.from(s).toString('base64url');

/** Parses both ways; fails on any throw that is not a SpiffeError. Returns whether validation accepted. */
async function parseAll(token: string): Promise<boolean> {
  try {
    JwtSvid.parseInsecure(token, ['db'], at);
  } catch (e) {
    if (!(e instanceof SpiffeError)) throw e;
  }
  try {
    await JwtSvid.parseAndValidate(token, bundles, ['db'], at);
    return true;
  } catch (e) {
    if (!(e instanceof SpiffeError)) throw e;
    return false;
  }
}

/** Signs an arbitrary header and payload with authority A's key, so checks past the signature run too. */
function signA(header: unknown, payload: unknown): string {
  const input = `${b64(JSON.stringify(header))}.${b64(JSON.stringify(payload))}`;
  return `${input}.${sign('sha256', Buffer.from(input), { key: authA.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

/** Mostly a good value, sometimes a tricky one, sometimes anything at all, sometimes absent. */
function mostly<T>(good: fc.Arbitrary<T>, tricky: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  return fc.oneof(
    { arbitrary: good, weight: 6 },
    { arbitrary: tricky, weight: 2 },
    { arbitrary: fc.jsonValue({ maxDepth: 2 }), weight: 1 },
    { arbitrary: fc.constant(undefined), weight: 1 },
  );
}

const header = fc.record({
  alg: mostly(fc.constant('ES256'), fc.constantFrom('RS256', 'none', 'HS256', 'EdDSA', 'ES384', 'es256')),
  kid: mostly(fc.constant('ka'), fc.constantFrom('kb', '', 'KA')),
  typ: mostly(fc.constantFrom('JWT', 'JOSE', undefined), fc.constantFrom('jwt', 'JWS', 'at+jwt')),
  crit: fc.oneof(
    { arbitrary: fc.constant(undefined), weight: 8 },
    { arbitrary: fc.jsonValue({ maxDepth: 2 }), weight: 1 },
  ),
});
const time = fc.integer({ min: T - 1000, max: T + 1000 });
const claims = fc.record({
  sub: mostly(
    fc.constantFrom('spiffe://a.org/web', 'spiffe://a.org'),
    fc.constantFrom('spiffe://b.org/x', 'spiffe://A.org/x', 'spiffe://a.org/', 'https://a.org/x'),
  ),
  aud: mostly(fc.constantFrom('db', ['db'], ['x', 'db']), fc.constantFrom([], ['x'], 'DB', [1])),
  exp: mostly(fc.integer({ min: T + 1, max: T + 1000 }), fc.oneof(time, fc.double(), fc.string())),
  nbf: fc.oneof(fc.constant(undefined), time, fc.jsonValue({ maxDepth: 1 })),
  iat: fc.oneof(fc.constant(undefined), time, fc.jsonValue({ maxDepth: 1 })),
});

describe('JwtSvid under random input (fuzz)', () => {
  it('random strings yield only SpiffeErrors', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: 'binary', maxLength: 200 }), async (t) => {
        await parseAll(t);
      }),
      { numRuns: 1500 },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fc.base64String(), { minLength: 1, maxLength: 6 }), async (parts) => {
        await parseAll(parts.join('.'));
      }),
      { numRuns: 1000 },
    );
  });

  it('tokens with random JSON header and payload yield only SpiffeErrors', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 4 }), fc.jsonValue({ maxDepth: 4 }), async (h, p) => {
        await parseAll(signA(h, p));
      }),
      { numRuns: 1000 },
    );
  });

  it('signed tokens with random header members and claims: accepted only when every rule holds', async () => {
    let acceptedCount = 0;
    await fc.assert(
      fc.asyncProperty(header, claims, async (h, c) => {
        const accepted = await parseAll(signA(h, c));
        if (accepted) {
          acceptedCount++;
          assert.equal(h.alg, 'ES256');
          assert.equal(h.kid, 'ka');
          assert.ok(h.typ === undefined || h.typ === 'JWT' || h.typ === 'JOSE');
          assert.equal(h.crit, undefined);
          assert.ok(
            c.sub === 'spiffe://a.org/web' || c.sub === 'spiffe://a.org',
            "only a.org subjects: the key is a.org's",
          );
          assert.ok(c.aud === 'db' || (Array.isArray(c.aud) && c.aud.includes('db')));
        }
      }),
      { numRuns: 1500 },
    );
    assert.ok(acceptedCount > 0, 'the generator must also produce valid tokens, or later checks go untested');
  });

  it('random edits of a valid token are never accepted unless unchanged', async () => {
    const token = authA.mint('spiffe://a.org/web', 'db');
    await fc.assert(
      fc.asyncProperty(fc.nat(token.length - 1), fc.string({ minLength: 1, maxLength: 3 }), async (i, text) => {
        const edited = token.slice(0, i) + text + token.slice(i + text.length);
        const accepted = await parseAll(edited);
        // base64url has spare bits in the last character of a part, so a few edits decode to the same bytes.
        if (accepted) assert.deepEqual(decodeParts(edited), decodeParts(token));
      }),
      { numRuns: 1500 },
    );
  });

  it('huge and deeply nested tokens are refused quickly with a JwtSvidError', async () => {
    const deep = b64('['.repeat(100_000));
    const cases = [
      `${'a'.repeat(5 * 1024 * 1024)}.b.c`,
      `${deep}.${deep}.sig`,
      `${b64('{"alg":"ES256"}')}.${deep}.sig`,
      `${b64('{"alg":"ES256"}')}.${b64(`{"sub":${'9'.repeat(30_000)}}`)}.sig`,
      '{"payload":"x"}',
      '',
      '..',
    ];
    for (const token of cases) {
      await assert.rejects(JwtSvid.parseAndValidate(token, bundles, ['db'], at), JwtSvidError);
      assert.throws(() => JwtSvid.parseInsecure(token, ['db'], at), JwtSvidError);
    }
  });
});

function decodeParts(token: string): string[] {
  return token.split('.').map((p) => Buffer.from(p, 'base64url').toString('hex'));
}
