/**
 * A client of the SPIFFE Workload API (what go-spiffe's `workloadapi.Client` is): fetch
 * and watch X.509 contexts, bundles and JWT-SVIDs over gRPC on the agent's socket.
 * @module
 */
import { connect as netConnect, type Socket } from 'node:net';
import { type Client, Code, ConnectError, createClient, type Interceptor } from '@connectrpc/connect';
import { createGrpcTransport, Http2SessionManager } from '@connectrpc/connect-node';
import type { BundleSet } from '../bundle/bundle-set.js';
import { type Clock, systemClock } from '../clock.js';
import { SpiffeError, WorkloadApiError } from '../errors.js';
import { SpiffeWorkloadAPI } from '../gen/spiffe/workload/workload_pb.js';
import { SpiffeId } from '../spiffeid/spiffe-id.js';
import type { JwtSvid } from '../svid/jwt-svid.js';
import { resolveWorkloadApiAddress, type WorkloadApiAddress } from './address.js';
import { type Backoff, type BackoffOptions, createBackoff, sleep } from './backoff.js';
import { jwtBundleSetFromMap, x509BundleSetFromMap } from './bundle-maps.js';
import { jwtSvidsFromResponse, validatedJwtSvid } from './jwt-svid-response.js';
import { badResponse } from './response-errors.js';
import { type X509Context, x509ContextFromResponse } from './x509-context.js';

/** The request metadata every Workload API call must carry (E-2). */
export const WORKLOAD_API_SECURITY_HEADER = 'workload.spiffe.io';

/**
 * Where the client reports reconnects and ignored updates. pino and `console` both fit;
 * every method is optional and the default logs nothing.
 */
export interface WorkloadApiLogger {
  debug?(message: string): void;
  warn?(message: string): void;
  error?(message: string): void;
}

/** Options of {@link createWorkloadApiClient}. */
export interface WorkloadApiClientOptions {
  /** `unix:///path/to/api.sock` or `tcp://<IP>:<port>`; default `SPIFFE_ENDPOINT_SOCKET` (E-4). */
  readonly address?: string;
  /** Time for retry delays and JWT-SVID expiry checks; default the system clock. */
  readonly clock?: Clock;
  readonly logger?: WorkloadApiLogger;
  /** Watch retry delays; default 1 s doubling to 30 s with jitter. */
  readonly backoff?: BackoffOptions;
  /**
   * Extra connect interceptors (tracing, metrics), run after the security header is set.
   * Advanced: an interceptor that removes the header makes every call fail.
   */
  readonly interceptors?: readonly Interceptor[];
}

/** Receives the updates of a watch. */
export interface WatchHandler<T> {
  /** Each update is the complete current state (W-3). A returned promise is awaited before the next update. */
  onUpdate(value: T): void | Promise<void>;
  /**
   * A failed stream (before the watch retries it), an update that breaks the spec (it is
   * ignored; the last good state stays), or an exception thrown by `onUpdate`.
   */
  onError?(error: Error): void;
}

/** What {@link WorkloadApiClient.fetchJwtSvid} asks for. A {@link JwtSvidParams} fits too. */
export interface FetchJwtSvidParams {
  /** One audience or several; at least one is required (W-9). */
  readonly audience: string | readonly string[];
  /** Further audiences, appended to `audience`. */
  readonly extraAudiences?: readonly string[];
  /** Only this identity of the workload; default every identity, the default one first. */
  readonly subject?: SpiffeId | string;
}

// Failures to reach the endpoint or of the connection under a call. grpc-go reports
// these as Unavailable, and the spec says a client that cannot reach the endpoint may
// retry (E-5); connect-node calls some of them Internal or Aborted.
const TRANSPORT_ERRORS = new Set([
  'ENOENT',
  'EACCES',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  // Node's own codes, written without their "ERR_" prefix so that they are not mistaken
  // for Steeple error codes (docs/errors.md lists only ours).
  ...[
    'HTTP2_GOAWAY_SESSION',
    'HTTP2_SESSION_ERROR',
    'HTTP2_STREAM_ERROR',
    'HTTP2_INVALID_SESSION',
    'STREAM_PREMATURE_CLOSE',
  ].map((c) => `ERR_${c}`),
]);

function isTransportFailure(err: unknown): boolean {
  const seen = new Set<unknown>();
  for (let e = err; e instanceof Error && !seen.has(e); e = e.cause) {
    seen.add(e);
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && TRANSPORT_ERRORS.has(code)) return true;
  }
  return false;
}

