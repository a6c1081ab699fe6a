import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger, createSilentLogger, REDACTED, secretCensor } from './logger.js';

/** A logger whose lines are collected, and the collected lines parsed. */
function capture(extra: { redactFields?: readonly string[]; level?: 'debug' | 'info' } = {}) {
  let text = '';
  const destination = new Writable({
    write(chunk, _encoding, done) {
      text += String(chunk);
      done();
    },
  });
  const log = createLogger({ name: 'steeple-test', destination, ...extra });
  return {
    log,
    text: () => text,
    lines: () =>
      text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
  };
}

const SECRETS = {
  privateKey: '-----BEGIN PRIVATE KEY-----MIGHAgEAMBMG',
  private_key: 'pk-snake-case-secret',
  token: 'eyJhbGciOiJFUzI1NiJ9.secret-jwt',
  joinToken: '3f1c7a2e-join-token-secret',
  csr: 'MIIBCSR-secret-bytes',
  password: 'hunter2-secret',
  secret: 'plain-secret-value',
  authorization: 'Bearer secret-bearer',
  svid: 'MIIC-svid-secret',
  connection_string: 'postgres://u:pg-secret@db/steeple',
};

describe('createLogger', () => {
  it('writes JSON lines with the name, a textual level and an ISO time', () => {
    const out = capture();
    out.log.info({ spiffeId: 'spiffe://example.org/web' }, 'signed X509-SVID');
    const [line] = out.lines();
    assert.equal(line.name, 'steeple-test');
    assert.equal(line.level, 'info');
    assert.equal(line.msg, 'signed X509-SVID');
    assert.equal(line.spiffeId, 'spiffe://example.org/web');
    assert.match(line.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('never writes secret values, at the top level, nested, in lists or in child bindings', () => {
    const out = capture();
    out.log.info(SECRETS, 'top level');
    out.log.info(
      { request: { headers: { Authorization: SECRETS.authorization }, body: { csrs: [SECRETS.csr] } } },
      'nested',
    );
    out.log.info({ agents: [{ id: 'a', node: { join_token: SECRETS.joinToken } }] }, 'in a list');
    out.log.child({ joinToken: SECRETS.joinToken, agent: { Private_Key: SECRETS.privateKey } }).info('child');
    out.log.child({ ok: 1 }).child({ password: SECRETS.password }).warn('grandchild');
    const text = out.text();
    for (const [field, value] of Object.entries(SECRETS)) {
      assert.ok(!text.includes(value), `${field} value leaked: ${text}`);
    }
    assert.equal(out.lines().length, 5);
    assert.equal(out.lines()[0].token, REDACTED, 'the field stays, its value is censored');
    assert.equal(out.lines()[2].agents[0].id, 'a', 'other fields are kept');
  });

  it('censors extra field names given by the caller', () => {
    const out = capture({ redactFields: ['x-api-key'] });
    out.log.info({ headers: { 'X-Api-Key': 'k-secret' } }, 'extra');
    assert.ok(!out.text().includes('k-secret'));
  });

  it('does not modify the object that was logged', () => {
    const out = capture();
    const entry = { id: 'e1', credentials: { token: 't-secret' } };
    out.log.info(entry, 'logged');
    assert.equal(entry.credentials.token, 't-secret');
  });

  it('writes errors with their message and stack', () => {
    const out = capture();
    out.log.error({ err: new Error('datastore unreachable') }, 'sync failed');
    const [line] = out.lines();
    assert.equal(line.err.message, 'datastore unreachable');
    assert.match(line.err.stack, /datastore unreachable/);
  });

  it('respects the level', () => {
    const out = capture({ level: 'info' });
    out.log.debug('hidden');
    assert.equal(out.text(), '');
    createSilentLogger().error('nothing happens');
  });
});

describe('secretCensor', () => {
  const censor = secretCensor(['token']);

  it('returns objects without secrets as they are, without copying', () => {
    const value = { a: { b: [1, 2, { c: 'd' }] } };
    assert.equal(censor(value), value);
  });

  it('uses toJSON (SpiffeId, Date) and survives cycles', () => {
    const cyclic: Record<string, unknown> = { token: 't' };
    cyclic.self = cyclic;
    const out = censor(cyclic) as Record<string, unknown>;
    assert.equal(out.token, REDACTED);
    assert.deepEqual(censor({ when: new Date(0) }), { when: '1970-01-01T00:00:00.000Z' });
  });
});
