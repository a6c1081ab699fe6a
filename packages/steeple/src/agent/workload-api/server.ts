/**
 * The Workload API endpoint: gRPC (connect-node) over cleartext HTTP/2 on a Unix socket.
 * Anyone on the node may connect (socket 0777 in a 0755 directory); authorization comes from
 * attesting the caller, whose peer credentials are read the moment its connection is
 * accepted and handed to each call through the context.
 *
 * Serving pitfalls (shared/spec/workload-api-serving.md) handled here:
 * - P1: a malformed `:authority` (current grpc C-core clients send the %-encoded socket path)
 *   would throw inside connect-node's request listener and kill the process: the authority
 *   is pinned (it means nothing on a Unix socket) and the adapter call is wrapped.
 * - P5: no response compression (`acceptCompression: []`).
 * - P7: the `workload.spiffe.io: true` check runs first, in an interceptor, for every method.
 * - P8: credentials are read at `connection` from the socket's fd and carried on the socket.
 * - P10: every session and stream gets an `error` listener.
 * @module
 */
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import http2, { type Http2ServerRequest, type Http2Session } from 'node:http2';
import type { Socket } from 'node:net';
import { dirname } from 'node:path';
import { Code, ConnectError, createContextValues, type Interceptor } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { SpiffeWorkloadAPI } from '../../gen/spiffe/workload/workload_pb.js';
import { readPeerCredentials, releasePeerCredentials } from '../attestation/peer-credentials.js';
import type { PeerCredentials } from '../attestation/workload-attestor.js';
import { createWorkloadApiHandler, kPeer, type WorkloadApiDeps } from './handler.js';

/** The request header every Workload API call must carry with the value `true` (E-2). */
export const SECURITY_HEADER = 'workload.spiffe.io';

/** Largest request accepted; Workload API requests are tiny (a JWT-SVID to validate is the largest). */
const READ_MAX_BYTES = 1024 * 1024;

/** The authority every request is treated as having. */
const PINNED_AUTHORITY = 'localhost';

const kCredentials = Symbol('steeple.peerCredentials');
type WithCredentials = { [kCredentials]?: PeerCredentials | Error };

export interface WorkloadApiServerOptions extends WorkloadApiDeps {
  /** Absolute path of the socket; its directory is created (0755) if missing. */
  readonly socketPath: string;
  /** Reads the credentials of an accepted connection; default SO_PEERCRED/SO_PEERPIDFD via koffi. */
  readonly readCredentials?: (socket: Socket) => PeerCredentials;
}

export interface WorkloadApiServer {
  readonly socketPath: string;
  /** Open connections, for metrics. */
  readonly connections: number;
  /** Ends every stream, closes the listener and removes the socket. */
  close(): Promise<void>;
}

/** Refuses a call without `workload.spiffe.io: true` before anything else runs (E-2, P7). */
export const securityHeaderInterceptor: Interceptor = (next) => async (req) => {
  if (req.header.get(SECURITY_HEADER) !== 'true') {
    throw new ConnectError('security header missing from request', Code.InvalidArgument);
  }
  return next(req);
};

/** Starts serving and resolves once the socket accepts connections. */
export async function startWorkloadApiServer(options: WorkloadApiServerOptions): Promise<WorkloadApiServer> {
  const { logger, socketPath } = options;
  const readCredentials = options.readCredentials ?? readPeerCredentials;
  const shutdown = new AbortController();
  const handler = connectNodeAdapter({
    routes: (router) => router.service(SpiffeWorkloadAPI, createWorkloadApiHandler(options)),
    grpc: true,
    connect: false,
    grpcWeb: false,
    acceptCompression: [],
    readMaxBytes: READ_MAX_BYTES,
    shutdownSignal: shutdown.signal,
    interceptors: [securityHeaderInterceptor],
    contextValues: (req) => {
      const session = (req as Http2ServerRequest).stream?.session as
        | (Http2Session & { socket: WithCredentials })
        | undefined;
      return createContextValues().set(kPeer, session?.socket?.[kCredentials]);
    },
  });

  const server = http2.createServer({}, (req, res) => {
    Object.defineProperty(req, 'authority', { value: PINNED_AUTHORITY, configurable: true });
    try {
      handler(req, res);
    } catch (err) {
      logger.warn({ err }, 'workload api request rejected before dispatch');
      try {
        res.writeHead(200, { 'content-type': 'application/grpc', 'grpc-status': String(Code.Internal) });
        res.end();
      } catch {
        res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      }
    }
  });

  let connections = 0;
  server.on('connection', (socket: Socket & WithCredentials) => {
    connections++;
    let peer: PeerCredentials | undefined;
    try {
      peer = readCredentials(socket);
      socket[kCredentials] = peer;
    } catch (err) {
      socket[kCredentials] = err as Error;
      logger.warn({ err: (err as Error).message }, 'cannot read the peer credentials of a workload connection');
    }
    socket.once('close', () => {
      connections--;
      if (peer !== undefined) releasePeerCredentials(peer);
    });
  });
  const sessions = new Set<Http2Session>();
  server.on('session', (session) => {
    sessions.add(session);
    session.on('error', (err) => logger.debug({ err: err.message }, 'workload api session error'));
    session.on('close', () => sessions.delete(session));
  });
  server.on('stream', (stream) => {
    stream.on('error', (err) => logger.debug({ err: err.message }, 'workload api stream error'));
  });
  server.on('sessionError', (err) => logger.debug({ err: err.message }, 'workload api session error'));

  await prepareSocketPath(socketPath);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => logger.error({ err }, 'workload api listener error'));
  // Any local process may call; what it gets is decided by attestation.
  await chmod(socketPath, 0o777);
  logger.info({ socketPath }, 'Workload API listening');

  let closing: Promise<void> | undefined;
  return {
    socketPath,
    get connections() {
      return connections;
    },
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        shutdown.abort(new ConnectError('the agent is shutting down', Code.Unavailable));
        for (const session of sessions) session.close();
        const timer = setTimeout(() => {
          for (const session of sessions) session.destroy();
        }, 2000);
        timer.unref();
        await closed;
        clearTimeout(timer);
        await unlink(socketPath).catch(() => {});
      })();
      return closing;
    },
  };
}

/** Creates the socket's directory (0755) and removes a stale socket; refuses to remove anything else. */
async function prepareSocketPath(socketPath: string): Promise<void> {
  const dir = dirname(socketPath);
  const created = await mkdir(dir, { recursive: true, mode: 0o755 });
  if (created !== undefined) await chmod(dir, 0o755);
  try {
    const st = await lstat(socketPath);
    if (!st.isSocket()) throw new Error(`${socketPath} exists and is not a socket; refusing to replace it`);
    await unlink(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
