/**
 * The server's own X.509-SVID (`spiffe://<td>/spire/server`), which it presents to agents
 * on the Agent API. Signed by the server's CA for a key that never leaves the process, and
 * renewed at half its life (or sooner after a failure), so a CA rotation or a capped TTL
 * never leaves the listener with an expired certificate.
 * @module
 */
import { generateKeyPair, type KeyObject, X509Certificate } from 'node:crypto';
import { promisify } from 'node:util';
import { type Clock, SpiffeId, systemClock, type TimerHandle, type TrustDomain } from '@steeple/spiffe';
import type { Logger } from '../../../common/logger.js';
import type { AgentApiSigner } from './ports.js';

const generateKeyPairAsync = promisify(generateKeyPair);

/** Retry delay after a failed renewal. */
const RETRY_MS = 10_000;

/** The TLS material of the current server SVID, in the PEM form node:tls wants. */
export interface ServerTlsMaterial {
  readonly key: string;
  /** Leaf first, then intermediates. */
  readonly cert: string;
  /** Epoch seconds. */
  readonly expiresAt: number;
}

export interface ServerSvidOptions {
  readonly trustDomain: TrustDomain;
  readonly signer: AgentApiSigner;
  /** Requested lifetime, seconds (the CA may cap it). */
  readonly ttlSeconds: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

function toPem(der: Uint8Array): string {
  return new X509Certificate(der).toString();
}

export class ServerSvid {
  readonly #options: ServerSvidOptions;
  readonly #clock: Clock;
  readonly #id: SpiffeId;
  #material: ServerTlsMaterial;
  #timer: TimerHandle | undefined;
  #closed = false;
  readonly #listeners = new Set<(material: ServerTlsMaterial) => void>();

  private constructor(options: ServerSvidOptions, material: ServerTlsMaterial) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#id = ServerSvid.idFor(options.trustDomain);
    this.#material = material;
  }

  /** `spiffe://<td>/spire/server`. */
  static idFor(trustDomain: TrustDomain): SpiffeId {
    return SpiffeId.fromPath(trustDomain, '/spire/server');
  }

  /** Issues the first SVID and schedules its renewals. */
  static async start(options: ServerSvidOptions): Promise<ServerSvid> {
    const material = await ServerSvid.#issue(options);
    const svid = new ServerSvid(options, material);
    svid.#scheduleRenewal();
    return svid;
  }

  static async #issue(options: ServerSvidOptions): Promise<ServerTlsMaterial> {
    const { privateKey, publicKey } = await generateKeyPairAsync('ec', { namedCurve: 'P-256' });
    const issued = await options.signer.signX509Svid({
      spiffeId: ServerSvid.idFor(options.trustDomain),
      publicKey,
      subjectPublicKeyInfo: publicKey.export({ format: 'der', type: 'spki' }),
      ttlSeconds: options.ttlSeconds,
    });
    return {
      key: (privateKey as KeyObject).export({ format: 'pem', type: 'pkcs8' }) as string,
      cert: issued.certChain.map(toPem).join(''),
      expiresAt: issued.expiresAt,
    };
  }

  get id(): SpiffeId {
    return this.#id;
  }

  current(): ServerTlsMaterial {
    return this.#material;
  }

  /** Calls `listener` with the new material after every renewal; returns the unsubscribe function. */
  onChange(listener: (material: ServerTlsMaterial) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Renews now (e.g. after the CA switched to a new authority). */
  async renew(): Promise<void> {
    const material = await ServerSvid.#issue(this.#options);
    if (this.#closed) return;
    this.#material = material;
    this.#options.logger?.debug({ expiresAt: material.expiresAt }, 'server SVID renewed');
    for (const listener of this.#listeners) listener(material);
    this.#scheduleRenewal();
  }

  close(): void {
    this.#closed = true;
    this.#timer?.cancel();
    this.#listeners.clear();
  }

  #scheduleRenewal(delayMs?: number): void {
    if (this.#closed) return;
    this.#timer?.cancel();
    const now = this.#clock.now().getTime();
    const halfLife = Math.max(1000, (this.#material.expiresAt * 1000 - now) / 2);
    this.#timer = this.#clock.setTimer(() => {
      this.renew().catch((err: unknown) => {
        this.#options.logger?.error({ err }, 'cannot renew the server SVID; retrying');
        this.#scheduleRenewal(RETRY_MS);
      });
    }, delayMs ?? halfLife);
  }
}
