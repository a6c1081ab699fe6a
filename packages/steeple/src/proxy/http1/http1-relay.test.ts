import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { AppConnection } from '../upstream/app-connection.js';
import { type ExchangeOutcome, Http1Relay } from './http1-relay.js';

/** A relay in front of `appPort` on a plain listener; returns its port and the outcomes it reported. */
async function relayTo(appPort: number, deny?: (path: string) => boolean) {
  const outcomes: ExchangeOutcome[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    new Http1Relay(socket, {
      authorize: (_head, path) =>
        deny?.(path) ? { allowed: false, reason: 'denied by policy test' } : { allowed: true, reason: 'ok' },
      addHeaders: 'x-forwarded-client-cert: By=spiffe://t/b;URI=spiffe://t/a\r\n',
      stripHeader: 'x-forwarded-client-cert',
      pooledUpstream: false,
      upstream: new AppConnection({ host: '127.0.0.1', port: appPort, text: `127.0.0.1:${appPort}` }, 2000),
      onExchange: (o) => outcomes.push({ ...o }),
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, outcomes, server };
}

/** Sends raw bytes and collects everything until the server closes or `until` matches. */
async function exchange(port: number, bytes: string | string[], until?: (text: string) => boolean): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  let text = '';
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(text);
    }, 3000);
    socket.on('data', (d) => {
      text += d.toString('latin1');
      if (until?.(text)) {
        clearTimeout(timer);
        socket.destroy();
        resolve(text);
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
    socket.on('connect', async () => {
      for (const part of Array.isArray(bytes) ? bytes : [bytes]) {
        socket.write(part);
        await new Promise((r) => setTimeout(r, 20));
      }
    });
  });
}

const count = (text: string, needle: string) => text.split(needle).length - 1;