function statusError(method: string, err: unknown): Error {
  if (err instanceof SpiffeError) return err;
  const ce = ConnectError.from(err);
  const code =
    (ce.code === Code.Internal || ce.code === Code.Aborted || ce.code === Code.Unknown) && isTransportFailure(err)
      ? Code.Unavailable
      : ce.code;
  const name = Code[code] ?? String(code);
  return new WorkloadApiError(
    'ERR_WORKLOADAPI_STATUS',
    `Workload API ${method} failed with ${name} (${code}): ${ce.rawMessage}`,
    { grpcCode: code, cause: err },
  );
}

/** An AbortController that also aborts when any of `parents` does. */
function linkedController(...parents: (AbortSignal | undefined)[]): {
  controller: AbortController;
  unlink: () => void;
} {
  const controller = new AbortController();
  const listeners: [AbortSignal, () => void][] = [];
  for (const parent of parents) {
    if (!parent) continue;
    if (parent.aborted) {
      controller.abort(parent.reason);
      break;
    }
    const onAbort = (): void => controller.abort(parent.reason);
    parent.addEventListener('abort', onAbort, { once: true });
    listeners.push([parent, onAbort]);
  }
  return {
    controller,
    unlink: () => {
      for (const [parent, fn] of listeners) parent.removeEventListener('abort', fn);
    },
  };
}

function audiencesOf(params: FetchJwtSvidParams): string[] {
  if (typeof params !== 'object' || params === null) throw new TypeError('fetchJwtSvid expects { audience }');
  const first = typeof params.audience === 'string' ? [params.audience] : [...(params.audience ?? [])];
  const all = [...first, ...(params.extraAudiences ?? [])];
  if (all.length === 0 || all.some((a) => typeof a !== 'string' || a === '')) {
    throw new TypeError('fetchJwtSvid: audience must hold at least one non-empty string (W-9)');
  }
  return all;
}

/**
 * A Workload API client. Calls go over one HTTP/2 connection to the endpoint, opened on
 * first use and reopened after a failure; every request carries `workload.spiffe.io: true`
 * (E-2). Watches keep their stream open, hand each complete state to the handler, and
 * reconnect with backoff after any failure except InvalidArgument (the client is at fault,
 * E-5) or cancellation (W-12). Call {@link WorkloadApiClient.close} when done.
 *
 * @example
 * const client = createWorkloadApiClient(); // SPIFFE_ENDPOINT_SOCKET
 * const { svids, bundles } = await client.fetchX509Context();
 * await client.close();
 */
export class WorkloadApiClient {
  /** The endpoint this client talks to. */
  readonly address: WorkloadApiAddress;
  readonly #rpc: Client<typeof SpiffeWorkloadAPI>;
  readonly #sessions: Http2SessionManager;
  readonly #clock: Clock;
  readonly #logger: WorkloadApiLogger;
  readonly #backoff: BackoffOptions;
  readonly #closer = new AbortController();
  readonly #running = new Set<Promise<unknown>>();

  /** Throws {@link WorkloadApiError} `ERR_WORKLOADAPI_ADDRESS` for a missing or invalid address. */
  constructor(options: WorkloadApiClientOptions = {}) {
    this.address = resolveWorkloadApiAddress(options.address);
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? {};
    this.#backoff = options.backoff ?? {};
    createBackoff(this.#backoff); // validates the options now rather than at the first retry
    const target = this.address;
    const dial = (): Socket =>
      target.network === 'unix' ? netConnect(target.path) : netConnect({ host: target.host, port: target.port });
    // The authority is meaningless on a local socket; "localhost" is what grpc-go sends.
    this.#sessions = new Http2SessionManager('http://localhost', {}, { createConnection: dial });
    const securityHeader: Interceptor = (next) => (req) => {
      req.header.set(WORKLOAD_API_SECURITY_HEADER, 'true');
      return next(req);
    };
    const transport = createGrpcTransport({
      baseUrl: 'http://localhost',
      sessionManager: this.#sessions,
      interceptors: [securityHeader, ...(options.interceptors ?? [])],
      // Compression buys nothing on a local socket and costs CPU on both ends.
      acceptCompression: [],
    });
    this.#rpc = createClient(SpiffeWorkloadAPI, transport);
  }

  /** True once {@link WorkloadApiClient.close} was called. */
  get closed(): boolean {
    return this.#closer.signal.aborted;
  }

  /** The workload's current X.509-SVIDs and bundles (the first message of FetchX509SVID). */
  async fetchX509Context(signal?: AbortSignal): Promise<X509Context> {
    return this.#first(
      'FetchX509SVID',
      signal,
      (s) => this.#rpc.fetchX509SVID({}, { signal: s }),
      (res) => x509ContextFromResponse(res),
    );
  }

