import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChunkedScanner } from './chunked-scanner.js';
import {
  HttpParseError,
  parseRequestHead,
  parseRequestHeadBytes,
  parseResponseHead,
  parseResponseHeadBytes,
  type RequestHead,
  responseFraming,
  scanned,
  scanRequestHead,
  scanResponseHead,
} from './message-head.js';
import { normalizeTarget } from './normalize-path.js';

const head = (lines: string[]) => lines.join('\r\n');

describe('parseRequestHead', () => {
  it('reads the request line, headers and framing', () => {
    const h = parseRequestHead(head(['POST /a?b=1 HTTP/1.1', 'Host: shop', 'Content-Length: 5', 'X-Y:  z ']));
    assert.equal(h.method, 'POST');
    assert.equal(h.target, '/a?b=1');
    assert.equal(h.minorVersion, 1);
    assert.deepEqual(h.framing, { kind: 'length', length: 5 });
    assert.deepEqual(h.names, ['host', 'content-length', 'x-y']);
    assert.equal(h.values[2], 'z');
    assert.equal(h.host, 'shop');
    assert.equal(h.wantsClose, false);
  });

  it('knows chunked bodies, Connection: close, HTTP/1.0 and upgrades', () => {
    assert.deepEqual(
      parseRequestHead(head(['PUT / HTTP/1.1', 'host: a', 'transfer-encoding: gzip, chunked'])).framing,
      {
        kind: 'chunked',
      },
    );
    assert.equal(
      parseRequestHead(head(['GET / HTTP/1.1', 'host: a', 'connection: Keep-Alive, close'])).wantsClose,
      true,
    );
    assert.equal(parseRequestHead(head(['GET / HTTP/1.0'])).wantsClose, true);
    assert.equal(parseRequestHead(head(['GET / HTTP/1.0', 'connection: keep-alive'])).wantsClose, false);
    assert.equal(
      parseRequestHead(head(['GET / HTTP/1.1', 'host: a', 'connection: upgrade', 'upgrade: websocket'])).upgrade,
      true,
    );
  });

  it('refuses what could smuggle a request past the proxy (RFC 9112 §6.3, §11.2)', () => {
    const refuses = (lines: string[], why: RegExp) =>
      assert.throws(
        () => parseRequestHead(head(lines)),
        (e: unknown) => e instanceof HttpParseError && why.test(e.message),
      );
    refuses(['POST / HTTP/1.1', 'host: a', 'content-length: 5', 'transfer-encoding: chunked'], /both/);
    refuses(['POST / HTTP/1.1', 'host: a', 'content-length: 5', 'content-length: 6'], /conflicting/);
    refuses(['POST / HTTP/1.1', 'host: a', 'content-length: +5'], /invalid Content-Length/);
    refuses(['POST / HTTP/1.1', 'host: a', 'transfer-encoding: chunked, gzip'], /final chunked/);
    refuses(['GET / HTTP/1.1', 'host: a', ' folded: x'], /folding/);
    refuses(['GET / HTTP/1.1', 'host: a', 'bad\nheader: x'], /bare CR, LF/);
    refuses(['GET / HTTP/1.1', 'host: a', 'bad header: x'], /invalid header name/);
    refuses(['GET / HTTP/1.1'], /missing Host/);
    refuses(['GET / HTTP/1.1', 'host: a', 'host: b'], /more than one Host/);
    refuses(['GET /a b HTTP/1.1', 'host: a'], /request target/);
    assert.throws(
      () => parseRequestHead('GET / HTTP/2.0'),
      (e: unknown) => (e as HttpParseError).status === 505,
    );
  });
});

