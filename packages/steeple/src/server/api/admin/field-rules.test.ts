import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loggableId } from './admin-caller.js';
import { dnsNameProblem } from './field-rules.js';

describe('dnsNameProblem', () => {
  it('accepts host names, single labels, a leading wildcard and 63-character labels', () => {
    for (const name of [
      'example.org',
      'localhost',
      'a-b.c-d.example',
      '*.example.org',
      `${'a'.repeat(63)}.org`,
      'Web.Example.ORG',
    ]) {
      assert.equal(dnsNameProblem(name), undefined, name);
    }
  });

  it('refuses what a certificate SAN must not hold, saying why', () => {
    const cases: [string, RegExp][] = [
      ['', /must not be empty/],
      [`${'a.'.repeat(127)}ab`, /longer than 253/],
      ['example..org', /empty label/],
      ['.example.org', /empty label/],
      ['example.org.', /empty label/],
      ['-a.org', /inner hyphens/],
      ['a-.org', /inner hyphens/],
      [`${'a'.repeat(64)}.org`, /1-63/],
      ['a_b.org', /letters, digits/],
      ['*', /needs a domain/],
      ['a.*.org', /whole first label/],
      ['*a.org', /whole first label/],
      ['exa mple.org', /letters, digits/],
    ];
    for (const [name, reason] of cases) assert.match(dnsNameProblem(name) ?? 'accepted', reason, JSON.stringify(name));
  });
});

describe('loggableId', () => {
  it('cuts the token out of a join-token agent ID and leaves other IDs alone', () => {
    assert.equal(
      loggableId('spiffe://example.org/spire/agent/join_token/4b0c-secret'),
      'spiffe://example.org/spire/agent/join_token/[redacted]',
    );
    assert.equal(
      loggableId('spiffe://example.org/spire/agent/x509pop/ab12'),
      'spiffe://example.org/spire/agent/x509pop/ab12',
    );
  });
});
