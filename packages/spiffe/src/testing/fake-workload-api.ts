/**
 * A fake SPIFFE Workload API for tests: a real gRPC server on a Unix socket, serving
 * state the test controls. It follows the same serving rules as the Steeple agent
 * (docs: workload-api-serving.md): the `:authority` is pinned and the handler wrapped
 * (P1), responses are never compressed (P5), the security header is checked in an
 * interceptor before anything else (P7, E-2), streams send the full state at once and
 * again on every change (W-3) and end with the abort reason when cancelled (P4).
 * @module
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Http2Server, type ServerHttp2Session } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create, type JsonObject, type MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError, type HandlerContext, type Interceptor } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import type { BundleSet } from '../bundle/bundle-set.js';
import { type Clock, systemClock } from '../clock.js';
import { SpiffeError, SpiffeIdError } from '../errors.js';
import {
  type JWTBundlesResponse,
  JWTBundlesResponseSchema,
  type JWTSVIDResponse,
  JWTSVIDResponseSchema,
  SpiffeWorkloadAPI,
  type X509BundlesResponse,
  X509BundlesResponseSchema,
  type X509SVIDResponse,
  X509SVIDResponseSchema,
} from '../gen/spiffe/workload/workload_pb.js';
import { SpiffeId } from '../spiffeid/spiffe-id.js';
import { JwtSvid } from '../svid/jwt-svid.js';
import type { X509Svid } from '../svid/x509-svid.js';

/** What a FetchJWTSVID call asked for. */
export interface FakeJwtSvidRequest {
  readonly audience: readonly string[];
  /** The requested identity, when the caller named one. */
  readonly spiffeId?: SpiffeId;
}

/** One JWT-SVID of a FetchJWTSVID answer; `spiffeId` defaults to the token's `sub`. */
export interface FakeJwtSvid {
  readonly token: string;
  readonly spiffeId?: string;
  readonly hint?: string;
}

/** Mints the JWT-SVIDs for a FetchJWTSVID call (e.g. with a TestJwtAuthority). */
export type FakeJwtSvidMinter = (
  request: FakeJwtSvidRequest,
) =>
  | string
  | FakeJwtSvid
  | readonly (string | FakeJwtSvid)[]
  | Promise<string | FakeJwtSvid | readonly (string | FakeJwtSvid)[]>;

export interface StartFakeWorkloadApiOptions {
  /** Where to listen; default `api.sock` in a fresh temporary directory (removed on close). */
  readonly socketPath?: string;
  /** Initial X.509-SVIDs and bundles, as {@link FakeWorkloadApi.setX509Svids}. */
  readonly svids?: readonly X509Svid[];
  readonly bundles?: BundleSet;
  /** Initial JWT bundles, as {@link FakeWorkloadApi.setJwtBundles}. */
  readonly jwtBundles?: BundleSet;
  readonly jwtSvidMinter?: FakeJwtSvidMinter;
  /** Time for ValidateJWTSVID; default the system clock. */
  readonly clock?: Clock;
}

/** The Workload API RPC names, as counted by {@link FakeWorkloadApi.requestCount}. */
export type WorkloadApiMethod =
  | 'FetchX509SVID'
  | 'FetchX509Bundles'
  | 'FetchJWTSVID'
  | 'FetchJWTBundles'
  | 'ValidateJWTSVID'
  | 'FetchWITSVID'
  | 'FetchWITBundles';

