/**
 * The server's own X.509-SVID (`spiffe://<td>/spire/server`, as SPIRE names it) for its
 * TLS listeners, kept fresh: a new key and SVID at half of each SVID's lifetime, so the
 * listener always presents a certificate from an authority every agent trusts.
 * @module
 */
import { type KeyObject, X509Certificate } from 'node:crypto';
import { type Clock, systemClock, type TimerHandle, X509Svid } from '@steeple/spiffe';
import { createSilentLogger, type Logger } from '../../common/logger.js';
import { CaError } from './ca-errors.js';
import { generatePrivateKey, type KeyType } from './key-manager.js';
import { DEFAULT_X509_SVID_TTL_SECONDS, type SignedX509Svid } from './x509-ca.js';

/** What signs the server SVID: a {@link CaManager} or an {@link X509Ca}. */
export interface ServerSvidSigner {
  signServerSvid(publicKey: KeyObject, ttlSeconds?: number): SignedX509Svid;
}

export interface ServerSvidRotatorOptions {
  readonly ca: ServerSvidSigner;
  readonly clock?: Clock;
  /** Lifetime of each SVID; default 1 h (capped at the CA's notAfter by the CA). */
  readonly ttlSeconds?: number;
  /** Default `ec-p256`. */
  readonly keyType?: KeyType;
  readonly logger?: Logger;
  /** Delay before retrying a failed renewal; default 30 s. */
  readonly retryIntervalMs?: number;
}

/** Keeps one server SVID current; call {@link ServerSvidRotator.start} after the CA has started. */
export class ServerSvidRotator {
  readonly #options: ServerSvidRotatorOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #listeners = new Set<(svid: X509Svid) => void>();
  #current: X509Svid | undefined;
  #timer: TimerHandle | undefined;
  #running: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(options: ServerSvidRotatorOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#log = options.logger ?? createSilentLogger();
  }

  /** Issues the first SVID and schedules renewal; rejects when the CA cannot sign. */
  async start(): Promise<X509Svid> {
    this.#stopped = false;
    await this.#renew();
    return this.current();
  }

  /** The current server SVID. Throws {@link CaError} `ERR_CA_NOT_READY` before {@link start}. */
  current(): X509Svid {
    if (!this.#current) throw new CaError('ERR_CA_NOT_READY', 'the server SVID has not been issued yet');
    return this.#current;
  }

  /** Calls `listener` with each renewed SVID (e.g. to `server.setSecureContext()`); returns an unsubscribe function. */
  onRotate(listener: (svid: X509Svid) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  /** Resolves once no renewal is running (tests). */
  whenIdle(): Promise<void> {
    return this.#running;
  }

  async #renew(): Promise<void> {
    const privateKey = await generatePrivateKey(this.#options.keyType ?? 'ec-p256');
    const signed = this.#options.ca.signServerSvid(
      privateKey,
      this.#options.ttlSeconds ?? DEFAULT_X509_SVID_TTL_SECONDS,
    );
    const svid = X509Svid.fromCertificates(
      signed.certificates.map((der) => new X509Certificate(der)),
      privateKey,
    );
    const first = this.#current === undefined;
    this.#current = svid;
    const half = (signed.expiresAt.getTime() - signed.issuedAt.getTime()) / 2;
    this.#schedule(signed.issuedAt.getTime() + half - this.#clock.now().getTime());
    this.#log.info(
      { spiffeId: svid.id.toString(), expiresAt: signed.expiresAt, serial: signed.serialNumber },
      'issued the server SVID',
    );
    if (first) return;
    for (const listener of this.#listeners) {
      try {
        listener(svid);
      } catch (err) {
        this.#log.error({ err }, 'a server SVID listener threw');
      }
    }
  }

  #schedule(ms: number): void {
    this.#timer?.cancel();
    if (this.#stopped) return;
    this.#timer = this.#clock.setTimer(
      () => {
        this.#timer = undefined;
        this.#running = this.#renew().catch((err: unknown) => {
          const retry = this.#options.retryIntervalMs ?? 30_000;
          this.#log.error({ err }, `renewing the server SVID failed; retrying in ${Math.round(retry / 1000)} s`);
          this.#schedule(retry);
        });
      },
      Math.max(1, Math.ceil(ms)),
    );
  }
}