describe('parseResponseHead and responseFraming', () => {
  it('frames by status, method, Transfer-Encoding and Content-Length', () => {
    const res = (lines: string[]) => parseResponseHead(head(lines));
    assert.deepEqual(responseFraming('GET', res(['HTTP/1.1 200 OK', 'content-length: 3'])), {
      kind: 'length',
      length: 3,
    });
    assert.deepEqual(responseFraming('HEAD', res(['HTTP/1.1 200 OK', 'content-length: 3'])), { kind: 'none' });
    assert.deepEqual(responseFraming('GET', res(['HTTP/1.1 204 No Content'])), { kind: 'none' });
    assert.deepEqual(responseFraming('GET', res(['HTTP/1.1 304 Not Modified', 'content-length: 9'])), { kind: 'none' });
    assert.deepEqual(
      responseFraming('GET', res(['HTTP/1.1 200 OK', 'transfer-encoding: chunked', 'content-length: 9'])),
      {
        kind: 'chunked',
      },
    );
    assert.deepEqual(responseFraming('GET', res(['HTTP/1.1 200 OK'])), { kind: 'close' });
    assert.equal(res(['HTTP/1.0 200 OK']).connectionClose, true);
    assert.throws(() => res(['HTTP/1.1 2xx OK']), HttpParseError);
  });
});

describe('ChunkedScanner', () => {
  const body = Buffer.from('4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\nNEXT');

  it('finds the end of a chunked body with extensions and trailers', () => {
    assert.equal(new ChunkedScanner().scan(body), body.length - 4);
  });

  it('finds it across any split of the stream', () => {
    for (let cut = 1; cut < body.length - 4; cut++) {
      const s = new ChunkedScanner();
      assert.equal(s.scan(body.subarray(0, cut)), -1, `cut ${cut}`);
      assert.equal(s.scan(body.subarray(cut)), body.length - 4 - cut, `cut ${cut}`);
      assert.equal(s.done, true);
    }
  });

  it('refuses malformed framing', () => {
    for (const bad of ['x\r\n', '4\r\nWikiXX', '4\nWiki\r\n', `${'f'.repeat(13)}\r\n`]) {
      assert.throws(() => new ChunkedScanner().scan(Buffer.from(bad)), HttpParseError, bad);
    }
  });
});

describe('normalizeTarget', () => {
  it('leaves normal paths alone and keeps the query', () => {
    assert.deepEqual(normalizeTarget('/a/b?x=1'), { path: '/a/b', target: '/a/b?x=1', changed: false });
  });

  it('removes dot segments, merges slashes, decodes unreserved characters', () => {
    assert.equal(normalizeTarget('/a/./b/../c')?.path, '/a/c');
    assert.equal(normalizeTarget('//admin//x')?.path, '/admin/x');
    assert.equal(normalizeTarget('/%61dmin/%7e')?.path, '/admin/~');
    assert.equal(normalizeTarget('/a%2fb')?.path, '/a%2Fb', 'an encoded slash stays encoded');
    assert.equal(normalizeTarget('/../../etc')?.path, '/etc');
    assert.deepEqual(normalizeTarget('/a/../b?q=/../'), { path: '/b', target: '/b?q=/../', changed: true });
  });

  it('accepts absolute-form, "*" and authority-form targets', () => {
    assert.deepEqual(normalizeTarget('http://shop:80/x?y'), {
      path: '/x',
      target: '/x?y',
      changed: true,
      authority: 'shop:80',
    });
    assert.equal(normalizeTarget('*')?.path, '*');
    assert.equal(normalizeTarget('shop:443')?.path, '');
    assert.equal(normalizeTarget('ftp://x'), undefined);
  });
});