/** A running fake Workload API. Every setter pushes the new state to the open streams. */
export interface FakeWorkloadApi {
  readonly socketPath: string;
  /** `unix://<socketPath>`, for a client's `address` option or `SPIFFE_ENDPOINT_SOCKET`. */
  readonly address: string;
  /**
   * The caller's identities (the first is the default) with their bundles: each SVID gets
   * the X.509 bundle of its own trust domain from `bundles` (which must hold it); every
   * other trust domain in `bundles` becomes a federated bundle. FetchX509Bundles serves all
   * of them. An empty list means "no identity": PermissionDenied, also on open streams.
   */
  setX509Svids(svids: readonly X509Svid[], bundles: BundleSet): void;
  /** No identity any more: open X.509 streams end with PermissionDenied, as an agent's do. */
  clearX509Svids(): void;
  /** Serves exactly this FetchX509SVID message, e.g. one that breaks the spec on purpose. */
  setX509SvidResponse(response: MessageInitShape<typeof X509SVIDResponseSchema>): void;
  /** Serves exactly this FetchX509Bundles message. */
  setX509BundlesResponse(response: MessageInitShape<typeof X509BundlesResponseSchema>): void;
  /** The JWT bundles served by FetchJWTBundles and used by ValidateJWTSVID. */
  setJwtBundles(bundles: BundleSet): void;
  /** Serves exactly this FetchJWTBundles message (ValidateJWTSVID keeps the last set bundles). */
  setJwtBundlesResponse(response: MessageInitShape<typeof JWTBundlesResponseSchema>): void;
  /** How FetchJWTSVID answers; without a minter it answers PermissionDenied. */
  setJwtSvidMinter(minter: FakeJwtSvidMinter | undefined): void;
  /**
   * Makes every call fail with this gRPC code (open streams end with it), until called
   * again without a code. The security header is still checked first.
   */
  setError(code: Code | undefined, message?: string): void;
  /** How many calls arrived, for one method or all, counting refused ones. */
  requestCount(method?: WorkloadApiMethod): number;
  /** Streams open right now. */
  readonly openStreams: number;
  /** Ends every connection and stream, stops listening and removes the socket. */
  close(): Promise<void>;
}

interface Deferred {
  readonly promise: Promise<void>;
  readonly resolve: () => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function x509Messages(
  svids: readonly X509Svid[],
  bundles: BundleSet,
): { svidResponse: X509SVIDResponse; bundlesResponse: X509BundlesResponse } {
  const own = new Set(svids.map((s) => s.id.trustDomain.name));
  const entries = svids.map((svid) => {
    const bundle = bundles.getX509BundleForTrustDomain(svid.id.trustDomain);
    if (!bundle) {
      throw new TypeError(
        `setX509Svids: the bundle set has no bundle for "${svid.id.trustDomain.name}", the trust domain of ${svid.id}`,
      );
    }
    const raw = svid.marshalRaw();
    return {
      spiffeId: svid.id.toString(),
      x509Svid: raw.certificates,
      x509SvidKey: raw.privateKey,
      bundle: bundle.marshalRaw(),
      hint: svid.hint ?? '',
    };
  });
  const federatedBundles: Record<string, Uint8Array> = {};
  const all: Record<string, Uint8Array> = {};
  for (const b of bundles.bundles()) {
    if (b.x509Authorities.length === 0) continue;
    // Keys are the trust domain's SPIFFE ID, as SPIRE sends them (W-8).
    all[b.trustDomain.idString()] = b.x509Bundle().marshalRaw();
    if (!own.has(b.trustDomain.name)) federatedBundles[b.trustDomain.idString()] = b.x509Bundle().marshalRaw();
  }
  return {
    svidResponse: create(X509SVIDResponseSchema, { svids: entries, federatedBundles }),
    bundlesResponse: create(X509BundlesResponseSchema, { bundles: all }),
  };
}

function jwtBundlesMessage(bundles: BundleSet): JWTBundlesResponse {
  const map: Record<string, Uint8Array> = {};
  for (const b of bundles.bundles()) {
    map[b.trustDomain.idString()] = Buffer.from(b.jwtBundle().marshal(), 'utf8');
  }
  return create(JWTBundlesResponseSchema, { bundles: map });
}

/** The `sub` of a token, read without any checks (a fake may be asked to serve garbage). */
function subjectOf(token: string): string {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
    return typeof payload?.sub === 'string' ? payload.sub : '';
  } catch {
    return '';
  }
}

class FakeWorkloadApiServer implements FakeWorkloadApi {
  readonly socketPath: string;
  readonly address: string;
  readonly #server: Http2Server;
  readonly #ownedDir: string | undefined;
  readonly #clock: Clock;
  readonly #sessions = new Set<ServerHttp2Session>();
  readonly #counts = new Map<string, number>();
  #x509: X509SVIDResponse | undefined;
  #x509Bundles: X509BundlesResponse | undefined;
  #jwtBundles: JWTBundlesResponse | undefined;
  #jwtBundleSet: BundleSet | undefined;
  #minter: FakeJwtSvidMinter | undefined;
  #error: ConnectError | undefined;
  #changed = deferred();
  #openStreams = 0;
  #closed = false;

