/**
 * The CA's {@link BundlePublisher} over the datastore: the trust domain's bundle lives in the
 * `bundles` table, so every server of the trust domain (several on one PostgreSQL database)
 * publishes into the same bundle and every agent receives all of their authorities.
 *
 * Publishing reads the stored bundle, adds this server's authorities, drops expired ones,
 * and writes it back with `spiffe_sequence` + 1 when anything changed. Two servers doing
 * that at once could each overwrite the other's addition, so after writing it reads the
 * bundle again and repeats until its authorities are there; {@link DatastoreBundlePublisher.ensurePublished}
 * repairs the rare loss that slips past (the server calls it when it sees the bundle change).
 * @module
 */
import type { X509Certificate } from 'node:crypto';
import { type Clock, SpiffeBundle, systemClock, type TrustDomain, X509Bundle } from '@steeple/spiffe';
import { x509Fields } from '@steeple/spiffe/issuance';
import {
  type BundlePublisher,
  DEFAULT_REFRESH_HINT_SECONDS,
  type PublishedAuthorities,
} from './ca/bundle-publisher.js';
import type { BundleStore } from './datastore/index.js';

const MAX_ATTEMPTS = 5;

export class DatastoreBundlePublisher implements BundlePublisher {
  readonly #td: TrustDomain;
  readonly #store: Pick<BundleStore, 'get' | 'set'>;
  readonly #clock: Clock;
  readonly #refreshHint: number;
  /** JWT notAfter by kid for this server's keys: the bundle format has no place for it. */
  readonly #jwtNotAfter = new Map<string, number>();
  #last: PublishedAuthorities | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: {
    readonly trustDomain: TrustDomain;
    readonly bundles: Pick<BundleStore, 'get' | 'set'>;
    readonly clock?: Clock;
    readonly refreshHintSeconds?: number;
  }) {
    this.#td = options.trustDomain;
    this.#store = options.bundles;
    this.#clock = options.clock ?? systemClock;
    this.#refreshHint = options.refreshHintSeconds ?? DEFAULT_REFRESH_HINT_SECONDS;
  }

  /** The stored bundle, or undefined before the first publish. */
  async current(): Promise<SpiffeBundle | undefined> {
    const stored = await this.#store.get(this.#td.name);
    return stored === undefined ? undefined : SpiffeBundle.parse(this.#td, stored.bundle);
  }

  publish(authorities: PublishedAuthorities): Promise<SpiffeBundle> {
    this.#last = authorities;
    for (const a of authorities.jwt) this.#jwtNotAfter.set(a.kid, a.notAfter.getTime());
    return this.#serialized(() => this.#publishUntilPresent(authorities));
  }

  /**
   * Publishes the last authorities again if another server's write dropped them; resolves to
   * true when it had to. A no-op before the first publish.
   */
  ensurePublished(): Promise<boolean> {
    const last = this.#last;
    if (last === undefined) return Promise.resolve(false);
    return this.#serialized(async () => {
      const stored = await this.current();
      if (stored !== undefined && this.#contains(stored, last)) return false;
      await this.#publishUntilPresent(last);
      return true;
    });
  }

  #serialized<T>(step: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(step, step);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #publishUntilPresent(authorities: PublishedAuthorities): Promise<SpiffeBundle> {
    for (let attempt = 1; ; attempt++) {
      const written = await this.#publishOnce(authorities);
      const reread = await this.current();
      if (reread !== undefined && this.#contains(reread, authorities)) return reread;
      if (attempt >= MAX_ATTEMPTS) return written;
      await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 80));
    }
  }

  async #publishOnce(authorities: PublishedAuthorities): Promise<SpiffeBundle> {
    const now = this.#clock.now().getTime();
    const before = (await this.current()) ?? SpiffeBundle.empty(this.#td);
    const alive = (c: X509Certificate) => x509Fields(c).notAfter.getTime() > now;
    const x509 = X509Bundle.fromAuthorities(this.#td, [...before.x509Authorities, ...authorities.x509].filter(alive));

    let jwt = before.jwtBundle();
    for (const a of authorities.jwt) {
      if (!jwt.hasAuthority(a.kid) && a.notAfter.getTime() > now) jwt = jwt.withAuthority(a.kid, a.publicKey);
    }
    for (const kid of [...jwt.authorities.keys()]) {
      // Only this server's keys have a known expiry; other servers prune theirs.
      const notAfter = this.#jwtNotAfter.get(kid);
      if (notAfter !== undefined && notAfter <= now) {
        jwt = jwt.withoutAuthority(kid);
        this.#jwtNotAfter.delete(kid);
      }
    }
    if (x509.equals(before.x509Bundle()) && jwt.equals(before.jwtBundle()) && before.sequenceNumber !== undefined) {
      return before;
    }
    const sequence = (before.sequenceNumber ?? 0n) + 1n;
    const next = SpiffeBundle.fromBundles({
      x509,
      jwt,
      sequenceNumber: sequence,
      refreshHintSeconds: before.refreshHintSeconds ?? this.#refreshHint,
    });
    await this.#store.set({ trustDomain: this.#td.name, bundle: next.marshal(), sequence });
    return next;
  }

  #contains(bundle: SpiffeBundle, authorities: PublishedAuthorities): boolean {
    const now = this.#clock.now().getTime();
    const x509 = bundle.x509Bundle();
    const jwt = bundle.jwtBundle();
    return (
      authorities.x509.every((c) => x509Fields(c).notAfter.getTime() <= now || x509.hasAuthority(c)) &&
      authorities.jwt.every((a) => a.notAfter.getTime() <= now || jwt.hasAuthority(a.kid))
    );
  }
}
