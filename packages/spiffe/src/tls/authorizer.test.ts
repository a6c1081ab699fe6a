import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AuthorizationError } from '../errors.js';
import { SpiffeId } from '../spiffeid/spiffe-id.js';
import { authorizeAny, authorizeId, authorizeMatching, authorizeMemberOf, authorizeOneOf } from './authorizer.js';

const web = SpiffeId.parse('spiffe://example.org/web');
const db = SpiffeId.parse('spiffe://example.org/db');
const foreign = SpiffeId.parse('spiffe://other.org/web');

describe('authorizers', () => {
  it('authorizeAny allows every verified peer', () => {
    assert.equal(authorizeAny()(foreign, []), undefined);
  });

  it('authorizeId allows exactly one ID and names both in the denial', () => {
    const a = authorizeId('spiffe://example.org/web');
    assert.equal(a(web, []), undefined);
    const err = a(db, []);
    assert.ok(err instanceof AuthorizationError);
    assert.equal(err.code, 'ERR_AUTHORIZATION_DENIED');
    assert.match(err.message, /spiffe:\/\/example\.org\/db is not authorized: expected spiffe:\/\/example\.org\/web/);
  });

  it('authorizeId is not fooled by the same path in another trust domain', () => {
    assert.ok(authorizeId(web)(foreign, []) instanceof AuthorizationError);
  });

  it('authorizeOneOf allows any listed ID and needs at least one', () => {
    const a = authorizeOneOf(web, 'spiffe://example.org/db');
    assert.equal(a(web, []), undefined);
    assert.equal(a(db, []), undefined);
    assert.ok(a(foreign, []) instanceof AuthorizationError);
    assert.throws(() => authorizeOneOf(), TypeError);
  });

  it('authorizeMemberOf allows a whole trust domain only', () => {
    const a = authorizeMemberOf('example.org');
    assert.equal(a(web, []), undefined);
    assert.ok(a(foreign, []) instanceof AuthorizationError);
  });

  it('authorizeMatching uses the predicate, and a throwing predicate denies', () => {
    const a = authorizeMatching((id) => id.path.startsWith('/w'));
    assert.equal(a(web, []), undefined);
    assert.ok(a(db, []) instanceof AuthorizationError);
    const boom = authorizeMatching(() => {
      throw new Error('boom');
    });
    assert.ok(boom(web, []) instanceof AuthorizationError);
  });

  it('invalid IDs are refused when the authorizer is built', () => {
    assert.throws(() => authorizeId('spiffe://Example.org/x'), { code: 'ERR_SPIFFEID_INVALID' });
    assert.throws(() => authorizeMemberOf('Bad TD'), { code: 'ERR_TRUST_DOMAIN_INVALID' });
  });
});
