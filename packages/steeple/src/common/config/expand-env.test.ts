// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${NAME} in plain strings is the config syntax under test
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { expandEnv } from './expand-env.js';

describe('expandEnv', () => {
  const env = { HOME: '/home/s', PORT: '8081', ON: 'true', ZIP: '007' };

  it('expands references in nested string values, not in keys', () => {
    const { value, problems } = expandEnv({ '${HOME}': 'k', list: ['${HOME}/a', 5, { p: 'x${HOME}y' }] }, env);
    assert.deepEqual(value, { '${HOME}': 'k', list: ['/home/s/a', 5, { p: 'x/home/sy' }] });
    assert.deepEqual(problems, []);
  });

  it('types a value that is exactly one reference, as YAML would', () => {
    const { value } = expandEnv({ port: '${PORT}', on: '${ON}', zip: '${ZIP}', text: 'p${PORT}' }, env);
    assert.deepEqual(value, { port: 8081, on: true, zip: '007', text: 'p8081' });
  });

  it('keeps $$ as a literal $ and leaves a bare $NAME alone', () => {
    assert.deepEqual(expandEnv({ a: '$${HOME} $HOME' }, env).value, { a: '${HOME} $HOME' });
  });

  it('reports every unset variable with the key path that used it', () => {
    const { problems } = expandEnv({ a: { b: ['${MISSING}'] }, c: '${ALSO_MISSING}' }, env);
    assert.deepEqual(problems, [
      { path: ['a', 'b', 0], message: 'environment variable MISSING is not set' },
      { path: ['c'], message: 'environment variable ALSO_MISSING is not set' },
    ]);
  });
});
