/**
 * A live source of X.509 and JWT bundles from the Workload API, for workloads that only
 * verify peers (go-spiffe's `workloadapi.BundleSource`).
 * @module
 */
import { BundleSet } from '../bundle/bundle-set.js';
import type { JwtBundle } from '../bundle/jwt-bundle.js';
import type { BundleSource, X509BundleSetSource } from '../bundle/source.js';
import type { X509Bundle } from '../bundle/x509-bundle.js';
import { TrustDomain } from '../spiffeid/trust-domain.js';
import { Listeners, SourceLifecycle, type WorkloadApiSourceOptions } from './source-lifecycle.js';

/** Options of {@link WorkloadApiBundleSource.create}. */
export type WorkloadApiBundleSourceOptions = WorkloadApiSourceOptions;

/**
 * The X.509 bundles (from FetchX509Bundles, W-7) and JWT bundles (from FetchJWTBundles,
 * W-10) the workload trusts, each kept current by a watch. X.509 bundles serve X.509-SVID
 * verification only and JWT bundles JWT-SVID validation only (W-13). `getX509Bundles()`
 * returns the same array until the X.509 bundles change.
 *
 * @example
 * const bundles = await WorkloadApiBundleSource.create();
 * const { id } = verifyX509Svid(peerChain, bundles);
 * const jwt = await JwtSvid.parseAndValidate(token, bundles, ['spiffe://example.org/api']);
 */
export class WorkloadApiBundleSource implements BundleSource, X509BundleSetSource {
  readonly #life: SourceLifecycle;
  readonly #updates = new Listeners<BundleSet>();
  #x509: BundleSet | undefined;
  #jwt: BundleSet | undefined;
  #all: BundleSet | undefined;

  private constructor(options: WorkloadApiBundleSourceOptions) {
    this.#life = new SourceLifecycle('WorkloadApiBundleSource', options);
  }

  /** Connects and resolves once both the X.509 and the JWT bundles have arrived; fails like `X509Source.create`. */
  static async create(options: WorkloadApiBundleSourceOptions = {}): Promise<WorkloadApiBundleSource> {
    const source = new WorkloadApiBundleSource(options);
    const life = source.#life;
    const x509 = life.start<BundleSet>(
      (handler, signal) => life.client.watchX509Bundles(handler, signal),
      (bundles) => source.#apply(bundles, source.#jwt),
    );
    const jwt = life.start<BundleSet>(
      (handler, signal) => life.client.watchJwtBundles(handler, signal),
      (bundles) => source.#apply(source.#x509, bundles),
    );
    await life.ready([x509, jwt], options.timeoutMs, options.signal);
    return source;
  }

  getX509BundleForTrustDomain(td: TrustDomain | string): X509Bundle | undefined {
    this.#life.assertOpen();
    return this.#x509?.getX509BundleForTrustDomain(TrustDomain.from(td));
  }

  getJwtBundleForTrustDomain(td: TrustDomain | string): JwtBundle | undefined {
    this.#life.assertOpen();
    return this.#jwt?.getJwtBundleForTrustDomain(TrustDomain.from(td));
  }

  /** Every current X.509 bundle; the same array until the X.509 bundles change. */
  getX509Bundles(): readonly X509Bundle[] {
    this.#life.assertOpen();
    return (this.#x509 as BundleSet).getX509Bundles();
  }

  /** Both kinds of bundle per trust domain. */
  get bundles(): BundleSet {
    this.#life.assertOpen();
    return this.#all as BundleSet;
  }

  /** Calls `listener` with the combined bundles after every change; returns an unsubscribe function. */
  onUpdate(listener: (bundles: BundleSet) => void): () => void {
    return this.#updates.add(listener);
  }

  /** Calls `listener` for stream failures and refused updates; returns an unsubscribe function. */
  onError(listener: (error: Error) => void): () => void {
    return this.#life.errors.add(listener);
  }

  get closed(): boolean {
    return this.#life.closed;
  }

  /** Stops watching and closes the client the source created. Safe to call twice. */
  close(): Promise<void> {
    return this.#life.close();
  }

  #apply(x509: BundleSet | undefined, jwt: BundleSet | undefined): void {
    const nextX509 = x509 && this.#x509?.equals(x509) ? this.#x509 : x509;
    const nextJwt = jwt && this.#jwt?.equals(jwt) ? this.#jwt : jwt;
    if (nextX509 === this.#x509 && nextJwt === this.#jwt) return;
    this.#x509 = nextX509;
    this.#jwt = nextJwt;
    this.#all = BundleSet.of(
      ...(nextX509?.bundles().map((b) => b.x509Bundle()) ?? []),
      ...(nextJwt?.bundles().map((b) => b.jwtBundle()) ?? []),
    );
    // Listeners hear of changes once both kinds are known, i.e. after create() resolved.
    if (nextX509 && nextJwt) this.#updates.emit(this.#all);
  }
}
