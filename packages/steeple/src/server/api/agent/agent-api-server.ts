/**
 * The Agent API listener: gRPC (connect-node) over HTTP/2 over TLS on TCP. The server
 * presents its own SVID and asks every client for a certificate without requiring one at
 * the TLS layer, because AttestAgent is called before the agent has an SVID; every other
 * method checks the certificate per call (agent-authenticator.ts).
 *
 * Serving pitfalls (../../../../../../shared/spec/workload-api-serving.md) handled here:
 * the `:authority` is pinned and the adapter wrapped, since a malformed authority would
 * otherwise throw in connect-node's request listener and kill the process (P1); response
 * compression is off (P5); aborted streams end with the abort reason (P4, in the
 * handlers); sessions and streams get error listeners (P10).
 * @module
 */
import { constants } from 'node:crypto';
import http2, { type Http2ServerRequest, type Http2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { Code, ConnectError, createContextValues, type Interceptor, type ServiceImpl } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import type { Logger } from '../../../common/logger.js';
import type { Counter } from '../../../common/metrics.js';
import { AgentApiService } from '../../../gen/steeple/agent/v1/agent_pb.js';
import type { AgentAuthenticator } from './agent-authenticator.js';
import { kAgent, kSession } from './agent-service.js';
import type { ServerTlsMaterial } from './server-svid.js';
import { errorCodeOf, toConnectError } from './to-connect-error.js';

/** Largest request message accepted (a full batch of 1000 RSA CSRs stays well below). */
const READ_MAX_BYTES = 8 * 1024 * 1024;

/** How long close() waits for calls in flight before cutting connections. */
const DRAIN_MS = 2000;

/** The authority every request is treated as having (nothing here depends on it). */
const PINNED_AUTHORITY = 'steeple-server';

export interface AgentApiServerOptions {
  /** Address to bind, e.g. `0.0.0.0`. */
  readonly host: string;
  /** Port; 0 picks a free one (see {@link AgentApiServer.port}). */
  readonly port: number;
  readonly service: ServiceImpl<typeof AgentApiService>;
  readonly authenticator: AgentAuthenticator;
  /** The server SVID to present now, and a way to hear about renewals. */
  readonly tls: { current(): ServerTlsMaterial; onChange(listener: (m: ServerTlsMaterial) => void): () => void };
  readonly logger: Logger;
  /** `agent_api_calls_total{method, code}`. */
  readonly calls?: Counter<'method' | 'code'>;
}

export interface AgentApiServer {
  /** The bound address. */
  readonly host: string;
  /** The bound port (the real one when 0 was asked for). */
  readonly port: number;
  /** Stops accepting, ends open streams, waits briefly for calls in flight, then closes every connection. */
  close(): Promise<void>;
}

/** gRPC's names for status codes: `ok`, `permission_denied`, … (Connect's enum is CamelCase). */
function codeName(code: Code | 0): string {
  if (code === 0) return 'ok';
  return (Code[code] ?? String(code)).replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();
}

/** Logs each call at debug, refusals at warn and failures at error, and counts them by method and code. */
function observeCalls(logger: Logger, calls: Counter<'method' | 'code'> | undefined): Interceptor {
  return (next) => async (req) => {
    const method = req.method.name;
    const started = performance.now();
    const done = (err: unknown) => {
      const status = err === undefined ? undefined : toConnectError(err);
      const code = status?.code ?? 0;
      calls?.inc({ method, code: codeName(code) });
      const agentId = req.contextValues.get(kAgent)?.id.toString();
      const fields = { method, agentId, code: codeName(code), ms: Math.round(performance.now() - started) };
      if (status === undefined || code === Code.Canceled || code === Code.DeadlineExceeded) {
        logger.debug(fields, 'agent api call');
      } else if (code === Code.Internal || code === Code.Unknown) {
        logger.error({ ...fields, err: (status.cause as Error | undefined) ?? status }, 'agent api call failed');
      } else {
        logger.warn(
          { ...fields, reason: status.rawMessage, errorCode: errorCodeOf(status.cause) },
          'agent api call refused',
        );
      }
    };
    try {
      const res = await next(req);
      if (!res.stream) {
        done(undefined);
        return res;
      }
      const messages = res.message;
      return {
        ...res,
        message: (async function* observed() {
          try {
            yield* messages;
            done(undefined);
          } catch (err) {
            done(err);
            throw err;
          }
        })(),
      };
    } catch (err) {
      done(err);
      throw err;
    }
  };
}

/** Authenticates the caller of every method but AttestAgent; maps handler errors to statuses. */
function authorizeCalls(authenticator: AgentAuthenticator, logger: Logger): Interceptor {
  const mapped = (err: unknown) =>
    toConnectError(err, (e) => logger.error({ err: e }, 'agent api handler failed unexpectedly'));
  return (next) => async (req) => {
    if (req.method.name !== 'AttestAgent') {
      const agent = await authenticator.authenticate(req.contextValues.get(kSession));
      req.contextValues.set(kAgent, agent);
    }
    try {
      const res = await next(req);
      if (!res.stream) return res;
      const messages = res.message;
      return {
        ...res,
        message: (async function* mapErrors() {
          try {
            yield* messages;
          } catch (err) {
            throw mapped(err);
          }
        })(),
      };
    } catch (err) {
      throw mapped(err);
    }
  };
}

/** Starts the listener and resolves once it is bound. */
export async function startAgentApiServer(options: AgentApiServerOptions): Promise<AgentApiServer> {
  const { logger } = options;
  const shutdown = new AbortController();
  const handler = connectNodeAdapter({
    routes: (router) => router.service(AgentApiService, options.service),
    grpc: true,
    connect: false,
    grpcWeb: false,
    acceptCompression: [],
    readMaxBytes: READ_MAX_BYTES,
    shutdownSignal: shutdown.signal,
    interceptors: [observeCalls(logger, options.calls), authorizeCalls(options.authenticator, logger)],
    contextValues: (req) => createContextValues().set(kSession, (req as Http2ServerRequest).stream?.session),
  });

  const material = options.tls.current();
  const server = http2.createSecureServer(
    {
      key: material.key,
      cert: material.cert,
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      // OpenSSL re-parses the client certificate for every session ticket it issues.
      secureOptions: constants.SSL_OP_NO_TICKET,
    },
    (req, res) => {
      Object.defineProperty(req, 'authority', { value: PINNED_AUTHORITY, configurable: true });
      try {
        handler(req, res);
      } catch (err) {
        logger.warn({ err }, 'agent api request rejected before dispatch');
        try {
          res.writeHead(200, { 'content-type': 'application/grpc', 'grpc-status': String(Code.Internal) });
          res.end();
        } catch {
          res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
        }
      }
    },
  );

  const sessions = new Set<Http2Session>();
  server.on('session', (session) => {
    sessions.add(session);
    session.on('error', (err) => logger.debug({ err }, 'agent api session error'));
    session.on('close', () => sessions.delete(session));
  });
  server.on('stream', (stream) => {
    stream.on('error', (err) => logger.debug({ err }, 'agent api stream error'));
  });
  server.on('tlsClientError', (err, socket: TLSSocket) => {
    logger.debug({ err: err.message, remote: socket.remoteAddress }, 'agent api TLS handshake failed');
  });
  server.on('sessionError', (err) => logger.debug({ err }, 'agent api session error'));

  const stopRotation = options.tls.onChange((next) => {
    server.setSecureContext({ key: next.key, cert: next.cert });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => logger.error({ err }, 'agent api listener error'));
  const { address, port } = server.address() as AddressInfo;

  let closing: Promise<void> | undefined;
  return {
    host: address,
    port,
    close() {
      closing ??= (async () => {
        stopRotation();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        shutdown.abort(new ConnectError('the server is shutting down', Code.Unavailable));
        for (const session of sessions) session.close();
        const timer = setTimeout(() => {
          for (const session of sessions) session.destroy();
        }, DRAIN_MS);
        timer.unref();
        await closed;
        clearTimeout(timer);
      })();
      return closing;
    },
  };
}