describe('parseResponseHeadBytes', () => {
  const facts = (text: string) => {
    try {
      const r = parseResponseHead(text);
      return {
        status: r.status,
        minorVersion: r.minorVersion,
        connectionClose: r.connectionClose,
        contentLength: r.contentLength,
        chunked: r.chunked,
      };
    } catch (err) {
      return { error: (err as HttpParseError).message, status: (err as HttpParseError).status };
    }
  };
  const fromBytes = (text: string) => {
    try {
      const b = Buffer.from(`${text}\r\n\r\nbody`, 'latin1');
      return { ...parseResponseHeadBytes(b, b.indexOf('\r\n\r\n')) };
    } catch (err) {
      return { error: (err as HttpParseError).message, status: (err as HttpParseError).status };
    }
  };
  const heads = [
    'HTTP/1.1 200 OK',
    'HTTP/1.1 200',
    'HTTP/1.0 200 OK',
    'HTTP/1.0 200 OK\r\nConnection: keep-alive',
    'HTTP/1.1 200 OK\r\ncontent-length: 3',
    'HTTP/1.1 204 No Content\r\nX-A: 1\r\nCONTENT-LENGTH: 0',
    'HTTP/1.1 200 OK\r\nContent-Length: 3, 3',
    'HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 4',
    'HTTP/1.1 200 OK\r\nContent-Length: \u00a03\u00a0',
    'HTTP/1.1 200 OK\r\nContent-Length: x',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip',
    'HTTP/1.1 200 OK\r\nconnection: Keep-Alive, close',
    'HTTP/1.1 200 OK\r\nx: a\rb',
    'HTTP/1.1 200 OK\r\nx: a\nb',
    'HTTP/1.1 200 OK\r\nx: a\0b',
    'HTTP/1.1 200 OK\r\n folded: x',
    'HTTP/1.1 200 OK\r\n: novalue',
    'HTTP/1.1 200 OK\r\nno colon',
    'HTTP/1.1 200 OK\r\nbad name: x',
    'HTTP/1.1 200 OK\r\nbad\u00e9: x',
    'HTTP/1.1 200 OK\r\nx: y\r',
    'HTTP/1.1 099 Low',
    'HTTP/1.1 20x OK',
    'HTTP/1.1 20',
    'HTTP/2.0 200 OK',
    'HTTP/1.1  200 OK',
    'http/1.1 200 OK',
    '',
  ];

  it('agrees with parseResponseHead on valid and invalid heads', () => {
    for (const h of heads) assert.deepEqual(fromBytes(h), facts(h), JSON.stringify(h));
  });
});

