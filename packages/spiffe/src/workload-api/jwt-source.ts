/**
 * A live source of JWT-SVIDs and JWT bundles from the Workload API (go-spiffe's
 * `workloadapi.JWTSource`).
 * @module
 */
import type { BundleSet } from '../bundle/bundle-set.js';
import type { JwtBundle } from '../bundle/jwt-bundle.js';
import type { JwtBundleSource } from '../bundle/source.js';
import { TrustDomain } from '../spiffeid/trust-domain.js';
import type { JwtSvid } from '../svid/jwt-svid.js';
import type { JwtSvidSource } from '../svid/jwt-svid-source.js';
import type { FetchJwtSvidParams } from './client.js';
import { Listeners, SourceLifecycle, type WorkloadApiSourceOptions } from './source-lifecycle.js';

/** Options of {@link JwtSource.create}. */
export type JwtSourceOptions = WorkloadApiSourceOptions;

function paramsOf(params: FetchJwtSvidParams | string): FetchJwtSvidParams {
  return typeof params === 'string' ? { audience: params } : params;
}

/**
 * Fetches JWT-SVIDs on demand and keeps the JWT bundles current with a watch, so it
 * serves both as a `JwtSvidSource` (for callers) and a `JwtBundleSource` (for
 * `JwtSvid.parseAndValidate` on the receiving side).
 *
 * @example
 * const source = await JwtSource.create();
 * const token = (await source.fetchJwtSvid('spiffe://example.org/db')).token;
 * const svid = await JwtSvid.parseAndValidate(incoming, source, ['spiffe://example.org/db']);
 */
export class JwtSource implements JwtSvidSource, JwtBundleSource {
  readonly #life: SourceLifecycle;
  readonly #updates = new Listeners<BundleSet>();
  #bundles: BundleSet | undefined;

  private constructor(options: JwtSourceOptions) {
    this.#life = new SourceLifecycle('JwtSource', options);
  }

  /** Connects and resolves once the first JWT bundles have arrived; fails like `X509Source.create`. */
  static async create(options: JwtSourceOptions = {}): Promise<JwtSource> {
    const source = new JwtSource(options);
    const life = source.#life;
    const first = life.start<BundleSet>(
      (handler, signal) => life.client.watchJwtBundles(handler, signal),
      (bundles) => source.#apply(bundles),
    );
    await life.ready([first], options.timeoutMs, options.signal);
    return source;
  }

  /**
   * A fresh JWT-SVID for the audience (a string, or `{ audience, extraAudiences?, subject? }`),
   * for `subject` or the default identity.
   */
  async fetchJwtSvid(params: FetchJwtSvidParams | string, signal?: AbortSignal): Promise<JwtSvid> {
    this.#life.assertOpen();
    return this.#life.client.fetchJwtSvid(paramsOf(params), signal);
  }

  /** One JWT-SVID per identity of the workload (or only `subject`'s). */
  async fetchJwtSvids(params: FetchJwtSvidParams | string, signal?: AbortSignal): Promise<JwtSvid[]> {
    this.#life.assertOpen();
    return this.#life.client.fetchJwtSvids(paramsOf(params), signal);
  }

  /** The current JWT bundle of a trust domain, or undefined when it is not trusted. */
  getJwtBundleForTrustDomain(td: TrustDomain | string): JwtBundle | undefined {
    this.#life.assertOpen();
    return (this.#bundles as BundleSet).getJwtBundleForTrustDomain(TrustDomain.from(td));
  }

  /** The current JWT bundles. */
  get bundles(): BundleSet {
    this.#life.assertOpen();
    return this.#bundles as BundleSet;
  }

  /** Calls `listener` after every change of the JWT bundles; returns an unsubscribe function. */
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

  #apply(bundles: BundleSet): void {
    if (this.#bundles?.equals(bundles)) return;
    this.#bundles = bundles;
    this.#updates.emit(bundles);
  }
}
