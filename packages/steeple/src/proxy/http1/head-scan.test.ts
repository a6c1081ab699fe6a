import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { headScanAvailable, scanRequestWords, scanResponseWords, withoutHeadScan } from './head-scan.js';
import { HEAD_SCAN_SOURCE_SHA256 } from './head-scan-wasm.js';
import {
  type HttpParseError,
  type RequestHead,
  type ResponseFacts,
  scanned,
  scanRequestHead,
  scanResponseHead,
} from './message-head.js';

const bytes = (text: string) => Buffer.from(text, 'latin1');

/** What a scan gives, comparable with deepEqual: the head's facts and end, "incomplete", or the error. */
function requestOutcome(buf: Buffer, start: number, limit: number, strings?: { target: string; host: string }) {
  try {
    const h = scanRequestHead(buf, start, limit, strings) as RequestHead | undefined;
    if (h === undefined) return 'incomplete';
    return {
      end: scanned.headEnd,
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
      has: ['host', 'connection', 'content-length', 'x-forwarded-client-cert', 'x'].map((n) => h.hasHeader(n)),
    };
  } catch (err) {
    return { error: (err as HttpParseError).message, status: (err as HttpParseError).status };
  }
}

function responseOutcome(buf: Buffer, limit: number) {
  try {
    const f = scanResponseHead(buf, limit) as ResponseFacts | undefined;
    return f === undefined ? 'incomplete' : { end: scanned.headEnd, ...f };
  } catch (err) {
    return { error: (err as HttpParseError).message, status: (err as HttpParseError).status };
  }
}

/** A deterministic pseudo-random sequence (the same heads on every run). */
function random(seed: number): (n: number) => number {
  let x = seed;
  return (n) => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x % n;
  };
}

const REQUESTS = [
  'GET /api/items HTTP/1.1\r\nhost: bench\r\nuser-agent: steeple-bench',
  'POST /orders?id=7&x=%41 HTTP/1.1\r\nHost:  shop.example:8443 \r\nContent-Type: application/json\r\nContent-Length: 17',
  'PUT /a HTTP/1.1\r\nHOST: a\r\nTransfer-Encoding: gzip, chunked\r\nX-Trace_Id.2: 00-abc-01',
  'GET / HTTP/1.0\r\nConnection: keep-alive\r\nX-A:\t tab and spaces \t',
  'GET /chat HTTP/1.1\r\nHost: c\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZQ==',
  'GET /x HTTP/1.1\r\nhost: a\r\nhost: b',
  'GET /x HTTP/1.1\r\nx-forwarded-client-cert: By=spiffe://a/b;URI=spiffe://c/d\r\nHost: h',
  'DELETE /very/long/path/with/many/segments/and/more/of/them/than/eight/bytes HTTP/1.1\r\nhost: h\r\ncookie: a=1; b=2; c=3; d=4; e=5; f=6; g=7; h=8',
  'GET /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\nConnection: close',
  'GET /x HTTP/1.1\r\nHost: h\r\ncontent-length: 3\r\ncontent-length: 4',
  'get /lower HTTP/1.1\r\nhost: a',
  'GET /x HTTP/1.2\r\nhost: a',
  'GET /é HTTP/1.1\r\nhost: a',
];

const RESPONSES = [
  'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 23',
  'HTTP/1.1 200 OK\r\nDate: Wed, 25 Nov 2026 01:00:00 GMT\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked',
  'HTTP/1.0 200 OK\r\nContent-Length: 5',
  'HTTP/1.1 204 No Content\r\nX-Request-Id: 7\r\nCONTENT-LENGTH: 0',
  'HTTP/1.1 200 OK\r\nContent-Length: 3, 3',
  'HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 4',
  'HTTP/1.1 200 OK\r\nContent-Length:  12 \t',
  'HTTP/1.1 200 OK\r\nContent-Length: 99999999999',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9',
  'HTTP/1.1 304 Not Modified\r\nETag: "abc"\r\nCache-Control: max-age=60, must-revalidate',
  'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade',
  'HTTP/1.1 200',
  'HTTP/1.1 099 Low',
  'HTTP/1.1 200 OK\r\nx: a\rb',
];

/** One byte replaced, inserted or removed, from an alphabet of the bytes parsers trip on. */
function mutate(text: string, next: (n: number) => number): string {
  const alphabet = [0x00, 0x09, 0x0a, 0x0d, 0x20, 0x3a, 0x2c, 0x2d, 0x41, 0x61, 0x7f, 0xa0, 0xe9, 0x30, 0x5f, 0x22];
  let out = text;
  for (let n = 1 + next(2); n > 0; n--) {
    const at = next(out.length + 1);
    const ch = String.fromCharCode(alphabet[next(alphabet.length)] as number);
    const op = next(3);
    out =
      op === 0
        ? out.slice(0, at) + ch + out.slice(at + 1)
        : op === 1
          ? out.slice(0, at) + ch + out.slice(at)
          : out.slice(0, at) + out.slice(at + 1);
  }
  return out;
}

