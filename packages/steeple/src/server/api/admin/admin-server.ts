/**
 * Serves the admin API over gRPC (h2c) on a Unix socket.
 *
 * Who may call it is decided by file permissions: the socket is created 0600 and, when the
 * server creates its directory, that directory is 0700, so only the server's own user (and
 * root) can connect. Peer credentials are not read (no SO_PEERCRED reader is wired yet);
 * `readPeerCredentials` is the hook for one, and its result is logged with every change.
 *
 * The pitfalls of connect-node on a Unix socket (spec/workload-api-serving.md) are handled: the
 * `:authority` is pinned to `localhost` and the adapter wrapped, because a malformed authority
 * (which grpc C-core clients send over Unix sockets) would otherwise throw in the request
 * listener and kill the process (P1); response compression is off (P5); only gRPC is served.
 * @module
 */
import { chmod, lstat, mkdir, stat, unlink } from 'node:fs/promises';
import * as http2 from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { dirname, resolve } from 'node:path';
import { type ConnectRouter, createContextValues } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import type { Logger } from '../../../common/logger.js';
import { type AdminCaller, adminCallerKey } from './admin-caller.js';

/** Owner-only modes of the socket and of a directory the server creates for it. */
export const ADMIN_SOCKET_MODE = 0o600;
export const ADMIN_SOCKET_DIR_MODE = 0o700;

/** Admin requests can carry large entry batches; anything above this is refused unread. */
const DEFAULT_READ_MAX_BYTES = 64 * 1024 * 1024;

/** How long an existing socket may take to answer before it is considered stale. */
const PROBE_TIMEOUT_MS = 1000;

/** Credentials of the process at the other end of a connection. */
export interface PeerCredentials {
  readonly uid: number;
  readonly gid: number;
  readonly pid: number;
}

export interface StartAdminServerOptions {
  /** Path of the Unix socket; its directory is created 0700 when missing. */
  readonly socketPath: string;
  /** The services to serve, e.g. `createAdminRoutes(deps)`. */
  readonly routes: (router: ConnectRouter) => void;
  readonly logger: Logger;
  /**
   * Reads the peer's credentials from a freshly accepted connection (SO_PEERCRED). Optional and
   * not provided by Steeple yet; access control does not depend on it.
   */
  readonly readPeerCredentials?: (socket: Socket) => PeerCredentials | undefined;
  /** Largest request message accepted; default 64 MiB. */
  readonly readMaxBytes?: number;
}

export interface AdminServer {
  /** The absolute socket path being served. */
  readonly socketPath: string;
  /** Stops accepting calls, lets running ones finish (up to a grace period) and removes the socket. */
  close(): Promise<void>;
}

const kPeer = Symbol('steeple.adminPeer');

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** Resolves when something accepts a connection on `path`, rejects with the connect error otherwise. */
function probe(path: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const socket = netConnect(path);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' }));
    }, PROBE_TIMEOUT_MS);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolvePromise();
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Makes the socket's directory ready: created 0700 when missing; an existing one is left as it is. */
async function prepareDirectory(dir: string, logger: Logger): Promise<void> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(dir);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
    await mkdir(dir, { recursive: true, mode: ADMIN_SOCKET_DIR_MODE });
    await chmod(dir, ADMIN_SOCKET_DIR_MODE); // mkdir's mode is filtered by the umask
    return;
  }
  if (!info.isDirectory()) throw new Error(`cannot serve the admin API: ${dir} exists and is not a directory`);
  const othersMayWrite = (info.mode & 0o022) !== 0 && (info.mode & 0o1000) === 0;
  if (othersMayWrite) {
    logger.warn(
      { dir, mode: (info.mode & 0o7777).toString(8) },
      'the admin socket directory is writable by other users, who could replace the socket; use a directory only the server user can write',
    );
  }
}

