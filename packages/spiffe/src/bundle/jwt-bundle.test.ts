import assert from 'node:assert/strict';
import { generateKeyPairSync, type JsonWebKey, KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import { BundleError } from '../errors.js';
import { TrustDomain } from '../spiffeid/trust-domain.js';
import { JwtBundle } from './jwt-bundle.js';

const td = TrustDomain.parse('example.org');
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ec2 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const ecJwk = ec.publicKey.export({ format: 'jwk' });

function rejects(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BundleError, `expected BundleError, got ${String(e)}`);
    assert.equal(e.code, 'ERR_BUNDLE_INVALID');
    assert.match(e.message, pattern);
    return true;
  });
}

describe('JwtBundle', () => {
  it('builds from KeyObjects and JWKs, imports each key once and finds it by kid', () => {
    const b = JwtBundle.fromAuthorities(
      td,
      new Map<string, KeyObject | JsonWebKey>([
        ['k1', ec.publicKey],
        ['k2', ec2.publicKey.export({ format: 'jwk' })],
      ]),
    );
    const k1 = b.findAuthority('k1');
    assert.ok(k1 instanceof KeyObject);
    assert.equal(b.findAuthority('k1'), k1, 'same cached KeyObject');
    assert.equal(b.findAuthority('k2')?.asymmetricKeyDetails?.namedCurve, 'secp384r1');
    assert.equal(b.findAuthority('nope'), undefined);
    assert.deepEqual([...b.authorities.keys()], ['k1', 'k2']);
    assert.deepEqual(b.authorities.get('k1'), { kty: 'EC', crv: 'P-256', x: ecJwk.x, y: ecJwk.y });
    assert.equal(JwtBundle.fromAuthorities('example.org', { k1: ecJwk }).equals(b.withoutAuthority('k2')), true);
  });

  it('refuses private keys and empty key IDs as programming errors', () => {
    assert.throws(() => JwtBundle.fromAuthorities(td, new Map([['k', ec.privateKey]])), TypeError);
    assert.throws(() => JwtBundle.fromAuthorities(td, new Map([['', ec.publicKey]])), TypeError);
    rejects(() => JwtBundle.fromAuthorities(td, { k: { ...ecJwk, d: 'AAAA' } }), /private key material \(member "d"\)/);
  });

  it('W-10: marshals a JWK Set whose every key carries kid and use jwt-svid, and parses it back', () => {
    const b = JwtBundle.fromAuthorities(td, new Map([['k1', ec.publicKey]]));
    const doc = JSON.parse(b.marshal());
    assert.deepEqual(doc, { keys: [{ use: 'jwt-svid', kty: 'EC', kid: 'k1', crv: 'P-256', x: ecJwk.x, y: ecJwk.y }] });
    assert.ok(JwtBundle.parse(td, b.marshal()).equals(b));
    assert.ok(JwtBundle.parse(td, Buffer.from(b.marshal())).equals(b), 'accepts bytes, as the Workload API sends them');
  });

  it('W-10: parse requires kid on every JWT authority (go-spiffe jwtbundle.Parse)', () => {
    rejects(() => JwtBundle.parse(td, JSON.stringify({ keys: [ecJwk] })), /key #0 has no "kid"/);
    rejects(() => JwtBundle.parse(td, JSON.stringify({ keys: [{ ...ecJwk, kid: '' }] })), /key #0 has no "kid"/);
  });

  it('rejects a repeated kid instead of silently picking one', () => {
    const k = { ...ecJwk, kid: 'a' };
    rejects(() => JwtBundle.parse(td, JSON.stringify({ keys: [k, k] })), /key #1 repeats key ID "a"/);
  });

  it('B-6: ignores keys of another use or an unsupported kty', () => {
    const doc = {
      keys: [
        { ...ecJwk, use: 'x509-svid', x5c: [] },
        { kty: 'oct', k: 'c2VjcmV0', kid: 'sym' },
        { kty: 'XYZ', kid: 'u' },
        { ...ecJwk, kid: 'good', use: 'jwt-svid' },
      ],
    };
    const b = JwtBundle.parse(td, JSON.stringify(doc));
    assert.deepEqual([...b.authorities.keys()], ['good']);
  });

  it('rejects malformed documents and keys with a message naming the entry', () => {
    rejects(() => JwtBundle.parse(td, '[]'), /must be a JSON object/);
    rejects(() => JwtBundle.parse(td, '{}'), /"keys" member is required/);
    rejects(() => JwtBundle.parse(td, '{"keys":{}}'), /must be an array/);
    rejects(() => JwtBundle.parse(td, '{"keys":[1]}'), /key #0 is not a JSON object/);
    rejects(() => JwtBundle.parse(td, '{"keys":[]'), /not valid JSON: .*offset 10/);
    rejects(
      () => JwtBundle.parse(td, JSON.stringify({ keys: [{ ...ecJwk, kid: 'k', y: ecJwk.x }] })),
      /key #0 \(kid "k"\): EC key is not a valid public key/,
    );
    rejects(() => JwtBundle.parse(td, JSON.stringify({ keys: [{ kty: 'RSA', kid: 'k', n: 'AQAB' }] })), /member "e"/);
    rejects(
      () => JwtBundle.parse(td, JSON.stringify({ keys: [{ ...ecJwk, kid: 'k', x: `${ecJwk.x}==` }] })),
      /not base64url/,
    );
  });

  it('rejects duplicate JSON members rather than keeping the last', () => {
    rejects(() => JwtBundle.parse(td, '{"keys":[],"keys":[]}'), /duplicate member name "keys"/);
  });

  it('is immutable: with/without return new bundles', () => {
    const a = JwtBundle.empty(td);
    const b = a.withAuthority('k', ec.publicKey);
    assert.equal(a.isEmpty(), true);
    assert.equal(b.hasAuthority('k'), true);
    assert.equal(b.withoutAuthority('k').isEmpty(), true);
    assert.equal(b.equals(a), false);
  });

  it('answers only for its own trust domain', () => {
    const b = JwtBundle.empty(td);
    assert.equal(b.getJwtBundleForTrustDomain(TrustDomain.parse('example.org')), b);
    assert.equal(b.getJwtBundleForTrustDomain(TrustDomain.parse('other.org')), undefined);
  });
});
