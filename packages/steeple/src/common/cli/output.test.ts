import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Command, InvalidArgumentError } from 'commander';
import { createOutputOption, formatKeyValues, formatTable, parseOutputFormat, toJson, writeResult } from './output.js';

function collector() {
  let text = '';
  return {
    out: {
      write: (s: string) => {
        text += s;
      },
    },
    text: () => text,
  };
}

describe('parseOutputFormat', () => {
  it("accepts SPIRE's pretty and json, and text as another word for pretty", () => {
    assert.equal(parseOutputFormat('json'), 'json');
    assert.equal(parseOutputFormat('JSON'), 'json');
    assert.equal(parseOutputFormat('pretty'), 'pretty');
    assert.equal(parseOutputFormat('text'), 'pretty');
    assert.throws(() => parseOutputFormat('yaml'), InvalidArgumentError);
  });

  it('gives every command the same -output option, defaulting to pretty', () => {
    const parse = (args: string[]) =>
      new Command('x').addOption(createOutputOption()).parse(args, { from: 'user' }).opts();
    assert.deepEqual(parse([]), { output: 'pretty' });
    assert.deepEqual(parse(['--output', 'json']), { output: 'json' });
  });
});

describe('writeResult', () => {
  const entry = { id: 'e1', spiffeId: 'spiffe://example.org/web', selectors: ['unix:uid:1000'] };

  it('prints JSON for -output json', () => {
    const c = collector();
    writeResult(entry, { format: 'json', pretty: () => 'unused', out: c.out });
    assert.deepEqual(JSON.parse(c.text()), entry);
    assert.ok(c.text().endsWith('}\n'));
  });

  it('prints the human text otherwise, ending in one newline', () => {
    const c = collector();
    writeResult(entry, { format: 'pretty', pretty: (e) => `Entry ID : ${e.id}`, out: c.out });
    assert.equal(c.text(), 'Entry ID : e1\n');
  });
});

describe('toJson', () => {
  it('writes bigints as strings, bytes as base64, Maps and Sets as objects and lists', () => {
    const value = {
      n: 10n,
      der: Buffer.from([1, 2, 3]),
      raw: new Uint8Array([255]),
      m: new Map([['a', 1]]),
      s: new Set(['x']),
    };
    assert.deepEqual(JSON.parse(toJson(value)), { n: '10', der: 'AQID', raw: '/w==', m: { a: 1 }, s: ['x'] });
  });
});

describe('formatKeyValues', () => {
  it('lines up the colons, repeats a label per value as SPIRE does, and skips absent values', () => {
    const text = formatKeyValues([
      ['Entry ID', 'e1'],
      ['SPIFFE ID', 'spiffe://example.org/web'],
      ['Selector', ['unix:uid:1000', 'unix:gid:0']],
      ['Hint', undefined],
      ['X509-SVID TTL', 3600],
      ['DNS name', []],
    ]);
    assert.equal(
      text,
      [
        'Entry ID      : e1',
        'SPIFFE ID     : spiffe://example.org/web',
        'Selector      : unix:uid:1000',
        'Selector      : unix:gid:0',
        'X509-SVID TTL : 3600',
      ].join('\n'),
    );
  });
});

describe('formatTable', () => {
  it('pads columns to their widest cell without trailing blanks', () => {
    const text = formatTable(
      ['ID', 'SPIFFE ID', 'EXPIRES'],
      [
        ['a1', 'spiffe://example.org/spire/agent/join_token/x', '2030-01-01'],
        ['b22', 'spiffe://example.org/n', ''],
      ],
    );
    assert.equal(
      text,
      [
        'ID   SPIFFE ID                                      EXPIRES',
        'a1   spiffe://example.org/spire/agent/join_token/x  2030-01-01',
        'b22  spiffe://example.org/n',
      ].join('\n'),
    );
  });
});
