/**
 * A live source of the workload's X.509-SVID and X.509 bundles, kept current by a
 * Workload API watch (go-spiffe's `workloadapi.X509Source`).
 * @module
 */
import type { X509Certificate } from 'node:crypto';
import type { BundleSet } from '../bundle/bundle-set.js';
import type { X509BundleSetSource } from '../bundle/source.js';
import type { X509Bundle } from '../bundle/x509-bundle.js';
import { TrustDomain } from '../spiffeid/trust-domain.js';
import { X509Svid, type X509SvidSource } from '../svid/x509-svid.js';
import { Listeners, SourceLifecycle, type WorkloadApiSourceOptions } from './source-lifecycle.js';
import type { X509Context } from './x509-context.js';

/** Options of {@link X509Source.create}. */
export interface X509SourceOptions extends WorkloadApiSourceOptions {
  /**
   * Chooses the SVID to serve when the workload has several; default the first, its
   * default identity (W-6). Pick by `hint` or `id`; throwing refuses the update.
   */
  readonly picker?: (svids: readonly X509Svid[]) => X509Svid;
}

function sameSvid(a: X509Svid, b: X509Svid): boolean {
  if (a.certificates.length !== b.certificates.length || a.hint !== b.hint) return false;
  for (let i = 0; i < a.certificates.length; i++) {
    if (!(a.certificates[i] as X509Certificate).raw.equals((b.certificates[i] as X509Certificate).raw)) return false;
  }
  return a.privateKey.equals(b.privateKey);
}

/**
 * The workload's current X.509-SVID and trust bundles, kept up to date by a watch on the
 * Workload API. It is both an `X509SvidSource` and an `X509BundleSetSource`, so it plugs
 * straight into `mtlsServerOptions`/`mtlsClientOptions`: a server rotates its certificate
 * on the next handshake after the agent pushes a new SVID, without a restart. While nothing
 * changes the getters return the same objects, so TLS contexts are reused.
 *
 * If an update breaks the spec (bad certificate, key mismatch, no SVIDs), it is ignored:
 * the source keeps the last good state and reports the error to {@link X509Source.onError}.
 *
 * @example
 * const source = await X509Source.create(); // SPIFFE_ENDPOINT_SOCKET
 * const opts = mtlsServerOptions({ svid: source, bundles: source, authorize: authorizeMemberOf('example.org') });
 * const server = serveMtls(https.createServer(opts, app), opts);
 * // …
 * await source.close();
 */
export class X509Source implements X509SvidSource, X509BundleSetSource {
  readonly #life: SourceLifecycle;
  readonly #picker: (svids: readonly X509Svid[]) => X509Svid;
  readonly #updates = new Listeners<X509Context>();
  #svid: X509Svid | undefined;
  #bundles: BundleSet | undefined;
  #context: X509Context | undefined;

  private constructor(options: X509SourceOptions) {
    this.#life = new SourceLifecycle('X509Source', options);
    this.#picker = options.picker ?? ((svids) => svids[0] as X509Svid);
  }

  /**
   * Connects and resolves once the first valid X.509 context has arrived. Rejects with
   * `ERR_WORKLOADAPI_STATUS` (grpcCode 3) when the endpoint answers InvalidArgument, with
   * `ERR_WORKLOADAPI_TIMEOUT` after `timeoutMs`, with the signal's reason when `signal`
   * aborts, and with `ERR_WORKLOADAPI_ADDRESS` for a bad address. Any other failure
   * (agent down, PermissionDenied) is retried with backoff.
   */
  static async create(options: X509SourceOptions = {}): Promise<X509Source> {
    const source = new X509Source(options);
    const life = source.#life;
    const first = life.start<X509Context>(
      (handler, signal) => life.client.watchX509Context(handler, signal),
      (ctx) => source.#apply(ctx),
    );
    await life.ready([first], options.timeoutMs, options.signal);
    return source;
  }

  /** The current X.509-SVID (the picked one). Throws `ERR_WORKLOADAPI_CLOSED` after close. */
  getX509Svid(): X509Svid {
    this.#life.assertOpen();
    return this.#svid as X509Svid;
  }

  /** The current X.509 bundle of a trust domain, or undefined when it is not trusted. */
  getX509BundleForTrustDomain(td: TrustDomain | string): X509Bundle | undefined {
    this.#life.assertOpen();
    return (this.#bundles as BundleSet).getX509BundleForTrustDomain(TrustDomain.from(td));
  }

  /** Every current X.509 bundle; the same array until the bundles change. */
  getX509Bundles(): readonly X509Bundle[] {
    this.#life.assertOpen();
    return (this.#bundles as BundleSet).getX509Bundles();
  }

  /** The current bundle set: own and federated trust domains. */
  get bundles(): BundleSet {
    this.#life.assertOpen();
    return this.#bundles as BundleSet;
  }

  /** The last valid X.509 context, with every SVID of the workload. */
  get context(): X509Context {
    this.#life.assertOpen();
    return this.#context as X509Context;
  }

  /** Calls `listener` after every change of the SVID or the bundles; returns a function that unsubscribes. */
  onUpdate(listener: (context: X509Context) => void): () => void {
    return this.#updates.add(listener);
  }

  /** Calls `listener` for stream failures (before each retry) and refused updates; returns an unsubscribe function. */
  onError(listener: (error: Error) => void): () => void {
    return this.#life.errors.add(listener);
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /** Stops watching and closes the client the source created. Safe to call twice. */
  close(): Promise<void> {
    return this.#life.close();
  }

  #apply(ctx: X509Context): void {
    const picked = this.#picker(ctx.svids);
    if (!(picked instanceof X509Svid))
      throw new TypeError('X509Source: picker must return one of the given X509Svid values');
    // Keep the old objects when nothing really changed, so TLS contexts are not rebuilt.
    const svid = this.#svid && sameSvid(this.#svid, picked) ? this.#svid : picked;
    const bundles = this.#bundles?.equals(ctx.bundles) ? this.#bundles : ctx.bundles;
    const changed = svid !== this.#svid || bundles !== this.#bundles;
    this.#svid = svid;
    this.#bundles = bundles;
    this.#context = Object.freeze({ svids: ctx.svids, bundles });
    if (changed) this.#updates.emit(this.#context);
  }
}