describe('WebAssembly head scanner', () => {
  it('is in use, compiled from the head-scan.c in the tree', () => {
    assert.equal(headScanAvailable, true);
    const source = readFileSync(new URL('./head-scan.c', import.meta.url));
    assert.equal(
      createHash('sha256').update(source).digest('hex'),
      HEAD_SCAN_SOURCE_SHA256,
      'head-scan.c changed since head-scan-wasm.ts was generated: run npm run build:wasm',
    );
  });

  it('accepts the common heads (the fast path is taken) and declines the others', () => {
    const req = bytes('GET /api/items HTTP/1.1\r\nhost: bench\r\nuser-agent: steeple-bench\r\n\r\n');
    assert.equal(scanRequestWords(req, 0, req.length), true);
    const res = bytes(
      'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 23\r\n\r\nhello from the backend\n',
    );
    assert.equal(scanResponseWords(res, res.length), true);
    for (const odd of [
      'get / HTTP/1.1\r\nhost: a\r\n\r\n',
      'GET / HTTP/1.1\r\nhost : a\r\n\r\n',
      'GET / HTTP/1.1\r\nhost: a\r\n',
    ]) {
      const b = bytes(odd);
      assert.equal(scanRequestWords(b, 0, b.length), false, JSON.stringify(odd));
    }
    const chunked = bytes('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n');
    assert.equal(scanResponseWords(chunked, chunked.length), true);
  });

  it('gives what the TypeScript parser gives, for common, odd and mutated requests, whole and cut', () => {
    const next = random(11);
    let accepted = 0;
    const check = (text: string, body: string) => {
      const b = bytes(`xx${text}\r\n\r\n${body}`);
      const cuts = [b.length, b.length - body.length, b.length - body.length - 1, 2 + next(b.length - 2)];
      for (const limit of cuts) {
        const strings = { target: '/api/items', host: 'bench' };
        const plain = { target: '/api/items', host: 'bench' };
        const fast = requestOutcome(b, 2, limit, strings);
        const slow = withoutHeadScan(() => requestOutcome(b, 2, limit, plain));
        assert.deepEqual(fast, slow, `${JSON.stringify(text)} up to ${limit}`);
        assert.deepEqual(strings, plain);
        if (scanRequestWords(b, 2, limit)) accepted++;
      }
    };
    for (const text of REQUESTS) check(text, 'body');
    for (let k = 0; k < 6000; k++) check(mutate(REQUESTS[next(REQUESTS.length)] as string, next), 'x'.repeat(next(40)));
    // The comparison means something only if the scanner took many of them.
    assert.ok(accepted > 2000, `the scanner accepted ${accepted}`);
  });

  it('gives what the TypeScript parser gives, for common, odd and mutated responses, whole and cut', () => {
    const next = random(5);
    let accepted = 0;
    const check = (text: string, body: string) => {
      const b = bytes(`${text}\r\n\r\n${body}`);
      for (const limit of [b.length, b.length - body.length, b.length - body.length - 1, next(b.length + 1)]) {
        const fast = responseOutcome(b, limit);
        const slow = withoutHeadScan(() => responseOutcome(b, limit));
        assert.deepEqual(fast, slow, `${JSON.stringify(text)} up to ${limit}`);
        if (scanResponseWords(b, limit)) accepted++;
      }
    };
    for (const text of RESPONSES) check(text, 'hello');
    for (let k = 0; k < 6000; k++)
      check(mutate(RESPONSES[next(RESPONSES.length)] as string, next), 'y'.repeat(next(40)));
    assert.ok(accepted > 2000, `the scanner accepted ${accepted}`);
  });

  it('hands out the right target and Host strings as its intern table fills and slots are reused', () => {
    const next = random(3);
    // Many of the same length (only the bytes tell them apart), and some too long to keep.
    const targets = Array.from(
      { length: 300 },
      (_, k) => `/t/${String(k).padStart(4, '0')}${'/x'.repeat(k % 7 === 0 ? 70 : 0)}`,
    );
    const hosts = ['a1', 'a2', 'b.example', 'c.example', ' padded\u00a0', 'h'.repeat(130), 'c:8080'];
    for (let k = 0; k < 5000; k++) {
      const target = targets[next(targets.length)] as string;
      const host = hosts[next(hosts.length)] as string;
      const b = bytes(`GET ${target} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      const h = scanRequestHead(b, 0, b.length) as RequestHead;
      assert.equal(h.target, target);
      assert.equal(h.host, host.trim());
    }
  });

  it('leaves heads longer than its window to the TypeScript parser, with the same outcome', () => {
    const long = `GET /big HTTP/1.1\r\nhost: a\r\ncookie: ${'c'.repeat(9000)}\r\nx-after: 1`;
    const b = bytes(`${long}\r\n\r\n`);
    assert.equal(scanRequestWords(b, 0, b.length), false);
    assert.deepEqual(
      requestOutcome(b, 0, b.length),
      withoutHeadScan(() => requestOutcome(b, 0, b.length)),
    );
    const res = bytes(`HTTP/1.1 200 OK\r\nx-big: ${'v'.repeat(9000)}\r\ncontent-length: 0\r\n\r\n`);
    assert.equal(scanResponseWords(res, res.length), false);
    assert.deepEqual(responseOutcome(res, res.length), {
      end: res.length - 4,
      status: 200,
      minorVersion: 1,
      connectionClose: false,
      contentLength: 0,
      chunked: false,
    });
  });
});
