import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { BundleError } from '../errors.js';
import { TrustDomain } from '../spiffeid/trust-domain.js';
import { BundleSet } from './bundle-set.js';
import { JwtBundle } from './jwt-bundle.js';
import { SpiffeBundle } from './spiffe-bundle.js';
import { X509Bundle } from './x509-bundle.js';

const a = TrustDomain.parse('a.org');
const b = TrustDomain.parse('b.org');
const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
const jwk = key.export({ format: 'jwk' });
const jwtA = JwtBundle.fromAuthorities(a, new Map([['ka', key]]));
const bundleA = SpiffeBundle.fromBundles({ jwt: jwtA, sequenceNumber: 2n ** 63n + 5n, refreshHintSeconds: 60 });
const bundleB = SpiffeBundle.empty(b);
const entry = { use: 'jwt-svid', kid: 'k', ...jwk };

function rejects(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BundleError, `expected BundleError, got ${String(e)}`);
    assert.equal(e.code, 'ERR_BUNDLE_INVALID');
    assert.match(e.message, pattern);
    return true;
  });
}

describe('BundleSet', () => {
  it('holds one bundle per trust domain and serves each trust domain its own bundle', () => {
    const set = BundleSet.of(bundleA, bundleB);
    assert.equal(set.size, 2);
    assert.equal(set.get('a.org'), bundleA);
    assert.equal(set.get(TrustDomain.parse('spiffe://b.org')), bundleB);
    assert.equal(set.has('c.org'), false);
    assert.deepEqual(
      set.trustDomains().map((t) => t.name),
      ['a.org', 'b.org'],
    );
    assert.equal(set.getJwtBundleForTrustDomain(a), jwtA);
    assert.equal(set.getJwtBundleForTrustDomain(TrustDomain.parse('c.org')), undefined);
    assert.equal(set.getX509BundleForTrustDomain(b)?.isEmpty(), true);
    assert.deepEqual(
      set.getX509Bundles().map((x) => x.trustDomain.name),
      ['a.org', 'b.org'],
    );
    assert.equal(
      set.getX509Bundles(),
      set.getX509Bundles(),
      'the same array while nothing changes (TLS context reuse)',
    );
  });

  it('combines an X509Bundle and a JwtBundle of the same trust domain', () => {
    const set = BundleSet.of(X509Bundle.fromAuthorities(a, []), jwtA);
    assert.equal(set.getJwtBundleForTrustDomain(a), jwtA);
    assert.equal(set.size, 1);
  });

  it('refuses two bundles of the same kind for one trust domain', () => {
    rejects(() => BundleSet.of(bundleA, SpiffeBundle.empty(a)), /more than one bundle .* trust domain "a.org"/);
    rejects(() => BundleSet.of(jwtA, JwtBundle.empty(a)), /trust domain "a.org"/);
    rejects(() => BundleSet.of(bundleA, jwtA), /trust domain "a.org"/);
  });

  it('B-8: marshals the bundle map (no per-bundle refresh hint, exact sequence) and parses it back', () => {
    const set = BundleSet.of(bundleB, bundleA);
    const text = set.marshal();
    assert.equal(
      text,
      `{"trust_domains":{"a.org":{"keys":[{"use":"jwt-svid","kty":"EC","kid":"ka","crv":"P-256","x":"${jwk.x}","y":"${jwk.y}"}],"spiffe_sequence":9223372036854775813},"b.org":{"keys":[]}}}`,
    );
    const back = BundleSet.parse(text);
    assert.equal(back.get(a)?.sequenceNumber, 2n ** 63n + 5n);
    assert.ok(back.equals(BundleSet.of(bundleA.withRefreshHint(undefined), bundleB)));
  });

  it('B-8: trust_domains is required and may be empty', () => {
    rejects(() => BundleSet.parse('{}'), /"trust_domains" member is required \(B-8\)/);
    rejects(() => BundleSet.parse('{"trust_domains":[]}'), /must be a JSON object/);
    rejects(() => BundleSet.parse('[]'), /must be a JSON object/);
    assert.equal(BundleSet.parse('{"trust_domains":{}}').size, 0);
  });

  it('B-8: rejects a map with a duplicate trust domain key (JSON.parse would keep the last)', () => {
    const text = `{"trust_domains":{"a.org":{"keys":[]},"a.org":{"keys":[${JSON.stringify(entry)}]}}}`;
    rejects(() => BundleSet.parse(text), /duplicate member name "a.org"/);
  });

  it('ID-8/B-8: accepts td and spiffe://td keys, canonicalised; two keys naming one trust domain are rejected', () => {
    const set = BundleSet.parse('{"trust_domains":{"spiffe://a.org":{"keys":[]},"b.org":{"keys":[]}}}');
    assert.deepEqual(
      set.trustDomains().map((t) => t.name),
      ['a.org', 'b.org'],
    );
    assert.equal(set.marshal(), '{"trust_domains":{"a.org":{"keys":[]},"b.org":{"keys":[]}}}');
    rejects(
      () => BundleSet.parse('{"trust_domains":{"a.org":{"keys":[]},"spiffe://a.org":{"keys":[]}}}'),
      /key "spiffe:\/\/a.org" names trust domain "a.org" a second time/,
    );
    rejects(() => BundleSet.parse('{"trust_domains":{"A.org":{"keys":[]}}}'), /key "A.org": trust domain characters/);
  });

  it('loads atomically: one bad bundle rejects the whole map, naming its trust domain', () => {
    rejects(
      () => BundleSet.parse('{"trust_domains":{"a.org":{"keys":[]},"b.org":{}}}'),
      /bundle map: bundle of "b.org": the "keys" member is required/,
    );
  });

  it('a trust domain named __proto__ stays an ordinary entry', () => {
    const set = BundleSet.parse('{"trust_domains":{"__proto__":{"keys":[]}}}');
    assert.deepEqual(
      set.trustDomains().map((t) => t.name),
      ['__proto__'],
    );
    assert.equal(set.marshal(), '{"trust_domains":{"__proto__":{"keys":[]}}}');
  });

  it('with/without return new sets', () => {
    const set = BundleSet.of(bundleA);
    const more = set.with(bundleB).with(JwtBundle.empty(a));
    assert.equal(set.size, 1);
    assert.equal(more.size, 2);
    assert.equal(more.get(a)?.jwtAuthorities.size, 0, 'with() replaces the bundle of the trust domain');
    assert.equal(more.without('b.org').has(b), false);
    assert.equal(more.has(b), true);
  });
});
