import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SpiffeIdError } from '../errors.js';
import { SpiffeId } from './spiffe-id.js';
import { TrustDomain } from './trust-domain.js';

function rejects(input: string, rule: RegExp): void {
  const err = SpiffeId.tryParse(input);
  assert.ok(err instanceof SpiffeIdError, `expected ${JSON.stringify(input)} to be rejected`);
  assert.equal(err.code, 'ERR_SPIFFEID_INVALID');
  assert.match(err.message, rule);
  assert.ok(err.message.includes(JSON.stringify(input).slice(0, 40)), 'message names the input');
  assert.throws(() => SpiffeId.parse(input), SpiffeIdError);
}

describe('SpiffeId.parse (SPIFFE-ID §2)', () => {
  it('accepts a well-formed ID and exposes its parts', () => {
    const id = SpiffeId.parse('spiffe://example.org/ns/prod/sa/web');
    assert.equal(id.trustDomain.name, 'example.org');
    assert.equal(id.path, '/ns/prod/sa/web');
    assert.equal(id.toString(), 'spiffe://example.org/ns/prod/sa/web');
    assert.equal(JSON.stringify({ id }), '{"id":"spiffe://example.org/ns/prod/sa/web"}');
  });

  it('ID-1: requires the spiffe scheme, exactly', () => {
    rejects('', /cannot be empty/);
    rejects('http://example.org/a', /scheme/);
    rejects('spiffe:/example.org/a', /scheme/);
    rejects('example.org/a', /scheme/);
    rejects('SPIFFE://example.org/a', /scheme/);
    rejects('Spiffe://example.org/a', /scheme/);
  });

  it('ID-1/ID-2: no query, fragment, userinfo or port', () => {
    rejects('spiffe://example.org/a?x=1', /path segment characters/);
    rejects('spiffe://example.org/a#frag', /path segment characters/);
    rejects('spiffe://example.org?x=1', /trust domain characters/);
    rejects('spiffe://example.org#f', /trust domain characters/);
    rejects('spiffe://user@example.org/a', /trust domain characters/);
    rejects('spiffe://user:pw@example.org/a', /trust domain characters/);
    rejects('spiffe://example.org:8080/a', /trust domain characters/);
    rejects('spiffe://[::1]/a', /trust domain characters/);
  });

  it('ID-2: trust domain is required, lowercase, limited charset, no percent-encoding', () => {
    rejects('spiffe://', /trust domain is missing/);
    rejects('spiffe:///path', /trust domain is missing/);
    rejects('spiffe://Example.org/a', /lowercase/);
    rejects('spiffe://EXAMPLE.ORG', /lowercase/);
    rejects('spiffe://exa%6dple.org/a', /trust domain characters/);
    rejects('spiffe://exa mple.org/a', /trust domain characters/);
    rejects('spiffe://exämple.org/a', /trust domain characters/);
  });

  it('ID-3: trust domains are not validated as DNS names or IPs', () => {
    for (const td of ['example..org', '.a.', '-', '_', '999.999.999.999', '1.2.3.4', 'a_b-c.d']) {
      assert.equal(SpiffeId.parse(`spiffe://${td}/w`).trustDomain.name, td);
    }
  });

  it('ID-4: path segments: no empty, no dot segments, no trailing slash, limited charset', () => {
    rejects('spiffe://example.org/', /trailing slash/);
    rejects('spiffe://example.org/a/', /trailing slash/);
    rejects('spiffe://example.org//a', /empty segments/);
    rejects('spiffe://example.org/a//b', /empty segments/);
    rejects('spiffe://example.org/.', /dot segments/);
    rejects('spiffe://example.org/..', /dot segments/);
    rejects('spiffe://example.org/a/./b', /dot segments/);
    rejects('spiffe://example.org/a/../b', /dot segments/);
    rejects('spiffe://example.org/a%20b', /path segment characters/);
    rejects('spiffe://example.org/a%2Fb', /path segment characters/);
    rejects('spiffe://example.org/a b', /path segment characters/);
    rejects('spiffe://example.org/ä', /path segment characters/);
    rejects('spiffe://example.org/a\\b', /path segment characters/);
    for (const p of ['/...', '/.x', '/..x', '/x.', '/A-Z_a.z-0', '/UPPER/Case']) {
      assert.equal(SpiffeId.parse(`spiffe://example.org${p}`).path, p);
    }
  });

  it('ID-4: the path is optional (the trust domain ID)', () => {
    const id = SpiffeId.parse('spiffe://example.org');
    assert.equal(id.path, '');
    assert.ok(id.isTrustDomainId());
  });

  it('ID-5: accepts exactly 2048 bytes, rejects 2049', () => {
    const prefix = 'spiffe://example.org/';
    const ok = prefix + 'a'.repeat(2048 - prefix.length);
    assert.equal(Buffer.byteLength(ok), 2048);
    assert.equal(SpiffeId.parse(ok).toString(), ok);
    rejects(`${ok}b`, /longer than 2048 bytes/);
    rejects(`${prefix}${'a'.repeat(5_000_000)}`, /longer than 2048 bytes/);
  });

  it('ID-5: multi-byte input is measured in bytes', () => {
    const prefix = 'spiffe://example.org/';
    rejects(prefix + 'é'.repeat(1100), /longer than 2048 bytes/);
  });

  it('ID-5: trust domain names over 255 bytes are rejected', () => {
    assert.ok(SpiffeId.parse(`spiffe://${'a'.repeat(255)}/x`));
    rejects(`spiffe://${'a'.repeat(256)}/x`, /longer than 255 bytes/);
  });

  it('path is case-sensitive; equality is exact', () => {
    const a = SpiffeId.parse('spiffe://example.org/Web');
    const b = SpiffeId.parse('spiffe://example.org/web');
    assert.ok(!a.equals(b));
    assert.ok(a.equals('spiffe://example.org/Web'));
    assert.ok(a.equals(SpiffeId.parse('spiffe://example.org/Web')));
  });

  it('memberOf compares trust domains', () => {
    const id = SpiffeId.parse('spiffe://example.org/web');
    assert.ok(id.memberOf('example.org'));
    assert.ok(id.memberOf(TrustDomain.parse('spiffe://example.org')));
    assert.ok(!id.memberOf('example.com'));
    assert.ok(!id.memberOf('example.org.evil'));
  });

  it('fromPath builds IDs and validates the path', () => {
    assert.equal(SpiffeId.fromPath('example.org', '/a/b').toString(), 'spiffe://example.org/a/b');
    assert.equal(SpiffeId.fromPath(TrustDomain.parse('example.org'), '').toString(), 'spiffe://example.org');
    assert.throws(() => SpiffeId.fromPath('example.org', 'a'), /must start with "\/"/);
    assert.throws(() => SpiffeId.fromPath('example.org', '/a/'), /trailing slash/);
    assert.throws(() => SpiffeId.fromPath('Bad', '/a'), { code: 'ERR_TRUST_DOMAIN_INVALID' });
    assert.ok(SpiffeId.tryFromPath('example.org', '/../x') instanceof SpiffeIdError);
  });

  it('error messages stay short for huge input', () => {
    const err = SpiffeId.tryParse(`x${'a'.repeat(100_000)}`) as SpiffeIdError;
    assert.ok(err.message.length < 300);
  });

  it('misuse with a non-string is a TypeError, not a SpiffeError', () => {
    assert.throws(() => SpiffeId.parse(42 as unknown as string), TypeError);
  });
});

