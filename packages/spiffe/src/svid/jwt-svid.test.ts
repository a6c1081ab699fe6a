import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { describe, it } from 'node:test';
import { inspect } from 'node:util';
import { BundleSet } from '../bundle/bundle-set.js';
import { JwtBundle } from '../bundle/jwt-bundle.js';
import type { JwtBundleSource } from '../bundle/source.js';
import type { Clock } from '../clock.js';
import { JwtSvidError, type SpiffeErrorCode } from '../errors.js';
import { SpiffeId } from '../spiffeid/spiffe-id.js';
import { createTestJwtAuthority } from '../testing/jwt-authority.js';
import { JwtSvid } from './jwt-svid.js';

const NOW = new Date('2030-01-01T00:00:00Z');
const clock: Clock = { now: () => NOW, setTimer: () => ({ cancel() {} }) };
const rsaKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

const authA = createTestJwtAuthority({ trustDomain: 'a.org', clock, kid: 'ka' });
const authB = createTestJwtAuthority({ trustDomain: 'b.org', clock, kid: 'kb' });
const bundles = BundleSet.of(authA.jwtBundle(), authB.jwtBundle());
const WEB = SpiffeId.parse('spiffe://a.org/web');
const at = { now: NOW };

/** Validates and expects a JwtSvidError with `code` whose message matches and never contains the token. */
async function expectCode(
  token: string,
  code: SpiffeErrorCode,
  pattern: RegExp,
  source: JwtBundleSource = bundles,
  aud = ['db'],
) {
  await assert.rejects(JwtSvid.parseAndValidate(token, source, aud, at), (e: unknown) => {
    assert.ok(e instanceof JwtSvidError, `expected JwtSvidError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes(token), 'the message must not contain the token');
    for (const part of token.split('.')) if (part.length > 8) assert.ok(!e.message.includes(part), 'nor a token part');
    return true;
  });
}

function withSignature(token: string, signature: Buffer): string {
  return `${token.slice(0, token.lastIndexOf('.'))}.${signature.toString('base64url')}`;
}

describe('JwtSvid.parseAndValidate', () => {
  it('§3: accepts a conformant token and exposes id, audience, expiry and claims', async () => {
    const token = authA.mint(WEB, 'db', { claims: { custom: { x: 1 } } });
    const svid = await JwtSvid.parseAndValidate(token, bundles, ['other', 'db'], at);
    assert.ok(svid.id.equals(WEB));
    assert.deepEqual(svid.audience, ['db']);
    assert.equal(svid.expiry.getTime(), NOW.getTime() + 300_000);
    assert.equal(svid.issuedAt?.getTime(), NOW.getTime());
    assert.equal(svid.keyId, 'ka');
    assert.deepEqual(svid.claims['custom'], { x: 1 });
    assert.ok(Object.isFrozen(svid.claims) && Object.isFrozen(svid.claims['custom']));
    assert.equal(svid.marshal(), token);
    assert.equal(svid.token, token);
    assert.ok(JwtSvid.parseAndValidateSync(token, bundles, ['db'], at).id.equals(WEB), 'sync variant agrees');
  });

  for (const alg of ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] as const) {
    it(`J-2: verifies ${alg}`, async () => {
      const auth = createTestJwtAuthority({
        trustDomain: 'a.org',
        clock,
        alg,
        privateKey: alg.startsWith('ES') ? undefined : rsaKey,
      });
      const svid = await JwtSvid.parseAndValidate(auth.mint(WEB, 'db'), auth.jwtBundle(), ['db'], at);
      assert.equal(svid.header['alg'], alg);
    });
  }

  it('J-1: rejects the JWS JSON serialization, JWE (5 parts) and other part counts', async () => {
    const token = authA.mint(WEB, 'db');
    const [h, p, s] = token.split('.');
    await expectCode(
      JSON.stringify({ payload: p, signatures: [{ protected: h, signature: s }] }),
      'ERR_JWTSVID_INVALID',
      /JSON serialization is not allowed.*\(J-1\)/,
    );
    await expectCode(`${h}.a.b.c.d`, 'ERR_JWTSVID_INVALID', /5 parts: a JWE .* not allowed \(J-1\)/);
    await expectCode(`${h}.${p}`, 'ERR_JWTSVID_INVALID', /2 parts/);
    await expectCode(`${token}.x`, 'ERR_JWTSVID_INVALID', /4 parts/);
    await expectCode(`${h}.${p}.${s}+/`, 'ERR_JWTSVID_INVALID', /signature is not base64url/);
    await expectCode(`.${p}.${s}`, 'ERR_JWTSVID_INVALID', /header is empty/);
    await expectCode(
      `${h}.${Buffer.from('[1]').toString('base64url')}.${s}`,
      'ERR_JWTSVID_INVALID',
      /payload is not a JSON object/,
    );
    await expectCode(
      `${Buffer.from('{"alg":').toString('base64url')}.${p}.${s}`,
      'ERR_JWTSVID_INVALID',
      /header is not valid JSON/,
    );
  });

  it('J-2: rejects alg none (empty signature) before looking for a key', async () => {
    await expectCode(
      authA.mint(WEB, 'db', { header: { alg: 'none' } }),
      'ERR_JWTSVID_ALGORITHM',
      /"alg" "none" is not allowed/,
    );
    // Even with no bundle and no kid at all, the algorithm is what fails first.
    await expectCode(
      authA.mint(WEB, 'db', { header: { alg: 'none', kid: undefined } }),
      'ERR_JWTSVID_ALGORITHM',
      /J-2/,
      BundleSet.of(),
    );
  });

  it('J-2: rejects HS256 signed with the public key as the HMAC secret (key confusion)', async () => {
    await expectCode(
      authA.mint(WEB, 'db', { header: { alg: 'HS256' } }),
      'ERR_JWTSVID_ALGORITHM',
      /"HS256" is not allowed/,
    );
    const rsa = createTestJwtAuthority({ trustDomain: 'a.org', clock, alg: 'RS256', privateKey: rsaKey, kid: 'r' });
    await expectCode(
      rsa.mint(WEB, 'db', { header: { alg: 'HS256' } }),
      'ERR_JWTSVID_ALGORITHM',
      /HS256/,
      rsa.jwtBundle(),
    );
  });

  it('J-2: rejects EdDSA even when the bundle holds an Ed25519 key under that kid', async () => {
    const ed = generateKeyPairSync('ed25519');
    const bundle = JwtBundle.fromAuthorities('a.org', new Map([['ed', ed.publicKey]]));
    const token = authA.mint(WEB, 'db', { header: { alg: 'EdDSA', kid: 'ed' }, signWith: ed.privateKey });
    await expectCode(token, 'ERR_JWTSVID_ALGORITHM', /"EdDSA" is not allowed/, bundle);
    await expectCode(
      authA.mint(WEB, 'db', { header: { alg: undefined } }),
      'ERR_JWTSVID_ALGORITHM',
      /"alg" is missing/,
    );
    await expectCode(
      authA.mint(WEB, 'db', { header: { alg: 'es256' } }),
      'ERR_JWTSVID_ALGORITHM',
      /"es256" is not allowed/,
    );
  });

  it('J-2: the key chosen by kid must be of the type alg names; the token never picks the key type', async () => {
    await expectCode(
      authA.mint(WEB, 'db', { header: { alg: 'RS256' } }),
      'ERR_JWTSVID_ALGORITHM',
      /"alg" RS256 does not match key "ka" \(ec prime256v1\)/,
    );
    await expectCode(
      authA.mint(WEB, 'db', { header: { alg: 'ES384' } }),
      'ERR_JWTSVID_ALGORITHM',
      /ES384 does not match/,
    );
    await expectCode(
      authA.mint(WEB, 'db', { header: { alg: 'PS256' } }),
      'ERR_JWTSVID_ALGORITHM',
      /PS256 does not match/,
    );
    const rsa = createTestJwtAuthority({ trustDomain: 'a.org', clock, alg: 'RS256', privateKey: rsaKey, kid: 'r' });
    await expectCode(
      rsa.mint(WEB, 'db', { header: { alg: 'ES256' } }),
      'ERR_JWTSVID_ALGORITHM',
      /ES256 does not match key "r" \(rsa 2048\)/,
      rsa.jwtBundle(),
    );
  });

  it('J-2: refuses RSA keys shorter than 2048 bits', async () => {
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    const rsa = createTestJwtAuthority({ trustDomain: 'a.org', clock, alg: 'RS256', privateKey: weak, kid: 'w' });
    await expectCode(rsa.mint(WEB, 'db'), 'ERR_JWTSVID_ALGORITHM', /shorter than 2048 bits/, rsa.jwtBundle());
  });

  it('J-3: requires kid (as go-spiffe and SPIRE do)', async () => {
    await expectCode(
      authA.mint(WEB, 'db', { header: { kid: undefined } }),
      'ERR_JWTSVID_INVALID',
      /"kid" is missing.*\(J-3\)/,
    );
    await expectCode(authA.mint(WEB, 'db', { header: { kid: 7 } }), 'ERR_JWTSVID_INVALID', /"kid" must be a string/);
  });

  it("J-9: a kid from another trust domain's bundle is untrusted, even though the signature would verify with it", async () => {
    const token = authB.mint(WEB, 'db'); // sub in a.org, kid "kb" and signed by b.org's key
    await expectCode(token, 'ERR_JWTSVID_UNTRUSTED', /key ID "kb" is not an authority of trust domain "a.org" \(J-9\)/);
    const ownTd = await JwtSvid.parseAndValidate(authB.mint('spiffe://b.org/x', 'db'), bundles, ['db'], at);
    assert.equal(ownTd.id.trustDomain.name, 'b.org', 'the same key is fine for its own trust domain');
  });

  it("J-9: a bundle source that answers with another trust domain's bundle does not make its keys count", async () => {
    const sloppy: JwtBundleSource = { getJwtBundleForTrustDomain: () => authB.jwtBundle() };
    await expectCode(authB.mint(WEB, 'db'), 'ERR_JWTSVID_UNTRUSTED', /no JWT bundle for trust domain "a.org"/, sloppy);
  });

  it('never takes the key from the token: an embedded jwk, jku or x5u header is ignored', async () => {
    const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const token = authA.mint(WEB, 'db', {
      signWith: stranger.privateKey,
      header: {
        jwk: stranger.publicKey.export({ format: 'jwk' }),
        jku: 'https://evil.example/jwks',
        x5u: 'https://evil.example/c',
      },
    });
    await expectCode(token, 'ERR_JWTSVID_UNTRUSTED', /signature does not verify/);
  });

  it('J-9: no bundle for the subject trust domain, or an unknown kid, is untrusted', async () => {
    await expectCode(
      authA.mint('spiffe://c.org/x', 'db'),
      'ERR_JWTSVID_UNTRUSTED',
      /no JWT bundle for trust domain "c.org"/,
    );
    await expectCode(authA.mint(WEB, 'db', { header: { kid: 'other' } }), 'ERR_JWTSVID_UNTRUSTED', /key ID "other"/);
  });

  it('rejects a bad signature: another key under the right kid, or a changed payload', async () => {
    const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    await expectCode(
      authA.mint(WEB, 'db', { signWith: stranger }),
      'ERR_JWTSVID_UNTRUSTED',
      /signature does not verify with key "ka"/,
    );
    const [h, , s] = authA.mint(WEB, 'db').split('.');
    const forged = Buffer.from(
      JSON.stringify({ sub: 'spiffe://a.org/admin', aud: ['db'], exp: NOW.getTime() / 1000 + 60 }),
    ).toString('base64url');
    await expectCode(`${h}.${forged}.${s}`, 'ERR_JWTSVID_UNTRUSTED', /signature does not verify/);
    await expectCode(withSignature(authA.mint(WEB, 'db'), Buffer.alloc(0)), 'ERR_JWTSVID_UNTRUSTED', /signature/);
  });

  it('J-11: ES256 signatures are raw R||S; a DER-encoded signature is rejected', async () => {
    const token = authA.mint(WEB, 'db');
    const input = Buffer.from(token.slice(0, token.lastIndexOf('.')));
    const der = sign('sha256', input, authA.privateKey);
    await expectCode(withSignature(token, der), 'ERR_JWTSVID_UNTRUSTED', /signature does not verify/);
  });

  it('J-4: typ, when present, must be exactly JWT or JOSE', async () => {
    await JwtSvid.parseAndValidate(authA.mint(WEB, 'db', { header: { typ: 'JOSE' } }), bundles, ['db'], at);
    await JwtSvid.parseAndValidate(authA.mint(WEB, 'db', { header: { typ: undefined } }), bundles, ['db'], at);
    await expectCode(
      authA.mint(WEB, 'db', { header: { typ: 'jwt' } }),
      'ERR_JWTSVID_INVALID',
      /"typ" "jwt" must be "JWT" or "JOSE" .*\(J-4\)/,
    );
    await expectCode(authA.mint(WEB, 'db', { header: { typ: 'at+jwt' } }), 'ERR_JWTSVID_INVALID', /J-4/);
  });

  it('J-5: rejects any crit header (no extension is understood)', async () => {
    await expectCode(
      authA.mint(WEB, 'db', { header: { crit: ['exp'], exp: 1 } }),
      'ERR_JWTSVID_INVALID',
      /"crit" .*J-5/,
    );
    await expectCode(authA.mint(WEB, 'db', { header: { b64: false, crit: ['b64'] } }), 'ERR_JWTSVID_INVALID', /"crit"/);
  });

  it('J-6: sub must be present and a valid SPIFFE ID (a trust domain ID is allowed)', async () => {
    await expectCode(
      authA.mint(WEB, 'db', { claims: { sub: undefined } }),
      'ERR_JWTSVID_INVALID',
      /"sub" is missing \(J-6\)/,
    );
    await expectCode(
      authA.mint('https://a.org/web', 'db'),
      'ERR_JWTSVID_INVALID',
      /"sub" "https:\/\/a.org\/web" is not a SPIFFE ID: scheme/,
    );
    await expectCode(authA.mint('spiffe://a.org/web/', 'db'), 'ERR_JWTSVID_INVALID', /trailing slash/);
    await expectCode(authA.mint(WEB, 'db', { claims: { sub: 42 } }), 'ERR_JWTSVID_INVALID', /"sub" must be a string/);
    const tdOnly = await JwtSvid.parseAndValidate(authA.mint('spiffe://a.org', 'db'), bundles, ['db'], at);
    assert.equal(tdOnly.id.toString(), 'spiffe://a.org');
  });

  it('J-7: aud is required, a string or a non-empty array, and must contain an expected audience', async () => {
    await expectCode(
      authA.mint(WEB, 'db', { claims: { aud: undefined } }),
      'ERR_JWTSVID_INVALID',
      /"aud" is missing \(J-7\)/,
    );
    await expectCode(authA.mint(WEB, 'db', { claims: { aud: [] } }), 'ERR_JWTSVID_INVALID', /non-empty array/);
    await expectCode(authA.mint(WEB, 'db', { claims: { aud: ['db', 1] } }), 'ERR_JWTSVID_INVALID', /"aud"/);
    await expectCode(
      authA.mint(WEB, 'web'),
      'ERR_JWTSVID_AUDIENCE',
      /claim "aud" .*web.* contains none of the expected audiences .*db.*\(J-7\)/,
    );
    await expectCode(authA.mint(WEB, 'DB'), 'ERR_JWTSVID_AUDIENCE', /J-7/); // exact, case-sensitive
    const single = await JwtSvid.parseAndValidate(
      authA.mint(WEB, 'db', { claims: { aud: 'db' } }),
      bundles,
      ['db'],
      at,
    );
    assert.deepEqual(single.audience, ['db'], 'a string aud becomes a one-element list');
  });

  it('J-7: an empty expected-audience list is a programming error (TypeError)', async () => {
    await assert.rejects(JwtSvid.parseAndValidate(authA.mint(WEB, 'db'), bundles, [], at), TypeError);
    await assert.rejects(JwtSvid.parseAndValidate(authA.mint(WEB, 'db'), bundles, [''], at), TypeError);
  });

  it('J-8: exp is required and must be a NumericDate', async () => {
    await expectCode(
      authA.mint(WEB, 'db', { claims: { exp: undefined } }),
      'ERR_JWTSVID_INVALID',
      /"exp" is missing \(J-8\)/,
    );
    await expectCode(
      authA.mint(WEB, 'db', { claims: { exp: '2030' } }),
      'ERR_JWTSVID_INVALID',
      /"exp" must be a NumericDate/,
    );
    await expectCode(
      authA.mint(WEB, 'db', { claims: { exp: 1e300 } }),
      'ERR_JWTSVID_INVALID',
      /"exp" must be a NumericDate/,
    );
  });

  it('J-8: an expired token is rejected beyond the 60 s default leeway, accepted within it', async () => {
    const expired = authA.mint(WEB, 'db', { ttlSeconds: -61 });
    await expectCode(expired, 'ERR_JWTSVID_EXPIRED', /expired at 2029-12-31T23:58:59.000Z \(claim "exp", J-8\)/);
    const justExpired = authA.mint(WEB, 'db', { ttlSeconds: -30 });
    await JwtSvid.parseAndValidate(justExpired, bundles, ['db'], at);
    await assert.rejects(JwtSvid.parseAndValidate(justExpired, bundles, ['db'], { now: NOW, leewaySeconds: 0 }), {
      code: 'ERR_JWTSVID_EXPIRED',
    });
    const later: Clock = { now: () => new Date(NOW.getTime() + 3_600_000), setTimer: () => ({ cancel() {} }) };
    await assert.rejects(JwtSvid.parseAndValidate(authA.mint(WEB, 'db'), bundles, ['db'], { clock: later }), {
      code: 'ERR_JWTSVID_EXPIRED',
    });
  });

  it('J-8: nbf or iat in the future beyond the leeway is rejected', async () => {
    const t = NOW.getTime() / 1000;
    await expectCode(
      authA.mint(WEB, 'db', { claims: { nbf: t + 120 } }),
      'ERR_JWTSVID_EXPIRED',
      /not valid before .*"nbf"/,
    );
    await expectCode(
      authA.mint(WEB, 'db', { claims: { iat: t + 120 } }),
      'ERR_JWTSVID_EXPIRED',
      /issued in the future.*"iat"/,
    );
    await JwtSvid.parseAndValidate(
      authA.mint(WEB, 'db', { claims: { nbf: t + 30, iat: t + 30 } }),
      bundles,
      ['db'],
      at,
    );
    await expectCode(
      authA.mint(WEB, 'db', { claims: { nbf: 'soon' } }),
      'ERR_JWTSVID_INVALID',
      /"nbf" must be a NumericDate/,
    );
  });

  it('rejects duplicate claims and header members instead of keeping the last (confusion)', async () => {
    const exp = NOW.getTime() / 1000 + 300;
    const claimsJson = `{"sub":"spiffe://a.org/web","aud":["db"],"exp":${exp},"sub":"spiffe://a.org/admin"}`;
    await expectCode(authA.mint(WEB, 'db', { claimsJson }), 'ERR_JWTSVID_INVALID', /duplicate member name "sub"/);
    const headerJson = '{"alg":"ES256","kid":"ka","alg":"none"}';
    await expectCode(authA.mint(WEB, 'db', { headerJson }), 'ERR_JWTSVID_INVALID', /duplicate member name "alg"/);
  });

  it('rejects oversized tokens without parsing them, and non-string tokens as TypeError', async () => {
    await expectCode(`${'a'.repeat(70_000)}.b.c`, 'ERR_JWTSVID_INVALID', /more than the limit/);
    await assert.rejects(JwtSvid.parseAndValidate(42 as unknown as string, bundles, ['db'], at), TypeError);
  });
});

describe('JwtSvid.parseInsecure', () => {
  it('skips the signature and kid, still enforces structure, alg, sub, aud and exp', () => {
    const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey as KeyObject;
    const svid = JwtSvid.parseInsecure(
      authA.mint(WEB, 'db', { signWith: stranger, header: { kid: undefined } }),
      ['db'],
      at,
    );
    assert.ok(svid.id.equals(WEB));
    assert.equal(svid.keyId, undefined);
    assert.throws(() => JwtSvid.parseInsecure(authA.mint(WEB, 'db', { header: { alg: 'none' } }), ['db'], at), {
      code: 'ERR_JWTSVID_ALGORITHM',
    });
    assert.throws(() => JwtSvid.parseInsecure(authA.mint(WEB, 'db', { ttlSeconds: -3600 }), ['db'], at), {
      code: 'ERR_JWTSVID_EXPIRED',
    });
    assert.throws(() => JwtSvid.parseInsecure(authA.mint(WEB, 'web'), ['db'], at), { code: 'ERR_JWTSVID_AUDIENCE' });
    assert.throws(() => JwtSvid.parseInsecure(authA.mint(WEB, 'db', { claims: { aud: undefined } }), [], at), {
      code: 'ERR_JWTSVID_INVALID',
    });
    assert.equal(JwtSvid.parseInsecure(authA.mint(WEB, 'web'), [], at).audience[0], 'web', 'no expected audience: any');
  });
});

describe('JwtSvid redaction', () => {
  it('never prints the token through toString, JSON or util.inspect', async () => {
    const token = authA.mint(WEB, 'db');
    const svid = await JwtSvid.parseAndValidate(token, bundles, ['db'], at);
    const signature = token.split('.')[2] as string;
    for (const text of [
      String(svid),
      `${svid}`,
      JSON.stringify(svid),
      inspect(svid),
      inspect({ nested: svid }, { depth: 5 }),
    ]) {
      assert.ok(!text.includes(signature), `leaked in: ${text}`);
      assert.match(text, /spiffe:\/\/a\.org\/web/);
    }
    assert.match(inspect(svid), /token: \[redacted\]/);
  });
});
