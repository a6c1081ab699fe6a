import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject, X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { BundleError } from '../errors.js';
import { selfSignCertificate } from '../internal/certificate-builder.js';
import { TrustDomain } from '../spiffeid/trust-domain.js';
import { JwtBundle } from './jwt-bundle.js';
import { SpiffeBundle } from './spiffe-bundle.js';
import { X509Bundle } from './x509-bundle.js';

const td = TrustDomain.parse('example.org');

function makeCa(keys: { privateKey: KeyObject; publicKey: KeyObject }, cn: string): X509Certificate {
  const now = Date.now();
  const der = selfSignCertificate(
    {
      subject: [{ type: 'CN', value: cn }],
      publicKey: keys.publicKey,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 86_400_000),
      basicConstraints: { ca: true },
      keyUsage: { usages: ['keyCertSign', 'cRLSign'] },
    },
    keys.privateKey,
  );
  return new X509Certificate(der);
}

const ecKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const rsaKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ecCa = makeCa(ecKeys, 'ec ca');
const rsaCa = makeCa(rsaKeys, 'rsa ca');
const jwtKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
const ecCaJwk = ecKeys.publicKey.export({ format: 'jwk' });
const jwtJwk = jwtKey.export({ format: 'jwk' });

const x509Entry = (cert: X509Certificate, extra: Record<string, unknown> = {}) => ({
  use: 'x509-svid',
  ...cert.publicKey.export({ format: 'jwk' }),
  x5c: [cert.raw.toString('base64')],
  ...extra,
});
const jwtEntry = (kid: string, extra: Record<string, unknown> = {}) => ({ use: 'jwt-svid', kid, ...jwtJwk, ...extra });
const doc = (keys: unknown[], extra: Record<string, unknown> = {}) => JSON.stringify({ keys, ...extra });

function rejects(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BundleError, `expected BundleError, got ${String(e)}`);
    assert.equal(e.code, 'ERR_BUNDLE_INVALID');
    assert.match(e.message, pattern);
    return true;
  });
}

const full = SpiffeBundle.fromBundles({
  x509: X509Bundle.fromAuthorities(td, [ecCa, rsaCa]),
  jwt: JwtBundle.fromAuthorities(td, new Map([['kid-1', jwtKey]])),
  sequenceNumber: 42n,
  refreshHintSeconds: 300,
});

