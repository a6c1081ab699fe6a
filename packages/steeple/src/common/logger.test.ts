import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger, createSilentLogger, type LogLevel, REDACTED, secretCensor } from './logger.js';

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

/**
 * A logger writing into a plain `{ write }` destination, and its lines with the time and pid
 * replaced (`"time":"T"`, `"pid":P`), for byte-for-byte comparison.
 */
function raw(level: LogLevel = 'trace') {
  const chunks: string[] = [];
  const log = createLogger({ name: 'n', level, destination: { write: (s: string) => chunks.push(s) } });
  const lines = () =>
    chunks.map((c) => c.replace(/"time":"[^"]*"/, '"time":"T"').replace(`"pid":${process.pid},`, '"pid":P,'));
  return { log, lines };
}

/** The start of every line of `raw()`, after the level. */
const HEAD = `,"time":"T","pid":P,"hostname":${JSON.stringify(hostname())},"name":"n"`;

/** An error with a fixed stack, so that lines can be compared exactly. */
function fixedError<E extends Error>(err: E): E {
  err.stack = `${err.name}: ${err.message}\n    at here`;
  return err;
}

describe('createLogger output (byte-compatible with the pino 10 setup it replaced)', () => {
  it('writes the message alone, after an object, or the object alone', () => {
    const { log, lines } = raw();
    log.info('plain "quoted" \\ message');
    log.info({ a: 1, b: 'two', c: [1, null, undefined], d: undefined, e: () => 1, n: Number.NaN }, 'with object');
    log.info({ only: true });
    log.info({ msg: 'msg in object' });
    log.info(null, 'null object');
    log.info(undefined, 'undefined object');
    assert.deepEqual(lines(), [
      `{"level":"info"${HEAD},"msg":"plain \\"quoted\\" \\\\ message"}\n`,
      `{"level":"info"${HEAD},"a":1,"b":"two","c":[1,null,null],"n":null,"msg":"with object"}\n`,
      `{"level":"info"${HEAD},"only":true}\n`,
      `{"level":"info"${HEAD},"msg":"msg in object"}\n`,
      `{"level":"info"${HEAD},"msg":"null object"}\n`,
      `{"level":"info"${HEAD},"msg":"undefined object"}\n`,
    ]);
  });

  it('writes Dates, Buffers, Maps, typed arrays and BigInts as pino did', () => {
    const { log, lines } = raw();
    log.info({ date: new Date(0), buf: Buffer.from('hi'), map: new Map([['a', 1]]), u8: new Uint8Array([1, 2]) }, 'b');
    log.info({ big: 10n, inner: { list: [1n], z: 1, a: 2 } }, 'bigint');
    assert.deepEqual(lines(), [
      `{"level":"info"${HEAD},"date":"1970-01-01T00:00:00.000Z","buf":{"type":"Buffer","data":[104,105]},"map":{},"u8":{"0":1,"1":2},"msg":"b"}\n`,
      // JSON.stringify throws on a BigInt; the fallback sorts keys, as safe-stable-stringify did.
      `{"level":"info"${HEAD},"big":10,"inner":{"a":2,"list":[1],"z":1},"msg":"bigint"}\n`,
    ]);
  });

  it('writes circular references as "[Circular]", with keys sorted, depth and breadth limited', () => {
    const { log, lines } = raw();
    const circ: Record<string, unknown> = { name: 'c', z: 1, a: 2 };
    circ.self = circ;
    const list: unknown[] = [1];
    list.push(list);
    log.warn({ circ, list, deep: { a: { b: { c: { d: { e: { f: 1 } } } } } }, other: { ok: true } }, 'circular');
    log.warn({ both: { long: Array.from({ length: 103 }, (_, i) => i), circ } }, 'long');
    const numbers = Array.from({ length: 100 }, (_, i) => i).join(',');
    assert.deepEqual(lines(), [
      `{"level":"warn"${HEAD},"circ":{"a":2,"name":"c","self":"[Circular]","z":1},"list":[1,"[Circular]"],"deep":{"a":{"b":{"c":{"d":{"e":{"f":1}}}}}},"other":{"ok":true},"msg":"circular"}\n`,
      // Only a value JSON.stringify fails on takes the fallback, with its limits.
      `{"level":"warn"${HEAD},"both":{"circ":{"a":2,"name":"c","self":"[Circular]","z":1},"long":[${numbers},"... 2 items not stringified"]},"msg":"long"}\n`,
    ]);
  });

  it('serializes an Error under err with causes, code and own fields, and defaults msg to its message', () => {
    const { log, lines } = raw();
    const inner = fixedError(new TypeError('inner'));
    const err = fixedError(new Error('outer', { cause: inner })) as Error & { code?: string; details?: object };
    err.code = 'ERR_X';
    err.details = { token: 't', n: 1 };
    const e = `{"type":"Error","message":"outer: inner","stack":"Error: outer\\n    at here\\ncaused by: TypeError: inner\\n    at here","code":"ERR_X","details":{"token":"t","n":1}}`;
    log.error(err);
    log.error(err, 'with message');
    log.error({ err, token: 'x' }, 'err field');
    log.error({ err });
    log.error({ error: fixedError(new Error('other key')) }, 'not err');
    log.error(fixedError(new Error('string cause', { cause: 'because' })));
    log.error(fixedError(new AggregateError([fixedError(new RangeError('a1'))], 'agg')));
    assert.deepEqual(lines(), [
      `{"level":"error"${HEAD},"err":${e},"msg":"outer"}\n`,
      `{"level":"error"${HEAD},"err":${e},"msg":"with message"}\n`,
      `{"level":"error"${HEAD},"err":${e},"token":"[redacted]","msg":"err field"}\n`,
      `{"level":"error"${HEAD},"err":${e},"msg":"outer"}\n`,
      `{"level":"error"${HEAD},"error":{},"msg":"not err"}\n`,
      `{"level":"error"${HEAD},"err":{"type":"Error","message":"string cause","stack":"Error: string cause\\n    at here"},"msg":"string cause"}\n`,
      `{"level":"error"${HEAD},"err":{"type":"AggregateError","message":"agg","stack":"AggregateError: agg\\n    at here","aggregateErrors":[{"type":"RangeError","message":"a1","stack":"RangeError: a1\\n    at here"}]},"msg":"agg"}\n`,
    ]);
  });

  it('writes child bindings after the parent’s, censored, before the record’s fields', () => {
    const { log, lines } = raw();
    const child = log.child({ component: 'ca', token: 'secret', nested: { password: 'p', ok: 1 }, u: undefined });
    const grandchild = child.child({ rpc: 'Mint' });
    child.info('child');
    grandchild.warn({ extra: 1 }, 'grandchild');
    const bound = `,"component":"ca","token":"[redacted]","nested":{"password":"[redacted]","ok":1}`;
    assert.deepEqual(lines(), [
      `{"level":"info"${HEAD}${bound},"msg":"child"}\n`,
      `{"level":"warn"${HEAD}${bound},"rpc":"Mint","extra":1,"msg":"grandchild"}\n`,
    ]);
  });

  it('filters by level; children follow their parent’s level until given their own', () => {
    const { log, lines } = raw('info');
    const child = log.child({ c: 1 });
    const grandchild = child.child({ g: 1 });
    log.debug('hidden');
    log.level = 'warn';
    grandchild.info('hidden: the root is at warn');
    assert.equal(grandchild.level, 'warn');
    assert.equal(grandchild.isLevelEnabled('info'), false);
    child.level = 'trace';
    grandchild.trace('shown: the child is at trace');
    log.info('hidden');
    log.level = 'silent';
    log.fatal('hidden');
    log.silent('never');
    assert.deepEqual(lines(), [`{"level":"trace"${HEAD},"c":1,"g":1,"msg":"shown: the child is at trace"}\n`]);
    assert.deepEqual(
      ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'nope'].map((l) => child.isLevelEnabled(l)),
      [true, true, true, true, true, true, false],
    );
    assert.equal(log.isLevelEnabled('fatal'), false);
    assert.throws(() => {
      log.level = 'loud' as LogLevel;
    }, /unknown level loud/);
  });

  it('flush() calls back, and createSilentLogger() writes nothing', () => {
    const { log } = raw();
    let called = false;
    log.flush(() => {
      called = true;
    });
    assert.equal(called, true);
    const silent = createSilentLogger();
    assert.equal(silent.level, 'silent');
    assert.equal(silent.isLevelEnabled('fatal'), false);
  });
});

describe('createLogger to standard output', () => {
  it('loses no line on process.exit(), even through a pipe that is full for a while', async () => {
    // The child logs ~1 MB (far more than a pipe buffers) and exits at once; we read late.
    const script = `
      const { createLogger } = await import(${JSON.stringify(new URL('./logger.ts', import.meta.url).href)});
      const log = createLogger({ name: 'exit-test' });
      for (let i = 0; i < 3000; i++) log.info({ i, pad: 'x'.repeat(300) }, 'line');
      process.exit(0);`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '--eval', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    child.stdout.pause();
    await new Promise((resolve) => setTimeout(resolve, 500));
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stdout.resume();
    const code = await new Promise((resolve) => child.on('close', resolve));
    assert.equal(code, 0);
    const lines = out.trimEnd().split('\n');
    assert.equal(lines.length, 3000);
    assert.deepEqual(
      lines.map((l) => JSON.parse(l).i),
      Array.from({ length: 3000 }, (_, i) => i),
    );
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