describe('parseRequestHeadBytes', () => {
  const view = (h: RequestHead) => ({
    method: h.method,
    target: h.target,
    minorVersion: h.minorVersion,
    framing: h.framing,
    wantsClose: h.wantsClose,
    upgrade: h.upgrade,
    host: h.host,
    lines: h.lines,
    names: h.names,
    values: h.values,
    has: ['host', 'connection', 'x-forwarded-client-cert', 'content-length', 'x'].map((n) => h.hasHeader(n)),
  });
  const outcome = (parse: () => RequestHead) => {
    try {
      return view(parse());
    } catch (err) {
      return { error: (err as HttpParseError).message, status: (err as HttpParseError).status };
    }
  };
  // One connection's remembered strings, shared by every head checked here: a head gets
  // the same target and Host whether or not they repeat the previous head's.
  const strings = { target: '', host: '' };
  const same = (text: string) => {
    const b = Buffer.from(`xx${text}\r\n\r\nbody`, 'latin1');
    const expected = outcome(() => parseRequestHead(text));
    assert.deepEqual(
      outcome(() => parseRequestHeadBytes(b, 2, b.indexOf('\r\n\r\n', 2))),
      expected,
      JSON.stringify(text),
    );
    assert.deepEqual(
      outcome(() => scanRequestHead(b, 2, b.length, strings) as RequestHead),
      expected,
      `${JSON.stringify(text)} with remembered strings`,
    );
  };
  const heads = [
    'GET / HTTP/1.1\r\nHost: a',
    'GET /api/items HTTP/1.1\r\nhost: bench\r\nuser-agent: steeple-bench',
    'POST /a?b=1 HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\nX-Y:  z ',
    'PUT / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: gzip, chunked',
    'GET / HTTP/1.1\r\nhost: a\r\nconnection: Keep-Alive, close',
    'GET / HTTP/1.0',
    'GET / HTTP/1.0\r\nconnection: keep-alive',
    'GET / HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket',
    'GET / HTTP/1.1\r\nhost: a\r\nX-Forwarded-Client-Cert: By=x;URI=y\r\nx: 1',
    'POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\ntransfer-encoding: chunked',
    'POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\ncontent-length: 6',
    'POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5, 5',
    'POST / HTTP/1.1\r\nhost: a\r\ncontent-length: +5',
    'POST / HTTP/1.1\r\nhost: a\r\ncontent-length: \u00a05',
    'POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked, gzip',
    'GET / HTTP/1.1\r\nhost: a\r\n folded: x',
    'GET / HTTP/1.1\r\nhost: a\r\nbad\nheader: x',
    'GET / HTTP/1.1\r\nhost: a\r\nbad\rheader: x',
    'GET / HTTP/1.1\r\nhost: a\r\nbad\0header: x',
    'GET / HTTP/1.1\r\nhost: a\r\nbad header: x',
    'GET / HTTP/1.1\r\nhost: a\r\n: x',
    'GET / HTTP/1.1\r\nhost: a\r\nnocolon',
    'GET / HTTP/1.1\r\nhost: a\r\nx\u00e9: 1',
    'GET / HTTP/1.1',
    'GET / HTTP/1.1\r\nhost: a\r\nhost: b',
    'GET /a b HTTP/1.1\r\nhost: a',
    'GET /a\u00a0b HTTP/1.1\r\nhost: a',
    'GET /a\u0085b HTTP/1.1\r\nhost: a',
    'GET /a\x7fb HTTP/1.1\r\nhost: a',
    'GET /a\rb HTTP/1.1\r\nhost: a',
    'GET  HTTP/1.1\r\nhost: a',
    'GET / HTTP/2.0\r\nhost: a',
    'GET / HTTP/1.1x\r\nhost: a',
    'GET / http/1.1\r\nhost: a',
    'GET / HTTP/1.1\r',
    'GE\u00e9T / HTTP/1.1\r\nhost: a',
    ' GET / HTTP/1.1\r\nhost: a',
    'GET/ HTTP/1.1\r\nhost: a',
    'GET',
    'get / HTTP/1.1\r\nHOST: a\r\nCONNECTION: close',
    'OPTIONS * HTTP/1.1\r\nhost: a',
    'CONNECT a:443 HTTP/1.1\r\nhost: a:443',
    'PATCH http://a/b HTTP/1.1\r\nhost: a\r\ncontent-length: 0',
    'GET / HTTP/1.1\r\nhost:\r\nx:',
    'GET / HTTP/1.1\r\nhostx: a\r\nhost: b',
    'GET / HTTP/1.1\r\nhost: a\r\nx-forwarded-client-certx: 1',
    'GET / HTTP/1.1\r\nhost: \u00a0a\u000b\t ',
    'GET / HTTP/1.1\r\nhost: \u000c\u0085a\u0085',
    'GET / HTTP/1.1\r\nhost: a ',
    'GET / HTTP/1.1\r\nhost: A',
    'GET /x HTTP/1.1\r\nhost: a',
    'GET /x HTTP/1.1\r\nhost: a',
  ];

  it('agrees with parseRequestHead on valid and invalid heads', () => {
    for (const h of heads) same(h);
  });

  it('agrees with parseRequestHead on mutated heads', () => {
    // Deterministic mutations of the heads above: one byte replaced, inserted or removed.
    const alphabet = [0x00, 0x09, 0x0a, 0x0d, 0x20, 0x3a, 0x2c, 0x41, 0x61, 0x7f, 0xa0, 0xe9, 0x30, 0x2b];
    let seed = 7;
    const next = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let k = 0; k < 4000; k++) {
      const base = heads[next(heads.length)] as string;
      const at = next(base.length + 1);
      const ch = String.fromCharCode(alphabet[next(alphabet.length)] as number);
      const op = next(3);
      const text =
        op === 0
          ? base.slice(0, at) + ch + base.slice(at + 1)
          : op === 1
            ? base.slice(0, at) + ch + base.slice(at)
            : base.slice(0, at) + base.slice(at + 1);
      if (text.includes('\r\n\r\n') || text.endsWith('\r\n')) continue; // a head never contains its own end
      same(text);
    }
  });
});