describe('SpiffeBundle', () => {
  it('B-1/§4: marshals like go-spiffe (member order, no kid on x509 entries) and parses back equal', () => {
    const text = full.marshal();
    const rsaJwk = rsaKeys.publicKey.export({ format: 'jwk' });
    assert.equal(
      text,
      JSON.stringify({
        keys: [
          { use: 'x509-svid', kty: 'EC', crv: 'P-256', x: ecCaJwk.x, y: ecCaJwk.y, x5c: [ecCa.raw.toString('base64')] },
          { use: 'x509-svid', kty: 'RSA', n: rsaJwk.n, e: rsaJwk.e, x5c: [rsaCa.raw.toString('base64')] },
          { use: 'jwt-svid', kty: 'EC', kid: 'kid-1', crv: 'P-256', x: jwtJwk.x, y: jwtJwk.y },
        ],
        spiffe_refresh_hint: 300,
        spiffe_sequence: 42,
      }),
    );
    const back = SpiffeBundle.parse(td, text);
    assert.ok(back.equals(full));
    assert.equal(back.x509Authorities.length, 2);
    assert.ok(back.x509Authorities[0]?.raw.equals(ecCa.raw));
    assert.deepEqual([...back.jwtAuthorities.keys()], ['kid-1']);
    assert.equal(back.sequenceNumber, 42n);
    assert.equal(back.refreshHintSeconds, 300);
  });

  it('B-3: spiffe_sequence above 2^53 round-trips bit-exact, as an integer literal', () => {
    for (const seq of [2n ** 53n + 1n, 2n ** 64n - 1n, 0n]) {
      const text = doc([], { spiffe_sequence: '@' }).replace('"@"', seq.toString());
      const b = SpiffeBundle.parse(td, text);
      assert.equal(b.sequenceNumber, seq);
      assert.equal(b.marshal(), `{"keys":[],"spiffe_sequence":${seq}}`);
    }
  });

  it('B-3: rejects a spiffe_sequence that is negative, above 2^64-1 or not an integer', () => {
    rejects(
      () => SpiffeBundle.parse(td, '{"keys":[],"spiffe_sequence":-1}'),
      /"spiffe_sequence" -1 is outside 0..2\^64-1/,
    );
    rejects(() => SpiffeBundle.parse(td, '{"keys":[],"spiffe_sequence":18446744073709551616}'), /outside 0..2\^64-1/);
    rejects(() => SpiffeBundle.parse(td, '{"keys":[],"spiffe_sequence":1.5}'), /must be an integer/);
    rejects(() => SpiffeBundle.parse(td, '{"keys":[],"spiffe_sequence":1e3}'), /must be an integer/);
    rejects(() => SpiffeBundle.parse(td, '{"keys":[],"spiffe_sequence":"5"}'), /must be an integer/);
    assert.throws(() => full.withSequenceNumber(-1n), RangeError);
    assert.throws(() => full.withSequenceNumber(2n ** 64n), RangeError);
    assert.throws(() => full.withSequenceNumber(2 ** 60), TypeError, 'an unsafe number must be passed as bigint');
    assert.equal(full.withSequenceNumber(7).sequenceNumber, 7n);
    assert.equal(full.withSequenceNumber(undefined).marshal().includes('spiffe_sequence'), false);
  });

  it('B-4: spiffe_refresh_hint must be a non-negative integer; fractions given in code round up', () => {
    rejects(() => SpiffeBundle.parse(td, '{"keys":[],"spiffe_refresh_hint":1.5}'), /spiffe_refresh_hint/);
    rejects(() => SpiffeBundle.parse(td, '{"keys":[],"spiffe_refresh_hint":-5}'), /spiffe_refresh_hint/);
    rejects(() => SpiffeBundle.parse(td, '{"keys":[],"spiffe_refresh_hint":"300"}'), /spiffe_refresh_hint/);
    assert.equal(full.withRefreshHint(0.2).refreshHintSeconds, 1);
    assert.equal(SpiffeBundle.parse(td, '{"keys":[]}').refreshHintSeconds, undefined);
  });

  it('B-2: the keys member is required; an empty list is a valid (empty) bundle', () => {
    rejects(() => SpiffeBundle.parse(td, '{}'), /"keys" member is required \(B-2\)/);
    rejects(() => SpiffeBundle.parse(td, '{"keys":null}'), /must be an array/);
    rejects(() => SpiffeBundle.parse(td, '"keys"'), /must be a JSON object/);
    const empty = SpiffeBundle.parse(td, '{"keys":[]}');
    assert.equal(empty.isEmpty(), true);
    assert.ok(empty.equals(SpiffeBundle.empty(td)));
  });

  it('B-5: ignores unknown top-level members', () => {
    const b = SpiffeBundle.parse(td, doc([x509Entry(ecCa)], { future_member: { a: [1] }, spiffe_whatever: 1 }));
    assert.equal(b.x509Authorities.length, 1);
  });

  it('B-6: ignores JWKs with a missing or unknown use or an unknown or missing kty', () => {
    const b = SpiffeBundle.parse(
      td,
      doc([
        x509Entry(ecCa, { use: undefined }),
        x509Entry(ecCa, { use: 'X509-SVID' }),
        jwtEntry('w', { use: 'wit-svid' }),
        jwtEntry('oct', { kty: 'oct', k: 'c2VjcmV0' }),
        jwtEntry('nokty', { kty: undefined }),
        { use: 'jwt-svid', kty: 'FUTURE', kid: 'f', whatever: 1 },
        jwtEntry('ok'),
      ]),
    );
    assert.equal(b.x509Authorities.length, 0);
    assert.deepEqual([...b.jwtAuthorities.keys()], ['ok']);
  });

  it('X-17: an x509-svid entry without x5c or with an empty x5c is ignored; with several, the first is used', () => {
    const b = SpiffeBundle.parse(
      td,
      doc([
        x509Entry(ecCa, { x5c: undefined }),
        x509Entry(ecCa, { x5c: [] }),
        x509Entry(rsaCa, { x5c: [rsaCa.raw.toString('base64'), 'not even base64!'] }),
      ]),
    );
    assert.equal(b.x509Authorities.length, 1);
    assert.ok(b.x509Authorities[0]?.raw.equals(rsaCa.raw));
  });

  it('X-16: a kid on an x509-svid entry is ignored on input and never written', () => {
    const b = SpiffeBundle.parse(td, doc([x509Entry(ecCa, { kid: 'should-not-be-here' })]));
    assert.equal(b.x509Authorities.length, 1);
    assert.equal(b.marshal().includes('kid'), false);
  });

  it('X-16: rejects key members that do not match the x5c certificate, naming the entry', () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
    rejects(
      () => SpiffeBundle.parse(td, doc([jwtEntry('a'), x509Entry(ecCa, { x: other.x, y: other.y })])),
      /key #1 \(x509-svid\): the key members do not match the "x5c" certificate's key \(X-16\)/,
    );
    rejects(
      () => SpiffeBundle.parse(td, doc([x509Entry(ecCa, { kty: 'RSA', crv: undefined, x: undefined, y: undefined })])),
      /key #0 \(x509-svid\): "kty" "RSA" does not match the certificate's EC key/,
    );
    rejects(() => SpiffeBundle.parse(td, doc([x509Entry(ecCa, { d: 'AAAA' })])), /private key material/);
  });

  it('X-16: accepts an x509-svid entry without key members (the certificate carries the key)', () => {
    const b = SpiffeBundle.parse(td, doc([{ use: 'x509-svid', kty: 'EC', x5c: [ecCa.raw.toString('base64')] }]));
    assert.equal(b.x509Authorities.length, 1);
  });

  it('X-16: x5c must hold standard base64 DER of a certificate', () => {
    const b64url = ecCa.raw.toString('base64url');
    const std = ecCa.raw.toString('base64');
    assert.notEqual(b64url, std.replace(/=+$/, ''), 'fixture must differ between the alphabets');
    rejects(() => SpiffeBundle.parse(td, doc([x509Entry(ecCa, { x5c: [b64url] })])), /standard base64/);
    rejects(() => SpiffeBundle.parse(td, doc([x509Entry(ecCa, { x5c: 'abcd' })])), /must be an array/);
    rejects(() => SpiffeBundle.parse(td, doc([x509Entry(ecCa, { x5c: [42] })])), /standard base64/);
    rejects(() => SpiffeBundle.parse(td, doc([x509Entry(ecCa, { x5c: ['AAAA'] })])), /not a valid X.509 certificate/);
  });

  it('J-10: a jwt-svid entry must carry a kid; a repeated kid is rejected', () => {
    rejects(
      () => SpiffeBundle.parse(td, doc([x509Entry(ecCa), jwtEntry('')])),
      /key #1 \(jwt-svid\) has no "kid" \(J-10\)/,
    );
    rejects(() => SpiffeBundle.parse(td, doc([jwtEntry('a', { kid: undefined })])), /key #0 \(jwt-svid\) has no "kid"/);
    rejects(
      () => SpiffeBundle.parse(td, doc([jwtEntry('a'), jwtEntry('a')])),
      /key #1 \(jwt-svid\) repeats key ID "a"/,
    );
    rejects(
      () => SpiffeBundle.parse(td, doc([jwtEntry('a', { x: 'AA' })])),
      /key #0 \(kid "a"\): EC key is not a valid public key/,
    );
  });

  it('rejects entries that are not objects and JSON that is not strict', () => {
    rejects(() => SpiffeBundle.parse(td, '{"keys":["x"]}'), /key #0 is not a JSON object/);
    rejects(() => SpiffeBundle.parse(td, '{"keys":[],"keys":[]}'), /duplicate member name "keys"/);
    rejects(() => SpiffeBundle.parse(td, new Uint8Array([0xff])), /not valid UTF-8/);
  });

  it('hands out its X.509 and JWT bundles only for its own trust domain', () => {
    const other = TrustDomain.parse('other.org');
    assert.equal(full.getX509BundleForTrustDomain(td), full.x509Bundle());
    assert.equal(full.getJwtBundleForTrustDomain(td), full.jwtBundle());
    assert.equal(full.getX509BundleForTrustDomain(other), undefined);
    assert.equal(full.getJwtBundleForTrustDomain(other), undefined);
    assert.equal(full.jwtBundle().findAuthority('kid-1')?.equals(jwtKey), true);
  });

  it('fromBundles refuses bundles of different trust domains', () => {
    assert.throws(
      () => SpiffeBundle.fromBundles({ x509: full.x509Bundle(), jwt: JwtBundle.empty('other.org') }),
      /bundle of "other.org" given for trust domain "example.org"/,
    );
    assert.throws(() => SpiffeBundle.fromBundles({}), TypeError);
    assert.equal(SpiffeBundle.fromBundles({ trustDomain: 'a.org' }).trustDomain.name, 'a.org');
  });

  it('with* return new bundles and leave the original alone', () => {
    const b = full.withJwtBundle(JwtBundle.empty(td)).withX509Bundle(X509Bundle.fromAuthorities(td, [rsaCa]));
    assert.equal(full.jwtAuthorities.size, 1);
    assert.equal(b.jwtAuthorities.size, 0);
    assert.equal(b.x509Authorities.length, 1);
    assert.equal(b.sequenceNumber, 42n);
    assert.equal(b.equals(full), false);
  });
});