describe('Http1Relay', () => {
  let app: http.Server;
  let appPort: number;
  let relay: Awaited<ReturnType<typeof relayTo>>;

  before(async () => {
    app = http.createServer((req, res) => {
      if (req.url === '/stream') {
        res.writeHead(200, { 'content-type': 'text/plain' }); // chunked
        res.write('part1,');
        setTimeout(() => res.end('part2'), 10);
        return;
      }
      let body = '';
      req.on('data', (d) => {
        body += d;
      });
      req.on('end', () => {
        const out = JSON.stringify({ url: req.url, xfcc: req.headers['x-forwarded-client-cert'], body });
        res.writeHead(200, { 'content-length': Buffer.byteLength(out) });
        res.end(req.method === 'HEAD' ? undefined : out);
      });
    });
    app.on('upgrade', (_req, socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: echo\r\nconnection: upgrade\r\n\r\n');
      socket.pipe(socket);
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    appPort = (app.address() as net.AddressInfo).port;
    relay = await relayTo(appPort, (path) => path.startsWith('/admin'));
  });

  after(() => {
    relay.server.close();
    app.closeAllConnections();
    app.close();
  });

  it('forwards pipelined requests in order on one connection, replacing the identity header', async () => {
    const text = await exchange(
      relay.port,
      'GET /one HTTP/1.1\r\nhost: a\r\nx-forwarded-client-cert: forged\r\n\r\nGET /two HTTP/1.1\r\nhost: a\r\n\r\n',
      (t) => count(t, 'HTTP/1.1 200') === 2 && t.includes('/two"'),
    );
    assert.ok(text.indexOf('/one') < text.indexOf('/two'));
    assert.equal(count(text, 'By=spiffe://t/b;URI=spiffe://t/a'), 2);
    assert.ok(!text.includes('forged'));
  });

  it('streams a chunked request body and a chunked response', async () => {
    const req = 'POST /upload HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n';
    const text = await exchange(relay.port, [req, '5\r\nhello\r\n', '6\r\n world\r\n0\r\n\r\n'], (t) =>
      t.includes('hello world'),
    );
    assert.match(text, /"body":"hello world"/);
    const streamed = await exchange(relay.port, 'GET /stream HTTP/1.1\r\nhost: a\r\n\r\n', (t) =>
      t.includes('0\r\n\r\n'),
    );
    assert.match(streamed, /part1,/);
    assert.match(streamed, /part2/);
  });

  it('reads a request head that arrives in pieces, however it is cut', async () => {
    const head = 'GET /pieces HTTP/1.1\r\nhost: a\r\nx-a: 1\r\n\r\n';
    // Cuts inside the request line, inside a CRLF, inside the final empty line, one byte at a time.
    const cuts = [[5], [22, 23], [head.length - 3, head.length - 1], [10, 20, 30, 40]];
    for (const at of cuts) {
      const parts: string[] = [];
      let from = 0;
      for (const c of at) {
        parts.push(head.slice(from, c));
        from = c;
      }
      parts.push(head.slice(from));
      const text = await exchange(relay.port, parts, (t) => t.includes('/pieces"'));
      assert.match(text, /HTTP\/1.1 200/, `cut at ${at.join(',')}`);
      assert.equal(count(text, 'By=spiffe://t/b;URI=spiffe://t/a'), 1);
    }
    const slow = await exchange(relay.port, head.split(''), (t) => t.includes('/pieces"'));
    assert.match(slow, /HTTP\/1.1 200/);
  });

  it('refuses a head that grows past the limit in pieces with 431', async () => {
    const big = `GET / HTTP/1.1\r\nhost: a\r\nx-big: ${'a'.repeat(40_000)}`;
    const text = await exchange(relay.port, [big, 'b'.repeat(40_000)], (t) => t.includes('431'));
    assert.match(text, /HTTP\/1.1 431/);
  });

  it('answers 403 for a denied request and keeps a body-less connection open', async () => {
    const text = await exchange(
      relay.port,
      'GET /admin HTTP/1.1\r\nhost: a\r\n\r\nGET /ok HTTP/1.1\r\nhost: a\r\n\r\n',
      (t) => t.includes('/ok"'),
    );
    assert.match(text, /^HTTP\/1.1 403 Forbidden/);
    assert.match(text, /RBAC: access denied: denied by policy test/);
    const denied = relay.outcomes.find((o) => o.path === '/admin');
    assert.equal(denied?.status, 403);
  });

  it('answers 400 to a smuggling attempt and closes', async () => {
    const text = await exchange(
      relay.port,
      'POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n',
    );
    assert.match(text, /^HTTP\/1.1 400 Bad Request/);
  });

  it('passes 100 Continue through and HEAD responses without a body', async () => {
    const text = await exchange(
      relay.port,
      ['POST /c HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n', 'hi'],
      (t) => t.includes('"body":"hi"'),
    );
    assert.match(text, /^HTTP\/1.1 100 Continue/);
    const headText = await exchange(
      relay.port,
      'HEAD /h HTTP/1.1\r\nhost: a\r\n\r\nGET /after HTTP/1.1\r\nhost: a\r\n\r\n',
      (t) => t.includes('/after"'),
    );
    assert.equal(count(headText, 'HTTP/1.1 200'), 2);
  });

  it('turns into a byte tunnel after 101 Switching Protocols', async () => {
    const text = await exchange(
      relay.port,
      ['GET /ws HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n', 'ping-after-upgrade'],
      (t) => t.includes('ping-after-upgrade'),
    );
    assert.match(text, /^HTTP\/1.1 101/);
  });

  it('answers 503 when the app is down', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as net.AddressInfo).port;
    closed.close();
    const dead = await relayTo(port);
    const text = await exchange(dead.port, 'GET / HTTP/1.1\r\nhost: a\r\n\r\n');
    assert.match(text, /^HTTP\/1.1 503/);
    assert.match(dead.outcomes[0]?.error ?? '', /upstream connect error|ECONNREFUSED/);
    dead.server.close();
  });
});
