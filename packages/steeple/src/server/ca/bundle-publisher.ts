/**
 * Where the CA publishes its authorities. The trust bundle of the trust domain is shared
 * by every server of it (each has its own CA, all trusted), so publishing ADDS this
 * server's authorities to the shared bundle and drops the ones that have expired; it
 * never removes another server's. The server composition provides a datastore-backed
 * publisher; {@link MemoryBundlePublisher} serves tests and a lone server.
 * @module
 */
import type { KeyObject, X509Certificate } from 'node:crypto';
import { type Clock, SpiffeBundle, systemClock, type TrustDomain, X509Bundle } from '@steeple/spiffe';
import { x509Fields } from '@steeple/spiffe/issuance';

/** A JWT authority as published: its key ID, public key and when it stops being trusted. */
export interface JwtAuthority {
  readonly kid: string;
  readonly publicKey: KeyObject;
  readonly notAfter: Date;
}

/** This server's authorities, current and prepared (and retired ones that are still valid). */
export interface PublishedAuthorities {
  /** Trust anchors: the server's own CA certificates, or the upstream roots under an upstream authority. */
  readonly x509: readonly X509Certificate[];
  readonly jwt: readonly JwtAuthority[];
}

/** Publishes the CA's authorities into the trust domain's bundle. */
export interface BundlePublisher {
  /**
   * Adds `authorities` to the trust domain's bundle (those already there stay), removes
   * every authority whose notAfter has passed, bumps `spiffe_sequence` when the content
   * changed, and resolves to the resulting bundle.
   */
  publish(authorities: PublishedAuthorities): Promise<SpiffeBundle>;
}

/** Default `spiffe_refresh_hint` in seconds: federated peers re-fetch this often (B-4, F-7). */
export const DEFAULT_REFRESH_HINT_SECONDS = 300;

/** Keeps the bundle in memory; for tests and a server that shares its bundle with nobody. */
export class MemoryBundlePublisher implements BundlePublisher {
  readonly #clock: Clock;
  #bundle: SpiffeBundle;
  /** JWT notAfter by kid: the bundle format has no place for it. */
  readonly #jwtNotAfter = new Map<string, number>();

  constructor(options: {
    readonly trustDomain: TrustDomain | string;
    readonly clock?: Clock;
    readonly refreshHintSeconds?: number;
  }) {
    this.#clock = options.clock ?? systemClock;
    this.#bundle = SpiffeBundle.fromBundles({
      trustDomain: options.trustDomain,
      sequenceNumber: 0n,
      refreshHintSeconds: options.refreshHintSeconds ?? DEFAULT_REFRESH_HINT_SECONDS,
    });
  }

  /** The bundle as last published. */
  current(): SpiffeBundle {
    return this.#bundle;
  }

  async publish(authorities: PublishedAuthorities): Promise<SpiffeBundle> {
    const now = this.#clock.now().getTime();
    const td = this.#bundle.trustDomain;
    const alive = (c: X509Certificate) => x509Fields(c).notAfter.getTime() > now;
    const x509 = X509Bundle.fromAuthorities(td, [...this.#bundle.x509Authorities, ...authorities.x509].filter(alive));

    for (const a of authorities.jwt) this.#jwtNotAfter.set(a.kid, a.notAfter.getTime());
    let jwt = this.#bundle.jwtBundle();
    for (const a of authorities.jwt) if (!jwt.hasAuthority(a.kid)) jwt = jwt.withAuthority(a.kid, a.publicKey);
    for (const kid of [...jwt.authorities.keys()]) {
      if ((this.#jwtNotAfter.get(kid) ?? Number.POSITIVE_INFINITY) <= now) {
        jwt = jwt.withoutAuthority(kid);
        this.#jwtNotAfter.delete(kid);
      }
    }

    const before = this.#bundle;
    if (!x509.equals(before.x509Bundle()) || !jwt.equals(before.jwtBundle())) {
      this.#bundle = SpiffeBundle.fromBundles({
        x509,
        jwt,
        sequenceNumber: (before.sequenceNumber ?? 0n) + 1n,
        ...(before.refreshHintSeconds === undefined ? {} : { refreshHintSeconds: before.refreshHintSeconds }),
      });
    }
    return this.#bundle;
  }
}
