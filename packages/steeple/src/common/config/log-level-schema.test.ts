import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { logLevelSchema } from './log-level-schema.js';

describe('logLevelSchema', () => {
  it('accepts SPIRE-style upper-case levels and outputs pino level names', () => {
    assert.equal(logLevelSchema.parse('DEBUG'), 'debug');
    assert.equal(logLevelSchema.parse('Warn'), 'warn');
    assert.equal(logLevelSchema.safeParse('verbose').success, false);
  });
});
