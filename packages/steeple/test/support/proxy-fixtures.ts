/**
 * Fixtures for the proxy end-to-end tests: identities written to temp files, a plain
 * HTTP app and a TCP echo app, mTLS and plaintext clients, and an audit-file reader.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import {
  type Authorizer,
  authorizeAny,
  type BundleSet,
  mtlsClientOptions,
  type X509BundleSetSource,
  type X509Svid,
} from '@steeple/spiffe';

export function tempDir(prefix = 'steeple-proxy-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface IdentityFiles {
  readonly cert: string;
  readonly key: string;
  readonly bundle: string;
}

/** Writes an SVID (chain PEM, key PEM) and the X.509 bundles (PEM) to `dir/<name>.*`. */
export function writeIdentity(dir: string, name: string, svid: X509Svid, bundles: BundleSet): IdentityFiles {
  const files = {
    cert: join(dir, `${name}.pem`),
    key: join(dir, `${name}.key`),
    bundle: join(dir, `${name}-bundle.pem`),
  };
  rewriteIdentity(files, svid, bundles);
  return files;
}

/** Replaces identity files in place (the key first, as a rotating agent would not, to test robustness). */
export function rewriteIdentity(files: IdentityFiles, svid: X509Svid, bundles: BundleSet): void {
  const { certificates, privateKey } = svid.marshal();
  const ownTd = svid.id.trustDomain;
  const own = bundles.getX509BundleForTrustDomain(ownTd);
  writeFileSync(files.bundle, own?.marshal() ?? '');
  writeFileSync(files.key, privateKey, { mode: 0o600 });
  writeFileSync(files.cert, certificates);
}

export interface App {
  readonly port: number;
  close(): Promise<void>;
}

/** A plain HTTP app that answers with what it saw: method, url, and the identity header. */
export async function startHttpApp(): Promise<App> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.stringify({
        method: req.method,
        url: req.url,
        xfcc: req.headers['x-forwarded-client-cert'] ?? null,
        body: Buffer.concat(chunks).toString(),
        httpVersion: req.httpVersion,
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A TCP app that echoes every byte back. */
export async function startEchoApp(): Promise<App> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A line-oriented client on one connection: send bytes, await what comes back. */
export class Conn {
  readonly socket: net.Socket;
  #buf = Buffer.alloc(0);
  #waiters: (() => void)[] = [];
  ended = false;
  error: Error | undefined;

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, c]);
      this.#wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.#wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.#wake();
    });
    socket.on('error', (err) => {
      this.error = err;
    });
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Waits until `done(buffer)` returns a length to take, or the connection ends (then returns undefined). */
  async read(done: (buf: Buffer) => number | undefined, timeoutMs = 5000): Promise<Buffer | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const n = done(this.#buf);
      if (n !== undefined) {
        const out = this.#buf.subarray(0, n);
        this.#buf = this.#buf.subarray(n);
        return out;
      }
      if (this.ended) return undefined;
      if (Date.now() > deadline) throw new Error(`read timed out; have ${JSON.stringify(this.#buf.toString())}`);
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }

  /** Sends an HTTP/1.1 request and reads one response (Content-Length framed). */
  async request(
    path: string,
    init: { method?: string; headers?: Record<string, string>; body?: string } = {},
  ): Promise<HttpAnswer | undefined> {
    const body = init.body ?? '';
    const headers: Record<string, string> = { host: 'app.local', ...(init.headers ?? {}) };
    if (body !== '') headers['content-length'] = String(Buffer.byteLength(body));
    const head = Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    this.socket.write(`${init.method ?? 'GET'} ${path} HTTP/1.1\r\n${head}\r\n${body}`);
    return this.readResponse();
  }

  async readResponse(): Promise<HttpAnswer | undefined> {
    const raw = await this.read((buf) => {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return undefined;
      const m = /content-length:\s*(\d+)/i.exec(buf.toString('latin1', 0, end));
      const len = m ? Number(m[1]) : 0;
      return buf.length >= end + 4 + len ? end + 4 + len : undefined;
    });
    if (raw === undefined) return undefined;
    const text = raw.toString();
    const end = text.indexOf('\r\n\r\n');
    const status = Number(text.slice(9, 12));
    return { status, head: text.slice(0, end), body: text.slice(end + 4) };
  }

  close(): void {
    this.socket.destroy();
  }
}

export interface HttpAnswer {
  readonly status: number;
  readonly head: string;
  readonly body: string;
}

/** Opens an mTLS connection with `svid`; rejects when the handshake or SPIFFE check fails. */
export async function connectMtls(
  port: number,
  svid: X509Svid,
  bundles: X509BundleSetSource,
  authorize: Authorizer = authorizeAny(),
  extra: tls.ConnectionOptions = {},
): Promise<Conn> {
  const opts = mtlsClientOptions({ svid, bundles, authorize });
  const socket = tls.connect({ ...opts, host: '127.0.0.1', port, ...extra });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('closed during handshake')));
  });
  const conn = new Conn(socket);
  // TLS 1.3: the server checks our certificate after our Finished; a refusal shows up
  // as an immediate close. Give it a moment so callers see it as `ended`.
  await new Promise((r) => setTimeout(r, 30));
  return conn;
}

export async function connectPlain(port: number): Promise<Conn> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  return new Conn(socket);
}

/** The audit records written so far (JSON lines). */
export function readAudit(file: string): Record<string, unknown>[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Polls `check` until it returns a value (not undefined) or the time is up. */
export async function eventually<T>(check: () => T | undefined | Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}
