import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { closestMatch, editDistance } from './did-you-mean.js';

describe('editDistance', () => {
  it('counts insertions, deletions, substitutions and neighbour swaps as one edit each', () => {
    assert.equal(editDistance('ca_ttl', 'ca_ttl'), 0);
    assert.equal(editDistance('ca_tll', 'ca_ttl'), 1);
    assert.equal(editDistance('trust_domian', 'trust_domain'), 1, 'swap');
    assert.equal(editDistance('data_di', 'data_dir'), 1);
    assert.equal(editDistance('', 'abc'), 3);
    assert.equal(editDistance('kitten', 'sitting'), 3);
  });
});

describe('closestMatch', () => {
  const keys = ['trust_domain', 'data_dir', 'ca_ttl', 'bind_port', 'bind_address'];

  it('suggests the nearest key for a plausible typo', () => {
    assert.equal(closestMatch('ca_tll', keys), 'ca_ttl');
    assert.equal(closestMatch('trustDomain', keys), 'trust_domain', 'the camelCase spelling of a key');
  });

  it('ignores case and says nothing when no key is close', () => {
    assert.equal(closestMatch('Data_Dir', keys), 'data_dir');
    assert.equal(closestMatch('log_format', keys), undefined);
    assert.equal(closestMatch('x', []), undefined);
  });
});
