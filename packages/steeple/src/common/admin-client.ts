/**
 * A typed client for the server's admin API on its Unix socket, for the CLI and other local
 * tools (it lives in common/ so they need not import the server).
 *
 * ```ts
 * const admin = createAdminClient(DEFAULT_SERVER_SOCKET_PATH);
 * try {
 *   const { count } = await admin.entries.countEntries({});
 * } finally {
 *   admin.close();
 * }
 * ```
 * @module
 */
import { connect as netConnect } from 'node:net';
import { resolve } from 'node:path';
import { type Client, Code, ConnectError, createClient, type Interceptor } from '@connectrpc/connect';
import { createGrpcTransport, Http2SessionManager } from '@connectrpc/connect-node';
import { AgentService } from '../gen/steeple/server/v1/agent_pb.js';
import { BundleService } from '../gen/steeple/server/v1/bundle_pb.js';
import { EntryService } from '../gen/steeple/server/v1/entry_pb.js';
import { HealthService } from '../gen/steeple/server/v1/health_pb.js';
import { SvidService } from '../gen/steeple/server/v1/svid_pb.js';
import { TrustDomainService } from '../gen/steeple/server/v1/trust_domain_pb.js';

/** One client per admin service, sharing one connection. */
export interface AdminClient {
  readonly socketPath: string;
  readonly entries: Client<typeof EntryService>;
  readonly agents: Client<typeof AgentService>;
  readonly bundles: Client<typeof BundleService>;
  readonly svids: Client<typeof SvidService>;
  readonly trustDomains: Client<typeof TrustDomainService>;
  readonly health: Client<typeof HealthService>;
  /** Closes the connection; calls in flight are aborted. */
  close(): void;
}

export interface AdminClientOptions {
  /** Deadline of each call; default 30 s (a large entry batch can take a while). 0 for none. */
  readonly timeoutMs?: number;
}

const CONNECT_ERRORS: Readonly<Record<string, { code: Code; hint: string }>> = {
  ENOENT: { code: Code.Unavailable, hint: 'is "steeple server run" running?' },
  ECONNREFUSED: { code: Code.Unavailable, hint: 'is "steeple server run" running?' },
  EACCES: {
    code: Code.PermissionDenied,
    hint: 'permission denied: only the user the server runs as (or root) may use the admin socket',
  },
  ENOTSOCK: { code: Code.Unavailable, hint: 'the path is not a socket' },
  ENOTDIR: { code: Code.Unavailable, hint: 'a part of the path is not a directory' },
};

/** The errno of the first error in `err`'s cause chain that has one. */
function errnoIn(err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && code.startsWith('E')) return code;
  }
  return undefined;
}

/** Turns "could not connect" into a message that says which socket and what to check. */
function explainConnectFailures(socketPath: string): Interceptor {
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (err) {
      const errno = errnoIn(err);
      const known = errno === undefined ? undefined : CONNECT_ERRORS[errno];
      if (known === undefined) throw err;
      throw new ConnectError(
        `cannot reach the Steeple server admin socket at ${socketPath}: ${known.hint} (${errno})`,
        known.code,
        undefined,
        undefined,
        err,
      );
    }
  };
}

/**
 * Creates clients for every admin service over gRPC on the Unix socket at `socketPath`.
 * Connecting is lazy: a missing socket shows up on the first call, as a ConnectError
 * (Unavailable) saying `cannot reach the Steeple server admin socket at <path>: is "steeple
 * server run" running? (ENOENT)`.
 */
export function createAdminClient(socketPath: string, options: AdminClientOptions = {}): AdminClient {
  const path = resolve(socketPath);
  const timeoutMs = options.timeoutMs ?? 30_000;
  // The authority is irrelevant over a Unix socket; "localhost" is what the server pins it to.
  const sessionManager = new Http2SessionManager('http://localhost', {}, { createConnection: () => netConnect(path) });
  const transport = createGrpcTransport({
    baseUrl: 'http://localhost',
    sessionManager,
    interceptors: [explainConnectFailures(path)],
    ...(timeoutMs > 0 ? { defaultTimeoutMs: timeoutMs } : {}),
  });
  return {
    socketPath: path,
    entries: createClient(EntryService, transport),
    agents: createClient(AgentService, transport),
    bundles: createClient(BundleService, transport),
    svids: createClient(SvidService, transport),
    trustDomains: createClient(TrustDomainService, transport),
    health: createClient(HealthService, transport),
    close: () => sessionManager.abort(),
  };
}
