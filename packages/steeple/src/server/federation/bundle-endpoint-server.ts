/**
 * The server's SPIFFE bundle endpoint (SPIFFE Federation §5): an HTTPS listener that
 * answers GET with this trust domain's latest bundle as JSON (`spiffe_sequence` and the
 * configured `spiffe_refresh_hint`), and anything else with 405. It never asks the client
 * for a certificate or credentials (F-3). Two profiles:
 *
 * - `https_spiffe`: the certificate is the server's own X.509-SVID
 *   (`spiffe://<td>/spire/server`); each new connection gets the SVID current at that moment,
 *   so a renewed SVID is served without a restart;
 * - `https_web`: a configured certificate and key (from a public CA), re-read every
 *   `file_sync_interval`, so a renewed certificate (certbot, cert-manager) is picked up; a
 *   broken pair on disk is logged and the previous one kept.
 *
 * TLS follows Mozilla "intermediate" (F-2): TLS 1.2 and 1.3, AEAD suites with forward secrecy.
 * @module
 */
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { type Clock, type SpiffeBundle, systemClock, type TimerHandle, type X509Svid } from '@steeple/spiffe';
import { ConfigError } from '../../common/errors.js';
import { createSilentLogger, type Logger } from '../../common/logger.js';
import type { Metrics } from '../../common/metrics.js';

/** Mozilla "intermediate" TLS 1.2 cipher suites (F-2); the TLS 1.3 suites are all acceptable. */
export const INTERMEDIATE_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'DHE-RSA-AES128-GCM-SHA256',
  'DHE-RSA-AES256-GCM-SHA384',
  'DHE-RSA-CHACHA20-POLY1305',
].join(':');

/** Default interval between checks of the `https_web` certificate files (SPIRE's `file_sync_interval`). */
export const DEFAULT_FILE_SYNC_INTERVAL_MS = 60_000;

/** A private key and certificate chain (leaf first) in PEM, as node:tls takes them. */
export interface TlsMaterial {
  readonly key: string | Buffer;
  readonly cert: string | Buffer;
}

/**
 * Whatever holds the server's current SVID as TLS material. `current()` must return the SAME
 * object until the SVID is renewed (identity is compared per connection). The Agent API's
 * `ServerSvid` satisfies this as is; for an X509Svid source use {@link tlsMaterialFromSvidSource}.
 */
export interface TlsMaterialSource {
  current(): TlsMaterial;
}

/** Adapts a source of {@link X509Svid}s (such as the CA's `ServerSvidRotator`) to a {@link TlsMaterialSource}. */
export function tlsMaterialFromSvidSource(source: { current(): X509Svid }): TlsMaterialSource {
  let last: { svid: X509Svid; material: TlsMaterial } | undefined;
  return {
    current() {
      const svid = source.current();
      if (last?.svid !== svid) {
        const pem = svid.marshal();
        last = { svid, material: { key: pem.privateKey, cert: pem.certificates } };
      }
      return last.material;
    },
  };
}

/** How the endpoint authenticates itself. */
export type BundleEndpointTls =
  | { readonly profile: 'https_spiffe'; readonly svid: TlsMaterialSource }
  | {
      readonly profile: 'https_web';
      readonly certFile: string;
      readonly keyFile: string;
      /** Default {@link DEFAULT_FILE_SYNC_INTERVAL_MS}. */
      readonly fileSyncIntervalMs?: number;
    };

export interface BundleEndpointServerOptions {
  /** Address to bind (`0.0.0.0`, `::`, `127.0.0.1`…). */
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Serve only this path (404 elsewhere); any path when unset. */
  readonly path?: string;
  /** The trust domain's latest bundle (called per request). */
  readonly bundle: () => SpiffeBundle | Promise<SpiffeBundle>;
  /** `spiffe_refresh_hint` of the served bundle, in seconds. */
  readonly refreshHintSeconds: number;
  readonly tls: BundleEndpointTls;
  /** Drives the `https_web` file checks; default the system clock. */
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** When set, `steeple_federation_bundle_endpoint_requests_total{code}` is recorded. */
  readonly metrics?: Metrics;
}

/** A listening bundle endpoint. */
export interface BundleEndpointServer {
  /** The bound address and port (the real port when 0 was asked for). */
  readonly host: string;
  readonly port: number;
  /** `https://<host>:<port><path>` with the bound address (for logs and tests). */
  readonly url: string;
  /**
   * `https_web`: re-reads the certificate files now; resolves to true when a new pair was
   * loaded, false when unchanged. Rejects (keeping the old pair) when the files are unusable.
   * `https_spiffe`: resolves to false (the SVID is picked up per connection anyway).
   */
  reloadCertificate(): Promise<boolean>;
  /** Stops listening and closes open connections. Idempotent. */
  close(): Promise<void>;
}

const CERT_PATH = 'federation.bundle_endpoint.profile.https_web.serving_cert_file';

async function readPair(certFile: string, keyFile: string): Promise<{ cert: Buffer; key: Buffer }> {
  const read = async (file: string, key: string) => {
    try {
      return await readFile(file);
    } catch (cause) {
      throw new ConfigError(
        [{ path: `${CERT_PATH}.${key}`, message: `cannot read ${file}: ${(cause as Error).message}` }],
        { cause },
      );
    }
  };
  const [cert, key] = await Promise.all([read(certFile, 'cert_file_path'), read(keyFile, 'key_file_path')]);
  try {
    tls.createSecureContext({ cert, key });
  } catch (cause) {
    throw new ConfigError(
      [
        {
          path: CERT_PATH,
          message: `${certFile} and ${keyFile} are not a usable certificate and private key pair: ${(cause as Error).message}`,
        },
      ],
      { cause },
    );
  }
  return { cert, key };
}

