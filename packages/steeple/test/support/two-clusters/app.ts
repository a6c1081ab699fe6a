/**
 * The two sample apps of the two-cluster test, run as their own processes (inside a
 * cluster's network namespace when there is one). Neither knows anything about SPIFFE:
 * the proxies beside them do the mTLS.
 *
 * - `app.ts serve HOST PORT`: an HTTP service that answers every request with what it saw
 *   (method, path, the identity header the proxy added). Prints `{"event":"listening"}`.
 * - `app.ts client`: an HTTP client driven through stdin, one JSON command a line,
 *   `{"id":1,"port":15001,"path":"/hello"}`; it calls `http://127.0.0.1:PORT/PATH` on a new
 *   connection and prints `{"id":1,"status":200,"body":"…"}` or `{"id":1,"error":"…"}`.
 *
 * Run with `node --conditions=steeple-source --import tsx app.ts …`.
 */
import http from 'node:http';
import { createInterface } from 'node:readline';

function print(value: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

function serve(host: string, port: number): void {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const body = JSON.stringify({
        method: req.method,
        path: req.url,
        xfcc: req.headers['x-forwarded-client-cert'] ?? null,
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.listen(port, host, () => print({ event: 'listening', host, port }));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

interface Command {
  readonly id: number;
  readonly port: number;
  readonly path: string;
}

function call(cmd: Command): void {
  // A fresh connection per call (no agent): every call goes through the proxies anew.
  const req = http.request(
    { host: '127.0.0.1', port: cmd.port, path: cmd.path, agent: false, timeout: 15_000 },
    (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => print({ id: cmd.id, status: res.statusCode, body: Buffer.concat(chunks).toString() }));
      res.on('error', (err) => print({ id: cmd.id, error: err.message }));
    },
  );
  req.on('timeout', () => req.destroy(new Error('no answer within 15 s')));
  req.on('error', (err: NodeJS.ErrnoException) => print({ id: cmd.id, error: `${err.code ?? ''} ${err.message}` }));
  req.end();
}

function client(): void {
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line.trim() === '') return;
    call(JSON.parse(line) as Command);
  });
  process.stdin.on('end', () => process.exit(0));
  print({ event: 'ready' });
}

const [mode, host, port] = process.argv.slice(2);
if (mode === 'serve' && host !== undefined && port !== undefined) serve(host, Number(port));
else if (mode === 'client') client();
else {
  process.stderr.write('usage: app.ts serve HOST PORT | app.ts client\n');
  process.exit(2);
}