/** Removes a socket file left by a server that is gone; refuses when a live server answers on it. */
async function clearStaleSocket(path: string, logger: Logger): Promise<void> {
  let info: Awaited<ReturnType<typeof lstat>>;
  try {
    info = await lstat(path);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return;
    throw err;
  }
  if (!info.isSocket()) {
    throw new Error(`cannot serve the admin API: ${path} exists and is not a socket; refusing to replace it`);
  }
  try {
    await probe(path);
  } catch (err) {
    if (errnoOf(err) !== 'ECONNREFUSED') throw err;
    await unlink(path);
    logger.info({ socketPath: path }, 'removed stale admin socket left by a previous run');
    return;
  }
  throw new Error(`cannot serve the admin API: another server is already listening on ${path}`);
}

/** Listens with a umask that keeps the socket owner-only from the moment it exists. */
async function listenPrivately(server: http2.Http2Server, path: string): Promise<void> {
  let previousMask: number | undefined;
  try {
    previousMask = process.umask(0o177);
  } catch {
    previousMask = undefined; // worker threads cannot change the umask; the chmod below still applies
  }
  try {
    await new Promise<void>((resolvePromise, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolvePromise();
      });
    });
  } finally {
    if (previousMask !== undefined) process.umask(previousMask);
  }
  await chmod(path, ADMIN_SOCKET_MODE);
}

/**
 * Starts the admin API server on `socketPath`.
 * @throws when the path holds something other than a stale socket, or another server answers on it.
 */
export async function startAdminServer(options: StartAdminServerOptions): Promise<AdminServer> {
  const socketPath = resolve(options.socketPath);
  const logger = options.logger;
  await prepareDirectory(dirname(socketPath), logger);
  await clearStaleSocket(socketPath, logger);

  const handler = connectNodeAdapter({
    routes: options.routes,
    grpc: true,
    grpcWeb: false,
    connect: false,
    acceptCompression: [],
    readMaxBytes: options.readMaxBytes ?? DEFAULT_READ_MAX_BYTES,
    contextValues: (req) => {
      const peer = (req as http2.Http2ServerRequest).stream?.session?.socket as
        | (Socket & { [kPeer]?: PeerCredentials })
        | undefined;
      const creds = peer?.[kPeer];
      const caller: AdminCaller =
        creds === undefined ? { transport: 'unix-socket' } : { transport: 'unix-socket', ...creds };
      return createContextValues().set(adminCallerKey, caller);
    },
  });

  const server = http2.createServer({}, (req, res) => {
    // P1: over a Unix socket the authority means nothing, and a malformed one must not reach
    // connect's `new URL(...)`, which throws inside this listener.
    Object.defineProperty(req, 'authority', { value: 'localhost', configurable: true });
    try {
      handler(req, res);
    } catch (err) {
      logger.warn({ err }, 'admin API request failed before reaching a handler');
      if (!res.headersSent) {
        res.writeHead(200, {
          'content-type': 'application/grpc',
          'grpc-status': '13',
          'grpc-message': 'internal error',
        });
      }
      res.end();
    }
  });

  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
  server.on('sessionError', (err) => logger.debug({ err }, 'admin API connection error'));
  if (options.readPeerCredentials !== undefined) {
    const read = options.readPeerCredentials;
    server.on('connection', (socket: Socket & { [kPeer]?: PeerCredentials }) => {
      try {
        const creds = read(socket);
        if (creds !== undefined) socket[kPeer] = creds;
      } catch (err) {
        logger.warn({ err }, 'could not read the admin API caller credentials');
      }
    });
  }

  await listenPrivately(server, socketPath);
  server.on('error', (err) => logger.error({ err, socketPath }, 'admin API server error'));
  logger.info({ socketPath }, 'admin API listening');

  let closing: Promise<void> | undefined;
  return {
    socketPath,
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((resolvePromise) => server.close(() => resolvePromise()));
        for (const session of sessions) session.close();
        const force = setTimeout(() => {
          for (const session of sessions) session.destroy();
        }, 2000);
        force.unref();
        await closed;
        clearTimeout(force);
        await unlink(socketPath).catch((err: unknown) => {
          if (errnoOf(err) !== 'ENOENT') throw err;
        });
        logger.info({ socketPath }, 'admin API closed');
      })();
      return closing;
    },
  };
}
