import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import { JwtBundle, JwtSvid, SpiffeId, TrustDomain } from '@steeple/spiffe';
import { ManualClock } from '@steeple/spiffe/testing';
import { CaError, SvidRequestError } from './ca-errors.js';
import { JwtSigner, newKeyId } from './jwt-signer.js';

const td = TrustDomain.parse('example.org');
const START = new Date('2030-01-01T00:00:00Z');
const web = SpiffeId.parse('spiffe://example.org/web');

function signer(clock: ManualClock, privateKey: KeyObject, opts: { notAfter?: Date; issuer?: string } = {}) {
  return new JwtSigner({
    trustDomain: td,
    kid: newKeyId(),
    privateKey,
    notAfter: opts.notAfter ?? new Date(START.getTime() + 24 * 3600_000),
    clock,
    ...(opts.issuer ? { issuer: opts.issuer } : {}),
  });
}

const decode = (part: string) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;

describe('JwtSigner', () => {
  for (const [alg, key] of [
    ['ES256', generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey],
    ['ES384', generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey],
    ['RS256', generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey],
  ] as const) {
    it(`mints ${alg} tokens that the SDK validates against the JWT bundle (J-1…J-11)`, async () => {
      const clock = new ManualClock(START);
      const s = signer(clock, key);
      const minted = s.mintJwtSvid({ spiffeId: web, audience: ['db', 'cache'], ttlSeconds: 300 });
      const bundle = JwtBundle.fromAuthorities(td, new Map([[s.kid, s.publicKey]]));
      const svid = await JwtSvid.parseAndValidate(minted.token, bundle, ['db'], { now: clock.now() });
      assert.equal(svid.id.toString(), web.toString());
      assert.deepEqual(svid.audience, ['db', 'cache']);
      assert.deepEqual(svid.expiry, new Date(START.getTime() + 300_000));
      assert.deepEqual(minted.expiresAt, svid.expiry);
      assert.deepEqual(minted.issuedAt, START);
      const [header] = minted.token.split('.');
      assert.deepEqual(decode(header as string), { alg, kid: s.kid, typ: 'JWT' }, 'exactly alg, kid, typ (J-5)');
    });
  }

  it('writes sub, aud (an array even for one audience), exp and iat, and nothing else without an issuer', () => {
    const s = signer(new ManualClock(START), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    const { token } = s.mintJwtSvid({ spiffeId: web, audience: ['db'], ttlSeconds: 60 });
    const claims = decode(token.split('.')[1] as string);
    assert.deepEqual(claims, {
      aud: ['db'],
      exp: START.getTime() / 1000 + 60,
      iat: START.getTime() / 1000,
      sub: web.toString(),
    });
  });

  it('adds iss when jwt_issuer is configured', () => {
    const s = signer(new ManualClock(START), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, {
      issuer: 'https://oidc.example.org',
    });
    const { token } = s.mintJwtSvid({ spiffeId: web, audience: ['db'], ttlSeconds: 60 });
    assert.equal(decode(token.split('.')[1] as string)['iss'], 'https://oidc.example.org');
  });

  it('signs ES256 as raw R||S, 64 bytes (J-11)', () => {
    const s = signer(new ManualClock(START), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    const { token } = s.mintJwtSvid({ spiffeId: web, audience: ['db'], ttlSeconds: 60 });
    assert.equal(Buffer.from(token.split('.')[2] as string, 'base64url').length, 64);
  });

  it("caps exp at the key's notAfter", () => {
    const clock = new ManualClock(START);
    const notAfter = new Date(START.getTime() + 120_000);
    const s = signer(clock, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, { notAfter });
    assert.deepEqual(s.mintJwtSvid({ spiffeId: web, audience: ['db'], ttlSeconds: 3600 }).expiresAt, notAfter);
    clock.advance(120_000);
    assert.throws(
      () => s.mintJwtSvid({ spiffeId: web, audience: ['db'], ttlSeconds: 60 }),
      (e: unknown) => e instanceof CaError && e.code === 'ERR_CA_NOT_READY',
    );
  });

  it('refuses IDs outside the trust domain, root IDs, empty audiences and bad TTLs', () => {
    const s = signer(new ManualClock(START), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    const bad: [Parameters<JwtSigner['mintJwtSvid']>[0], RegExp][] = [
      [
        { spiffeId: SpiffeId.parse('spiffe://evil.org/web'), audience: ['a'], ttlSeconds: 60 },
        /outside the trust domain/,
      ],
      [{ spiffeId: SpiffeId.parse('spiffe://example.org'), audience: ['a'], ttlSeconds: 60 }, /has no path/],
      [{ spiffeId: web, audience: [], ttlSeconds: 60 }, /at least one/],
      [{ spiffeId: web, audience: [''], ttlSeconds: 60 }, /audience value is empty/],
      [{ spiffeId: web, audience: ['a'], ttlSeconds: 0 }, /positive number/],
    ];
    for (const [request, message] of bad) {
      assert.throws(
        () => s.mintJwtSvid(request),
        (e: unknown) => e instanceof SvidRequestError && message.test(e.message),
      );
    }
  });

  it('makes 32-character alphanumeric key IDs', () => {
    const ids = new Set(Array.from({ length: 100 }, newKeyId));
    assert.equal(ids.size, 100);
    for (const id of ids) assert.match(id, /^[A-Za-z0-9]{32}$/);
  });
});