  constructor(socketPath: string, ownedDir: string | undefined, options: StartFakeWorkloadApiOptions) {
    this.socketPath = socketPath;
    this.address = `unix://${socketPath}`;
    this.#ownedDir = ownedDir;
    this.#clock = options.clock ?? systemClock;
    if (options.svids && options.bundles) this.setX509Svids(options.svids, options.bundles);
    if (options.jwtBundles) this.setJwtBundles(options.jwtBundles);
    this.#minter = options.jwtSvidMinter;

    const guard: Interceptor = (next) => async (req) => {
      this.#counts.set(req.method.name, (this.#counts.get(req.method.name) ?? 0) + 1);
      // Exactly one value, exactly "true" (E-2): "TRUE" and "true, true" are refused (P7).
      if (req.header.get('workload.spiffe.io') !== 'true') {
        throw new ConnectError('security header missing from request', Code.InvalidArgument);
      }
      return next(req);
    };
    const handler = connectNodeAdapter({
      routes: (router) => {
        // The WIT RPCs are left out: the router answers them Unimplemented (W-1).
        router.service(SpiffeWorkloadAPI, {
          fetchX509SVID: (_req, ctx) => this.#stream(ctx, () => this.#x509, 'no identity issued'),
          fetchX509Bundles: (_req, ctx) => this.#stream(ctx, () => this.#x509Bundles, 'no identity issued'),
          fetchJWTBundles: (_req, ctx) => this.#stream(ctx, () => this.#jwtBundles, 'no identity issued'),
          fetchJWTSVID: (req) => this.#fetchJwtSvid(req.audience, req.spiffeId),
          validateJWTSVID: (req) => this.#validateJwtSvid(req.audience, req.svid),
        });
      },
      grpc: true,
      grpcWeb: false,
      connect: false,
      acceptCompression: [],
      interceptors: [guard],
    });
    this.#server = createServer({}, (req, res) => {
      // Over a Unix socket the authority means nothing, and connect-node throws on a
      // malformed one (grpc C-core sends the %-encoded socket path): pin it (P1).
      Object.defineProperty(req, 'authority', { value: 'localhost', configurable: true });
      try {
        handler(req, res);
      } catch {
        if (!res.headersSent) res.writeHead(200, { 'content-type': 'application/grpc', 'grpc-status': '13' });
        res.end();
      }
    });
    this.#server.on('session', (session) => {
      this.#sessions.add(session);
      session.on('close', () => this.#sessions.delete(session));
      session.on('error', () => {});
    });
  }

  async listen(): Promise<void> {
    // A socket file left by an earlier server on the same path would make listen fail.
    await rm(this.socketPath, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.socketPath, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
  }

  get openStreams(): number {
    return this.#openStreams;
  }

  requestCount(method?: WorkloadApiMethod): number {
    if (method !== undefined) return this.#counts.get(method) ?? 0;
    let n = 0;
    for (const c of this.#counts.values()) n += c;
    return n;
  }

  setX509Svids(svids: readonly X509Svid[], bundles: BundleSet): void {
    if (svids.length === 0) {
      this.clearX509Svids();
      return;
    }
    const { svidResponse, bundlesResponse } = x509Messages(svids, bundles);
    this.#x509 = svidResponse;
    this.#x509Bundles = bundlesResponse;
    this.#notify();
  }

  clearX509Svids(): void {
    this.#x509 = undefined;
    this.#x509Bundles = undefined;
    this.#notify();
  }

  setX509SvidResponse(response: MessageInitShape<typeof X509SVIDResponseSchema>): void {
    this.#x509 = create(X509SVIDResponseSchema, response);
    this.#notify();
  }

  setX509BundlesResponse(response: MessageInitShape<typeof X509BundlesResponseSchema>): void {
    this.#x509Bundles = create(X509BundlesResponseSchema, response);
    this.#notify();
  }

  setJwtBundles(bundles: BundleSet): void {
    this.#jwtBundleSet = bundles;
    this.#jwtBundles = jwtBundlesMessage(bundles);
    this.#notify();
  }

  setJwtBundlesResponse(response: MessageInitShape<typeof JWTBundlesResponseSchema>): void {
    this.#jwtBundles = create(JWTBundlesResponseSchema, response);
    this.#notify();
  }

  setJwtSvidMinter(minter: FakeJwtSvidMinter | undefined): void {
    this.#minter = minter;
  }

  setError(code: Code | undefined, message?: string): void {
    this.#error = code === undefined ? undefined : new ConnectError(message ?? `fake error ${Code[code]}`, code);
    this.#notify();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Like an agent shutting down: open streams end with Unavailable (clients retry), then
    // the connections go away; whatever is still open after a grace period is cut.
    this.#error = new ConnectError('the Workload API is shutting down', Code.Unavailable);
    this.#notify();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const session of this.#sessions) session.close();
    const grace = setTimeout(() => {
      for (const session of this.#sessions) session.destroy();
    }, 1000);
    await closed;
    clearTimeout(grace);
    await rm(this.socketPath, { force: true });
    if (this.#ownedDir) await rm(this.#ownedDir, { recursive: true, force: true });
  }

  #notify(): void {
    const previous = this.#changed;
    this.#changed = deferred();
    previous.resolve();
  }

  /** A server stream: the current message at once, then again whenever it changes (W-3). */
  async *#stream<T>(ctx: HandlerContext, current: () => T | undefined, noIdentity: string): AsyncGenerator<T> {
    const aborted = new Promise<void>((resolve) =>
      ctx.signal.addEventListener('abort', () => resolve(), { once: true }),
    );
    let sent: T | undefined;
    this.#openStreams++;
    try {
      for (;;) {
        // Ending with the abort reason makes the status CANCELLED/DEADLINE_EXCEEDED, not OK (P4).
        if (ctx.signal.aborted) throw ctx.signal.reason;
        if (this.#error) throw this.#error;
        const message = current();
        if (message === undefined) throw new ConnectError(noIdentity, Code.PermissionDenied);
        const changed = this.#changed.promise;
        if (message !== sent) {
          sent = message;
          yield message;
        }
        await Promise.race([changed, aborted]);
      }
    } finally {
      this.#openStreams--;
    }
  }

  async #fetchJwtSvid(audience: readonly string[], spiffeId: string): Promise<JWTSVIDResponse> {
    if (this.#error) throw this.#error;
    if (audience.length === 0) throw new ConnectError('audience must be specified', Code.InvalidArgument);
    let id: SpiffeId | undefined;
    if (spiffeId !== '') {
      const parsed = SpiffeId.tryParse(spiffeId);
      if (parsed instanceof SpiffeIdError) throw new ConnectError(parsed.message, Code.InvalidArgument);
      id = parsed;
    }
    if (!this.#minter) throw new ConnectError('no identity issued', Code.PermissionDenied);
    const minted = await this.#minter(id === undefined ? { audience } : { audience, spiffeId: id });
    const list = (Array.isArray(minted) ? minted : [minted]) as (string | FakeJwtSvid)[];
    const svids = list.map((m) => {
      const entry = typeof m === 'string' ? { token: m } : m;
      return { spiffeId: entry.spiffeId ?? subjectOf(entry.token), svid: entry.token, hint: entry.hint ?? '' };
    });
    return create(JWTSVIDResponseSchema, { svids });
  }

  async #validateJwtSvid(audience: string, token: string) {
    if (this.#error) throw this.#error;
    if (audience === '') throw new ConnectError('audience must be specified', Code.InvalidArgument);
    if (token === '') throw new ConnectError('svid must be specified', Code.InvalidArgument);
    const bundles = this.#jwtBundleSet;
    if (!bundles) throw new ConnectError('no JWT bundles', Code.InvalidArgument);
    let svid: JwtSvid;
    try {
      svid = JwtSvid.parseAndValidateSync(token, bundles, [audience], { clock: this.#clock });
    } catch (err) {
      if (err instanceof SpiffeError) throw new ConnectError(err.message, Code.InvalidArgument);
      throw err;
    }
    return { spiffeId: svid.id.toString(), claims: svid.claims as JsonObject };
  }
}

/**
 * Starts a fake Workload API on a Unix socket. Point a client at `address`, change the
 * state with the setters, and `close()` it at the end of the test.
 *
 * @example
 * const api = await startFakeWorkloadApi({ svids: [ca.issueX509Svid('spiffe://example.org/web')], bundles: BundleSet.of(ca.x509Bundle()) });
 * const source = await X509Source.create({ address: api.address });
 */
export async function startFakeWorkloadApi(options: StartFakeWorkloadApiOptions = {}): Promise<FakeWorkloadApi> {
  let socketPath = options.socketPath;
  let ownedDir: string | undefined;
  if (socketPath === undefined) {
    ownedDir = await mkdtemp(join(tmpdir(), 'steeple-fake-workload-api-'));
    socketPath = join(ownedDir, 'api.sock');
  }
  const server = new FakeWorkloadApiServer(socketPath, ownedDir, options);
  try {
    await server.listen();
  } catch (err) {
    if (ownedDir) await rm(ownedDir, { recursive: true, force: true });
    throw err;
  }
  return server;
}
