import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Clock } from '../clock.js';
import { createTestJwtAuthority } from './jwt-authority.js';

const NOW = new Date('2030-01-01T00:00:00Z');
const clock: Clock = { now: () => NOW, setTimer: () => ({ cancel() {} }) };

function decode(part: string | undefined): Record<string, unknown> {
  return JSON.parse(Buffer.from(part ?? '', 'base64url').toString('utf8'));
}

describe('createTestJwtAuthority', () => {
  it('J-5/J-13: mints a header of exactly alg, kid, typ and claims sub, aud (array), exp, iat', () => {
    const auth = createTestJwtAuthority({ trustDomain: 'example.org', clock, kid: 'k1' });
    const [h, p, s] = auth.mint('spiffe://example.org/web', 'db').split('.');
    assert.deepEqual(decode(h), { alg: 'ES256', kid: 'k1', typ: 'JWT' });
    const t = NOW.getTime() / 1000;
    assert.deepEqual(decode(p), { sub: 'spiffe://example.org/web', aud: ['db'], exp: t + 300, iat: t });
    assert.equal(Buffer.from(s ?? '', 'base64url').length, 64, 'raw R||S (J-11)');
    assert.deepEqual([...auth.jwtBundle().authorities.keys()], ['k1']);
    assert.equal(auth.publicJwk.kid, 'k1');
  });

  it('builds deliberately broken tokens on request', () => {
    const auth = createTestJwtAuthority({ trustDomain: 'example.org', clock });
    const none = auth.mint('spiffe://example.org/web', 'db', { header: { alg: 'none' } });
    assert.ok(none.endsWith('.'), 'alg none has an empty signature');
    const hs = auth.mint('spiffe://example.org/web', 'db', { header: { alg: 'HS256' } }).split('.');
    assert.equal(Buffer.from(hs[2] ?? '', 'base64url').length, 32);
    const raw = auth.mint('x', 'y', { raw: true, header: { alg: 'ES256' }, claims: { only: true } }).split('.');
    assert.deepEqual(decode(raw[0]), { alg: 'ES256' });
    assert.deepEqual(decode(raw[1]), { only: true });
    const removed = auth.mint('spiffe://example.org/web', 'db', { claims: { exp: undefined } }).split('.');
    assert.equal('exp' in decode(removed[1]), false);
  });
});
