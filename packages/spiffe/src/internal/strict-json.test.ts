import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JsonSyntaxError, parseStrictJson, stringifyJson } from './strict-json.js';

function fails(input: string | Uint8Array, pattern: RegExp, options = {}): JsonSyntaxError {
  let caught: unknown;
  try {
    parseStrictJson(input, options);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof JsonSyntaxError, `expected JsonSyntaxError, got ${String(caught)}`);
  assert.match(caught.message, pattern);
  return caught;
}

describe('parseStrictJson', () => {
  it('parses what JSON.parse parses, to the same values', () => {
    const samples = [
      '{"a":[1,2.5,-3e2,true,false,null,"x\\u00e9\\n\\"\\\\\\/"],"b":{"c":{}}, "d" : [ ] }',
      '"plain"',
      '0',
      '-0.5E+3',
      ' \t\r\n[1]\n',
      '"\\ud83d\\ude00 surrogate pair"',
    ];
    for (const s of samples) assert.deepEqual(parseStrictJson(s), JSON.parse(s), s);
  });

  it('B-8: rejects duplicate member names and names the position', () => {
    const err = fails('{"trust_domains":{"a":{},"a":{}}}', /duplicate member name "a" at line 1 column 26/);
    assert.equal(err.position, 25);
  });

  it('rejects duplicates that differ only in escaping', () => {
    fails('{"ab":1,"\\u0061b":2}', /duplicate member name "ab"/);
  });

  it('keeps "__proto__" as an ordinary member without touching the prototype', () => {
    const v = parseStrictJson('{"__proto__":{"polluted":true},"x":1}') as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(v), Object.prototype);
    assert.deepEqual(Object.keys(v), ['__proto__', 'x']);
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  });

  it('B-3: integers above 2^53 become exact bigints; safe integers stay numbers', () => {
    const v = parseStrictJson('[9007199254740991, 9007199254740993, -9007199254740993, 18446744073709551615, 1.5]');
    assert.deepEqual(v, [9007199254740991, 9007199254740993n, -9007199254740993n, 18446744073709551615n, 1.5]);
  });

  it('returns integers of the named members as bigint, always', () => {
    const v = parseStrictJson('{"spiffe_sequence":1,"other":1,"n":{"spiffe_sequence":2.5}}', {
      bigintMembers: new Set(['spiffe_sequence']),
    });
    assert.deepEqual(v, { spiffe_sequence: 1n, other: 1, n: { spiffe_sequence: 2.5 } });
  });

  it('rounds large integers like JSON.parse when asked to', () => {
    assert.deepEqual(parseStrictJson('[9007199254740993]', { largeIntegers: 'number' }), [9007199254740992]);
  });

  it('rejects grammar errors with a position', () => {
    fails('', /expected a value at line 1 column 1/);
    fails('{"a":1,}', /expected a member name/);
    fails('[1,]', /expected a value/);
    fails('[1 2]', /expected "," or "]"/);
    fails('{"a" 1}', /expected ":"/);
    fails('{a:1}', /expected a member name/);
    fails('01', /unexpected data after/);
    fails('1.', /digit after "."/);
    fails('1e', /digit in the exponent/);
    fails('-', /expected a digit/);
    fails('+1', /expected a value/);
    fails('NaN', /expected a value/);
    fails('tru', /expected a value/);
    fails('"abc', /unterminated string/);
    fails('"a\tb"', /control character/);
    fails('"\\x"', /invalid escape/);
    fails('"\\u12G4"', /invalid \\u escape/);
    fails('{}{}', /unexpected data after/);
    fails('[1]\n x', /line 2 column 2/);
  });

  it('rejects numbers a double cannot hold rather than returning Infinity', () => {
    fails('1e400', /out of range/);
    fails(`[${'9'.repeat(1001)}]`, /number literal longer than 1000 characters at line 1 column 2/);
  });

  it('limits input size before looking at it', () => {
    fails('x'.repeat(101), /more than the limit of 100/, { maxLength: 100 });
    fails(new Uint8Array(101), /more than the limit of 100/, { maxLength: 100 });
  });

  it('limits nesting depth (no stack overflow on deep input)', () => {
    fails('['.repeat(65) + ']'.repeat(65), /nesting deeper than 64 levels/);
    assert.doesNotThrow(() => parseStrictJson('['.repeat(64) + ']'.repeat(64)));
    fails('['.repeat(1_000_000), /nesting deeper/);
    fails('{"a":'.repeat(100_000), /nesting deeper/);
  });

  it('decodes bytes as strict UTF-8', () => {
    assert.deepEqual(parseStrictJson(Buffer.from('{"é":1}')), { é: 1 });
    fails(Uint8Array.of(0x22, 0xff, 0x22), /not valid UTF-8/);
  });
});

describe('stringifyJson', () => {
  it('writes bigints as exact integer literals and round-trips through the parser', () => {
    const doc = { keys: [], spiffe_sequence: 18446744073709551615n, hint: 300, skip: undefined };
    const text = stringifyJson(doc);
    assert.equal(text, '{"keys":[],"spiffe_sequence":18446744073709551615,"hint":300}');
    assert.deepEqual(parseStrictJson(text), { keys: [], spiffe_sequence: 18446744073709551615n, hint: 300 });
  });

  it('escapes strings like JSON.stringify', () => {
    const v = { 'a"b': ['\n', '\u2028', 'é'] };
    assert.equal(stringifyJson(v), JSON.stringify(v));
  });
});
