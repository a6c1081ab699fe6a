import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, formatConfigIssue, SteepleError } from './errors.js';

describe('ConfigError', () => {
  it('is a SteepleError with a stable code, the file and every issue in its message', () => {
    const err = new ConfigError(
      [
        { path: 'server.ca_tll', message: 'unknown key (did you mean "ca_ttl"?)', line: 4, column: 3 },
        { path: 'ca_ttl', message: '"1x" is not a duration such as "90s", "15m", "1h" or "30d"', flag: 'caTTL' },
      ],
      { file: 'server.yaml' },
    );
    assert.ok(err instanceof SteepleError);
    assert.equal(err.name, 'ConfigError');
    assert.equal(err.code, 'ERR_CONFIG_INVALID');
    assert.equal(err.file, 'server.yaml');
    assert.equal(
      err.message,
      'invalid configuration server.yaml (2 problems):\n' +
        '  line 4: server.ca_tll: unknown key (did you mean "ca_ttl"?)\n' +
        '  ca_ttl (flag -caTTL): "1x" is not a duration such as "90s", "15m", "1h" or "30d"',
    );
    assert.ok(Object.isFrozen(err.issues) && Object.isFrozen(err.issues[0]));
  });

  it('formats an issue about the whole file without a path', () => {
    assert.equal(formatConfigIssue({ path: '', message: 'file does not exist' }), 'file does not exist');
  });
});