describe('scanRequestHead and scanResponseHead: finding the end while parsing', () => {
  const requests = [
    'GET /api/items HTTP/1.1\r\nhost: bench\r\nuser-agent: steeple-bench',
    'POST /a?b=1 HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\nX-Y:  z ',
    'GET / HTTP/1.0',
    'GET / HTTP/1.1\r\nhost: a\r\nbad\rheader: x',
    'GET / HTTP/1.1\r\nhost: a\r\nhost: b',
    'GET /a b HTTP/1.1\r\nhost: a',
  ];
  const responses = [
    'HTTP/1.1 200 OK\r\ncontent-length: 3',
    'HTTP/1.1 200 OK\r\nContent-Length: 3, 3',
    'HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 4',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip',
    'HTTP/1.1 20',
    'HTTP/1.1 200 OK\r\nx: a\nb',
  ];
  const result = (f: () => unknown) => {
    try {
      const r = f();
      return r === undefined ? 'incomplete' : 'parsed';
    } catch (err) {
      return `error: ${(err as HttpParseError).message}`;
    }
  };

  it('a complete request head gives what parseRequestHeadBytes gives, with its end', () => {
    for (const text of requests) {
      const b = Buffer.from(`xx${text}\r\n\r\nbody`, 'latin1');
      const end = b.indexOf('\r\n\r\n', 2);
      const whole = result(() => parseRequestHeadBytes(b, 2, end));
      assert.equal(
        result(() => scanRequestHead(b, 2, b.length)),
        whole,
        JSON.stringify(text),
      );
      if (whole === 'parsed') assert.equal(scanned.headEnd, end);
    }
  });

  it('every prefix of a request head is incomplete or fails as the whole head does', () => {
    for (const text of requests) {
      const b = Buffer.from(`${text}\r\n\r\n`, 'latin1');
      const whole = result(() => scanRequestHead(b, 0, b.length));
      for (let n = 0; n < b.length; n++) {
        const prefix = result(() => scanRequestHead(b, 0, n));
        assert.ok(prefix === 'incomplete' || prefix === whole, `${JSON.stringify(text)} cut at ${n}: ${prefix}`);
      }
    }
  });

  it('a complete response head gives what parseResponseHeadBytes gives, with its end', () => {
    for (const text of responses) {
      const b = Buffer.from(`${text}\r\n\r\nbody`, 'latin1');
      const end = b.indexOf('\r\n\r\n');
      let whole: unknown;
      let scannedFacts: unknown;
      try {
        whole = { ...parseResponseHeadBytes(b, end) };
      } catch (err) {
        whole = (err as Error).message;
      }
      try {
        scannedFacts = { ...scanResponseHead(b, b.length) };
        assert.equal(scanned.headEnd, end);
      } catch (err) {
        scannedFacts = (err as Error).message;
      }
      assert.deepEqual(scannedFacts, whole, JSON.stringify(text));
    }
  });

  it('every prefix of a response head is incomplete or fails as the whole head does', () => {
    for (const text of responses) {
      const b = Buffer.from(`${text}\r\n\r\n`, 'latin1');
      const whole = result(() => scanResponseHead(b, b.length));
      for (let n = 0; n < b.length; n++) {
        const prefix = result(() => scanResponseHead(b, n));
        assert.ok(prefix === 'incomplete' || prefix === whole, `${JSON.stringify(text)} cut at ${n}: ${prefix}`);
      }
    }
  });
});
