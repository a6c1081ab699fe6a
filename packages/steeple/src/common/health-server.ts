/**
 * A small HTTP listener for orchestrators and monitoring: `GET /live`, `GET /ready`
 * (JSON, 200 when true and 503 when false) and, when a registry is given, `GET /metrics`
 * in the Prometheus text format. It is plain node:http on purpose: it must keep
 * answering when everything else is busy or broken.
 * @module
 */

import type http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { Logger } from './logger.js';
import type { Registry } from './metrics.js';

/** `node:http` is loaded when a listener starts: a daemon without one does not carry it. */
const requireBuiltin = createRequire(import.meta.url);

/** The answer of a readiness check; `reason` says what is missing when not ready. */
export interface Readiness {
  readonly ready: boolean;
  readonly reason?: string;
}

/** The answer of a liveness check; `reason` says what is broken when not live. */
export interface Liveness {
  readonly live: boolean;
  readonly reason?: string;
}

/** Options of {@link startHealthServer}. */
export interface HealthServerOptions {
  /** Address to bind; default `127.0.0.1`. */
  readonly host?: string;
  /** Port to bind; 0 picks a free one (read it from {@link HealthServer.port}). */
  readonly port: number;
  /** Whether the component can do its job now (the CA is loaded, the agent holds an SVID, …). */
  readonly readiness: () => Readiness | Promise<Readiness>;
  /** Whether the process should be restarted; default: always live while it answers. */
  readonly liveness?: () => Liveness | Promise<Liveness>;
  /** Served at `metricsPath` when given. */
  readonly registry?: Registry;
  /** Default `/live`. */
  readonly livePath?: string;
  /** Default `/ready`. */
  readonly readyPath?: string;
  /** Default `/metrics`. */
  readonly metricsPath?: string;
  /** A check that takes longer than this answers 503; default 5000 ms. */
  readonly checkTimeoutMs?: number;
  readonly logger?: Logger;
}

/** A running health listener. */
export interface HealthServer {
  /** The bound address, e.g. `127.0.0.1`. */
  readonly host: string;
  /** The bound port (the real one when 0 was asked for). */
  readonly port: number;
  /** Base URL, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
}

/**
 * Starts the listener and resolves once it is bound.
 * @example
 * const health = await startHealthServer({ port: 8080, registry: metrics.registry,
 *   readiness: () => (ca.current() ? { ready: true } : { ready: false, reason: 'CA not loaded yet' }) });
 */
export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const livePath = options.livePath ?? '/live';
  const readyPath = options.readyPath ?? '/ready';
  const metricsPath = options.metricsPath ?? '/metrics';
  const timeoutMs = options.checkTimeoutMs ?? 5000;
  const liveness = options.liveness ?? (() => ({ live: true }));

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return send(res, 405, { error: 'method not allowed' });
    }
    if (path === livePath) {
      const live = await check(liveness, timeoutMs, (reason): Liveness => ({ live: false, reason }));
      return send(res, live.live ? 200 : 503, live);
    }
    if (path === readyPath) {
      const ready = await check(options.readiness, timeoutMs, (reason): Readiness => ({ ready: false, reason }));
      return send(res, ready.ready ? 200 : 503, ready);
    }
    if (path === metricsPath && options.registry !== undefined) {
      const text = await options.registry.metrics();
      res.writeHead(200, { 'content-type': options.registry.contentType });
      res.end(req.method === 'HEAD' ? undefined : text);
      return;
    }
    return send(res, 404, { error: 'not found' });
  };

  const { createServer } = requireBuiltin('node:http') as typeof http;
  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      options.logger?.error({ err, path: req.url }, 'health endpoint failed');
      if (!res.headersSent) send(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  });

  const requestedHost = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, requestedHost, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { address, port } = server.address() as AddressInfo;
  const urlHost = address.includes(':') ? `[${address}]` : address;
  options.logger?.info({ address, port }, 'health endpoints listening');

  return {
    host: address,
    port,
    url: `http://${urlHost}:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

function send(res: ServerResponse, status: number, body: object): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(`${JSON.stringify(body)}\n`);
}

/** Runs a check; a throw or a hang becomes a "not ok" answer that says so, never a hung request. */
async function check<T>(run: () => T | Promise<T>, timeoutMs: number, failed: (reason: string) => T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(failed(`check did not answer within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
  });
  try {
    return await Promise.race([Promise.resolve().then(run), timeout]);
  } catch (err) {
    return failed(`check failed: ${(err as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}
