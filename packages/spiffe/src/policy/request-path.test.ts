import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { normalizeRequestTarget } from './request-path.js';

describe('normalizeRequestTarget', () => {
  it('decodes unreserved escapes, merges slashes, removes dot segments; keeps the query', () => {
    const cases: [string, string, string][] = [
      ['/orders/7', '/orders/7', '/orders/7'],
      ['/%61dmin?x=%61', '/admin', '/admin?x=%61'],
      ['//admin//users', '/admin/users', '/admin/users'],
      ['/a/./b/../c', '/a/c', '/a/c'],
      ['/a/..', '/', '/'],
      ['/a/b/.', '/a/b/', '/a/b/'],
      ['/../../etc', '/etc', '/etc'],
      ['/%2e%2e/admin', '/admin', '/admin'],
      ['/x%2fy%3a', '/x%2Fy%3A', '/x%2Fy%3A'],
      ['/p#frag', '/p', '/p'],
      ['*', '*', '*'],
    ];
    for (const [input, path, target] of cases) {
      assert.deepEqual(normalizeRequestTarget(input), { path, target }, input);
    }
  });

  it('takes the path of an absolute-form target and reports its authority', () => {
    assert.deepEqual(normalizeRequestTarget('https://shop.example.org:8443/./a?q'), {
      path: '/a',
      target: '/a?q',
      authority: 'shop.example.org:8443',
    });
  });

  it('refuses authority-form (CONNECT) and garbage targets', () => {
    assert.equal(normalizeRequestTarget('example.org:443'), undefined);
    assert.equal(normalizeRequestTarget(''), undefined);
    assert.equal(normalizeRequestTarget('admin'), undefined);
  });
});