/**
 * Starts the bundle endpoint. Rejects with a {@link ConfigError} when the `https_web` files
 * cannot be read or do not match, and with the listen error (EADDRINUSE…) otherwise.
 *
 * @example
 * const endpoint = await startBundleEndpointServer({
 *   host: '0.0.0.0', port: 8443, refreshHintSeconds: 300,
 *   bundle: () => ca.bundle(), tls: { profile: 'https_spiffe', svid: serverSvid },
 * });
 */
export async function startBundleEndpointServer(options: BundleEndpointServerOptions): Promise<BundleEndpointServer> {
  const log = options.logger ?? createSilentLogger();
  const clock = options.clock ?? systemClock;
  const requests = options.metrics?.counter({
    name: 'federation_bundle_endpoint_requests_total',
    help: 'Requests to the federation bundle endpoint, by HTTP status code',
    labelNames: ['code'],
  });
  const tlsConfig = options.tls;

  let material: TlsMaterial;
  if (tlsConfig.profile === 'https_web') {
    material = await readPair(tlsConfig.certFile, tlsConfig.keyFile);
  } else {
    material = tlsConfig.svid.current();
  }
  const tlsOptions = (m: TlsMaterial): tls.SecureContextOptions => ({
    key: m.key,
    cert: m.cert,
    minVersion: 'TLSv1.2',
    ciphers: INTERMEDIATE_CIPHERS,
  });

  const server = https.createServer(
    {
      ...tlsOptions(material),
      requestCert: false, // F-3: no client authentication, ever
      requestTimeout: 10_000,
      headersTimeout: 5_000,
      keepAliveTimeout: 5_000,
    },
    (req, res) => {
      const finish = (code: number, headers: Record<string, string | number>, body = '') => {
        res.writeHead(code, headers).end(body);
        requests?.inc({ code: String(code) });
        log.debug({ code, method: req.method, remote: req.socket.remoteAddress }, 'bundle endpoint request');
      };
      const path = new URL(req.url ?? '/', 'https://endpoint').pathname;
      if (options.path !== undefined && path !== options.path) {
        finish(404, { 'content-type': 'text/plain' }, 'not found\n');
        return;
      }
      if (req.method !== 'GET') {
        finish(405, { allow: 'GET', 'content-type': 'text/plain' }, 'method not allowed: use GET\n');
        return;
      }
      Promise.resolve()
        .then(() => options.bundle())
        .then(
          (bundle) => {
            const body = bundle.withRefreshHint(options.refreshHintSeconds).marshal();
            finish(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, body);
          },
          (err: unknown) => {
            log.warn({ err }, 'bundle endpoint: the trust bundle is not available');
            finish(503, { 'content-type': 'text/plain', 'retry-after': 10 }, 'the trust bundle is not available yet\n');
          },
        );
    },
  );

  // A renewed server SVID reaches the next connection: swap the context before the TLS
  // layer sees the socket (no restart, open connections keep theirs).
  if (tlsConfig.profile === 'https_spiffe') {
    server.prependListener('connection', () => {
      let now: TlsMaterial;
      try {
        now = tlsConfig.svid.current();
      } catch (err) {
        log.warn({ err }, 'bundle endpoint: cannot read the server SVID; serving the previous one');
        return;
      }
      if (now !== material) {
        try {
          server.setSecureContext(tlsOptions(now));
          material = now;
        } catch (err) {
          log.error({ err }, 'bundle endpoint: the renewed server SVID is unusable; serving the previous one');
        }
      }
    });
  }

  let timer: TimerHandle | undefined;
  let closed = false;
  const reloadCertificate = async (): Promise<boolean> => {
    if (tlsConfig.profile !== 'https_web') return false;
    const next = await readPair(tlsConfig.certFile, tlsConfig.keyFile);
    const current = material as { cert: Buffer; key: Buffer };
    if (next.cert.equals(current.cert) && next.key.equals(current.key)) return false;
    server.setSecureContext(tlsOptions(next));
    material = next;
    log.info({ certFile: tlsConfig.certFile }, 'bundle endpoint: loaded the renewed certificate');
    return true;
  };
  const scheduleSync = () => {
    if (tlsConfig.profile !== 'https_web' || closed) return;
    timer = clock.setTimer(() => {
      reloadCertificate()
        .catch((err: unknown) =>
          log.error(
            { err },
            'bundle endpoint: the certificate files are unusable; serving the previously loaded certificate',
          ),
        )
        .finally(scheduleSync);
    }, tlsConfig.fileSyncIntervalMs ?? DEFAULT_FILE_SYNC_INTERVAL_MS);
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err }, 'bundle endpoint listener error'));
  scheduleSync();

  const address = server.address() as AddressInfo;
  const hostForUrl = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `https://${hostForUrl}:${address.port}${options.path ?? '/'}`;
  log.info({ url, profile: tlsConfig.profile, refreshHint: options.refreshHintSeconds }, 'bundle endpoint listening');

  let closing: Promise<void> | undefined;
  return {
    host: address.address,
    port: address.port,
    url,
    reloadCertificate,
    close() {
      closing ??= new Promise<void>((resolve) => {
        closed = true;
        timer?.cancel();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