  /**
   * Watches the X.509 context until `signal` aborts or the client closes (then resolves),
   * or the endpoint answers InvalidArgument (then rejects with that error).
   */
  async watchX509Context(handler: WatchHandler<X509Context>, signal?: AbortSignal): Promise<void> {
    return this.#watch(
      'FetchX509SVID',
      (s) => this.#rpc.fetchX509SVID({}, { signal: s }),
      (res) => x509ContextFromResponse(res),
      handler,
      signal,
    );
  }

  /** The X.509 bundles of every trust domain the workload trusts (FetchX509Bundles, W-7). */
  async fetchX509Bundles(signal?: AbortSignal): Promise<BundleSet> {
    return this.#first(
      'FetchX509Bundles',
      signal,
      (s) => this.#rpc.fetchX509Bundles({}, { signal: s }),
      (res) => x509BundleSetFromMap(res.bundles),
    );
  }

  /** Watches the X.509 bundles; ends like {@link WorkloadApiClient.watchX509Context}. */
  async watchX509Bundles(handler: WatchHandler<BundleSet>, signal?: AbortSignal): Promise<void> {
    return this.#watch(
      'FetchX509Bundles',
      (s) => this.#rpc.fetchX509Bundles({}, { signal: s }),
      (res) => x509BundleSetFromMap(res.bundles),
      handler,
      signal,
    );
  }

  /** The JWT bundles (JWK Sets) of every trust domain the workload trusts (FetchJWTBundles, W-10). */
  async fetchJwtBundles(signal?: AbortSignal): Promise<BundleSet> {
    return this.#first(
      'FetchJWTBundles',
      signal,
      (s) => this.#rpc.fetchJWTBundles({}, { signal: s }),
      (res) => jwtBundleSetFromMap(res.bundles),
    );
  }

  /** Watches the JWT bundles; ends like {@link WorkloadApiClient.watchX509Context}. */
  async watchJwtBundles(handler: WatchHandler<BundleSet>, signal?: AbortSignal): Promise<void> {
    return this.#watch(
      'FetchJWTBundles',
      (s) => this.#rpc.fetchJWTBundles({}, { signal: s }),
      (res) => jwtBundleSetFromMap(res.bundles),
      handler,
      signal,
    );
  }

  /**
   * A JWT-SVID for the audience: for `subject` when given, else for the default identity.
   * The token's `aud` holds the requested audiences.
   */
  async fetchJwtSvid(params: FetchJwtSvidParams, signal?: AbortSignal): Promise<JwtSvid> {
    const svids = await this.fetchJwtSvids(params, signal);
    if (params.subject === undefined) return svids[0] as JwtSvid;
    const subject = SpiffeId.from(params.subject);
    const match = svids.find((s) => s.id.equals(subject));
    if (!match) throw badResponse(`FetchJWTSVID returned no JWT-SVID for the requested subject "${subject}" (W-9)`);
    return match;
  }

  /** One JWT-SVID per identity of the workload (or only `subject`'s), the default identity first. */
  async fetchJwtSvids(params: FetchJwtSvidParams, signal?: AbortSignal): Promise<JwtSvid[]> {
    const audience = audiencesOf(params);
    const spiffeId = params.subject === undefined ? '' : SpiffeId.from(params.subject).toString();
    return this.#call('FetchJWTSVID', signal, async (s) => {
      const res = await this.#rpc.fetchJWTSVID({ audience, spiffeId }, { signal: s });
      return jwtSvidsFromResponse(res, audience, this.#clock);
    });
  }

  /**
   * Asks the endpoint to validate a JWT-SVID for `audience` with its own and federated JWT
   * bundles (W-11) and returns the parsed token. An invalid token rejects with
   * `ERR_WORKLOADAPI_STATUS` and `grpcCode` 3 (InvalidArgument), as SPIRE answers.
   */
  async validateJwtSvid(token: string, audience: string, signal?: AbortSignal): Promise<JwtSvid> {
    if (typeof token !== 'string' || token === '')
      throw new TypeError('validateJwtSvid: token must be a non-empty string');
    if (typeof audience !== 'string' || audience === '') {
      throw new TypeError('validateJwtSvid: audience must be a non-empty string (W-11)');
    }
    return this.#call('ValidateJWTSVID', signal, async (s) => {
      const res = await this.#rpc.validateJWTSVID({ audience, svid: token }, { signal: s });
      return validatedJwtSvid(res, token, audience, this.#clock);
    });
  }

  /**
   * Ends every watch (they resolve), fails calls in flight with `ERR_WORKLOADAPI_CLOSED`,
   * and closes the connection. Safe to call twice.
   */
  async close(): Promise<void> {
    if (!this.closed) {
      this.#closer.abort(new WorkloadApiError('ERR_WORKLOADAPI_CLOSED', 'the Workload API client is closed'));
    }
    await Promise.allSettled([...this.#running]);
    this.#sessions.abort();
  }

  #assertOpen(method: string): void {
    if (this.closed) {
      throw new WorkloadApiError('ERR_WORKLOADAPI_CLOSED', `Workload API ${method}: the client is closed`);
    }
  }

  #track<T>(task: Promise<T>): Promise<T> {
    this.#running.add(task);
    const untrack = (): void => {
      this.#running.delete(task);
    };
    task.then(untrack, untrack);
    return task;
  }

  /** Runs one call with the caller's signal and the client's close linked in, mapping failures to typed errors. */
  #call<T>(method: string, signal: AbortSignal | undefined, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    this.#assertOpen(method);
    const { controller, unlink } = linkedController(signal, this.#closer.signal);
    const task = (async () => {
      try {
        return await run(controller.signal);
      } catch (err) {
        if (this.closed)
          throw new WorkloadApiError('ERR_WORKLOADAPI_CLOSED', `Workload API ${method}: the client is closed`);
        if (signal?.aborted) throw signal.reason;
        throw statusError(method, err);
      } finally {
        unlink();
        // Ends a stream whose first message was all we wanted.
        controller.abort();
      }
    })();
    return this.#track(task);
  }

  #first<M, T>(
    method: string,
    signal: AbortSignal | undefined,
    open: (signal: AbortSignal) => AsyncIterable<M>,
    decode: (message: M) => T,
  ): Promise<T> {
    return this.#call(method, signal, async (s) => {
      for await (const message of open(s)) return decode(message);
      throw badResponse(`${method} ended before its first message; it must be sent at once (W-3)`);
    });
  }

  #watch<M, T>(
    method: string,
    open: (signal: AbortSignal) => AsyncIterable<M>,
    decode: (message: M) => T,
    handler: WatchHandler<T>,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    if (typeof handler?.onUpdate !== 'function') throw new TypeError(`watch ${method}: handler.onUpdate is required`);
    this.#assertOpen(method);
    const { controller, unlink } = linkedController(signal, this.#closer.signal);
    const stop = controller.signal;
    const backoff: Backoff = createBackoff(this.#backoff);
    const task = (async () => {
      try {
        while (!stop.aborted) {
          let failure: unknown;
          try {
            for await (const message of open(stop)) {
              backoff.reset();
              let value: T;
              try {
                value = decode(message);
              } catch (err) {
                this.#logger.error?.(
                  `Workload API ${method}: ignoring an update: ${(err as Error).message}; the last good state stays`,
                );
                this.#report(handler, err);
                continue;
              }
              await this.#deliver(method, handler, value);
            }
            failure = new WorkloadApiError(
              'ERR_WORKLOADAPI_STATUS',
              `Workload API ${method}: the endpoint ended the stream (status OK)`,
              { grpcCode: 0 },
            );
          } catch (err) {
            failure = err;
          }
          if (stop.aborted) break;
          const error = statusError(method, failure);
          this.#report(handler, error);
          if (error instanceof WorkloadApiError && error.grpcCode === Code.InvalidArgument) {
            // The endpoint says this client is broken (e.g. no security header): retrying cannot help (E-5).
            this.#logger.error?.(`${error.message}; not retrying`);
            throw error;
          }
          const delay = backoff.next();
          this.#logger.warn?.(`${error.message}; retrying in ${delay} ms`);
          await sleep(this.#clock, delay, stop);
        }
      } finally {
        unlink();
        controller.abort();
      }
    })();
    return this.#track(task);
  }

  async #deliver<T>(method: string, handler: WatchHandler<T>, value: T): Promise<void> {
    try {
      await handler.onUpdate(value);
    } catch (err) {
      this.#logger.error?.(`Workload API ${method}: the update handler threw: ${(err as Error)?.message}`);
      this.#report(handler, err);
    }
  }

  #report<T>(handler: WatchHandler<T>, err: unknown): void {
    try {
      handler.onError?.(err instanceof Error ? err : new Error(String(err)));
    } catch {
      // A throwing error handler must not end the watch.
    }
  }
}

/**
 * A Workload API client for `options.address`, or `SPIFFE_ENDPOINT_SOCKET` when no address
 * is given. Connects lazily. Throws {@link WorkloadApiError} `ERR_WORKLOADAPI_ADDRESS` for
 * a missing or invalid address.
 */
export function createWorkloadApiClient(options: WorkloadApiClientOptions = {}): WorkloadApiClient {
  return new WorkloadApiClient(options);
}