describe('TrustDomain.parse (ID-8)', () => {
  it('accepts a bare name or any valid SPIFFE ID', () => {
    assert.equal(TrustDomain.parse('example.org').name, 'example.org');
    assert.equal(TrustDomain.parse('spiffe://example.org').name, 'example.org');
    assert.equal(TrustDomain.parse('spiffe://example.org/path/x').name, 'example.org');
    assert.equal(TrustDomain.parse('example.org').idString(), 'spiffe://example.org');
  });

  it('rejects invalid names with ERR_TRUST_DOMAIN_INVALID naming the input', () => {
    for (const bad of [
      '',
      'Example.org',
      'example.org:443',
      'spiffe://example.org/',
      'http://example.org',
      'a/b',
      'spiffe://',
    ]) {
      const err = TrustDomain.tryParse(bad);
      assert.ok(err instanceof SpiffeIdError, `expected ${JSON.stringify(bad)} to be rejected`);
      assert.equal(err.code, 'ERR_TRUST_DOMAIN_INVALID');
      assert.ok(err.message.includes(JSON.stringify(bad)));
    }
    assert.throws(() => TrustDomain.parse('a'.repeat(256)), /255 bytes/);
  });

  it('equals compares by name', () => {
    assert.ok(TrustDomain.parse('a.org').equals(TrustDomain.parse('spiffe://a.org')));
    assert.ok(TrustDomain.parse('a.org').equals('a.org'));
    assert.ok(!TrustDomain.parse('a.org').equals('b.org'));
  });
});
