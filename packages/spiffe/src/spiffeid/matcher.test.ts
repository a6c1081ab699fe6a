import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { matchAny, matchId, matchMemberOf, matchOneOf } from './matcher.js';
import { SpiffeId } from './spiffe-id.js';

const web = SpiffeId.parse('spiffe://example.org/web');
const db = SpiffeId.parse('spiffe://example.org/db');
const other = SpiffeId.parse('spiffe://other.org/web');

describe('matchers', () => {
  it('matchAny matches everything', () => assert.ok(matchAny(other)));
  it('matchId matches one exact ID', () => {
    assert.ok(matchId('spiffe://example.org/web')(web));
    assert.ok(!matchId(web)(other));
  });
  it('matchOneOf matches any listed ID', () => {
    const m = matchOneOf(web, 'spiffe://example.org/db');
    assert.ok(m(web) && m(db) && !m(other));
  });
  it('matchMemberOf matches a trust domain by full name only', () => {
    assert.ok(matchMemberOf('example.org')(web));
    assert.ok(!matchMemberOf('example.org')(other));
    assert.ok(!matchMemberOf('org')(web));
  });
  it('rejects bad IDs at construction', () => {
    assert.throws(() => matchId('spiffe://x/'), { code: 'ERR_SPIFFEID_INVALID' });
  });
});
