/**
 * The two sample apps of `npm run demo`. Neither knows anything about SPIFFE: the Steeple
 * proxy beside each one does the mTLS and the authorization. Each prints one JSON line per
 * event and exits when its standard input closes (the demo is gone).
 *
 * - `sample-app.ts serve NAME`: an HTTP service on 127.0.0.1 (a free port) that answers
 *   every request with a greeting and what its proxy told it about the caller
 *   (`x-forwarded-client-cert`). Prints `{"event":"listening","port":…}`.
 * - `sample-app.ts call PORT PATH [EVERY_SECONDS]`: GETs `http://127.0.0.1:PORT/PATH` on a
 *   new connection and prints `{"event":"reply","status":…,"body":"…"}` (or `"error"`);
 *   again every EVERY_SECONDS when given, otherwise it exits after the one call.
 *
 * Run with `node --conditions=steeple-source --import tsx sample-app.ts …`.
 * @module
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

function say(event: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

function serve(name: string): void {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const body = `${JSON.stringify({
        message: `hello from the ${name}`,
        method: req.method,
        path: req.url,
        'x-forwarded-client-cert': req.headers['x-forwarded-client-cert'] ?? null,
      })}\n`;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.listen(0, '127.0.0.1', () => say({ event: 'listening', port: (server.address() as AddressInfo).port }));
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.stdin.on('end', stop).resume();
}

function callOnce(port: number, path: string): Promise<void> {
  return new Promise((done) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent: false, timeout: 15_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        say({ event: 'reply', status: res.statusCode, body: Buffer.concat(chunks).toString().trim() });
        done();
      });
      res.on('error', (err) => {
        say({ event: 'error', error: err.message });
        done();
      });
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 15 s')));
    req.on('error', (err: NodeJS.ErrnoException) => {
      say({ event: 'error', error: `${err.code ?? ''} ${err.message}`.trim() });
      done();
    });
    req.end();
  });
}

async function call(port: number, path: string, everySeconds: number | undefined): Promise<void> {
  await callOnce(port, path);
  if (everySeconds === undefined) return;
  const timer = setInterval(() => void callOnce(port, path), everySeconds * 1000);
  const stop = () => {
    clearInterval(timer);
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.stdin.on('end', stop).resume();
}

const [mode, a, b, c] = process.argv.slice(2);
if (mode === 'serve' && a !== undefined) serve(a);
else if (mode === 'call' && a !== undefined && b !== undefined) await call(Number(a), b, c ? Number(c) : undefined);
else {
  process.stderr.write('usage: sample-app.ts serve NAME | sample-app.ts call PORT PATH [EVERY_SECONDS]\n');
  process.exit(2);
}
