/**
 * The agent's own identity: its agent SVID and the bundle of its trust domain, loaded
 * from data_dir at start (so a restart does not attest again), obtained by node
 * attestation when there is none, renewed at half its lifetime (RenewAgent), and
 * replaced by attesting again when it expired while the server was away, where the
 * attestation method allows that (x509pop yes; a join token is single-use, so then the
 * agent says what the operator must do, in the log and in `/ready`).
 * @module
 */
import { type Clock, type SpiffeBundle, systemClock, type TrustDomain, X509Svid } from '@steeple/spiffe';
import type { Logger } from '../../common/logger.js';
import { AgentNotAttestedError } from '../agent-errors.js';
import type { NodeAttestorClient } from '../node-attestation/index.js';
import type { AgentApiClient } from '../server-api/agent-api-connection.js';
import { attestAgent } from '../server-api/attest-agent.js';
import { buildCsr, generateSvidKey } from '../server-api/csr.js';
import type { AgentTlsMaterial } from '../server-api/server-tls.js';
import { type IdentityStore, joinTokenDigest } from './identity-store.js';

export interface AgentIdentityOptions {
  readonly trustDomain: TrustDomain;
  readonly store: IdentityStore;
  readonly attestor: NodeAttestorClient;
  /** The configured join token, if that is the method (only its digest is kept). */
  readonly joinToken?: string;
  /** The bootstrap bundle from trust_bundle_path, used until the server sends one. */
  readonly bootstrapBundle?: SpiffeBundle;
  readonly clock?: Clock;
  readonly logger: Logger;
}

/** Share of the agent SVID's lifetime after which it is renewed. */
const RENEW_FRACTION = 0.5;

export class AgentIdentity {
  readonly #o: AgentIdentityOptions;
  readonly #clock: Clock;
  #svid: X509Svid | undefined;
  #bundle: SpiffeBundle | undefined;
  #canReattest = false;
  #attestedWith: string | undefined;
  #joinTokenSha256: string | undefined;
  #refused = false;
  #problem: string | undefined;

  constructor(options: AgentIdentityOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#bundle = options.bootstrapBundle;
  }

  /** Reads the persisted identity and bundle. @throws AgentStateError for corrupt files. */
  async load(): Promise<void> {
    const saved = await this.#o.store.loadIdentity();
    const bundle = await this.#o.store.loadBundle();
    if (bundle !== undefined) this.#bundle = bundle;
    if (saved !== undefined) {
      this.#svid = saved.svid;
      this.#canReattest = saved.canReattest;
      this.#attestedWith = saved.attestor;
      this.#joinTokenSha256 = saved.joinTokenSha256;
      this.#o.logger.info(
        { agentId: saved.svid.id.toString(), expiresAt: saved.svid.expiresAt.toISOString() },
        'loaded the agent SVID from data_dir',
      );
    }
  }

  /** The agent SVID, possibly expired; undefined before the first attestation. */
  get svid(): X509Svid | undefined {
    return this.#svid;
  }

  /** The agent's SPIFFE ID, once attested. */
  get spiffeId(): string | undefined {
    return this.#svid?.id.toString();
  }

  get bundle(): SpiffeBundle | undefined {
    return this.#bundle;
  }

  /** Why the agent cannot work right now (for `/ready` and logs), or undefined. */
  get problem(): string | undefined {
    return this.#problem;
  }

  /** Whether the SVID is present, unexpired and not refused by the server. */
  isUsable(): boolean {
    return this.#svid !== undefined && !this.#refused && this.#clock.now() < this.#svid.expiresAt;
  }

  /** When the SVID should be renewed; undefined without one. */
  renewAt(): Date | undefined {
    const svid = this.#svid;
    if (svid === undefined) return undefined;
    const from = Date.parse(svid.leaf.validFrom);
    return new Date(from + (svid.expiresAt.getTime() - from) * RENEW_FRACTION);
  }

  /** TLS material for the Agent API: the bundle, and the SVID while it is usable. */
  material(): AgentTlsMaterial {
    const bundle = this.#bundle;
    if (bundle === undefined) {
      throw new AgentNotAttestedError(
        'no trust bundle for the server: set trust_bundle_path to the PEM of the server trust domain’s root CA for the first attestation',
      );
    }
    return this.isUsable() ? { bundle, svid: this.#svid as X509Svid } : { bundle };
  }

  /** Marks the SVID as refused by the server (evicted, superseded): the next step attests again if it can. */
  markRefused(reason: string): void {
    this.#refused = true;
    this.#o.logger.warn({ reason }, 'the server refused the agent SVID');
  }

  /**
   * Attests when there is no usable SVID.
   * @throws AgentNotAttestedError when the SVID expired and the method cannot be repeated;
   *   whatever the server or the attestor throws otherwise.
   */
  async ensure(client: AgentApiClient, signal?: AbortSignal): Promise<void> {
    if (this.isUsable()) return;
    const cannot = this.#whyNotReattest();
    if (cannot !== undefined) {
      if (this.#problem !== cannot) this.#o.logger.error({ reason: cannot }, 'the agent cannot attest again');
      this.#problem = cannot;
      throw new AgentNotAttestedError(cannot);
    }
    const again = this.#svid !== undefined;
    try {
      const result = await attestAgent(client, this.#o.attestor, this.#o.trustDomain, { signal });
      this.#svid = result.svid;
      this.#bundle = result.bundle;
      this.#canReattest = result.canReattest;
      this.#attestedWith = this.#o.attestor.name;
      this.#joinTokenSha256 = this.#o.joinToken === undefined ? undefined : joinTokenDigest(this.#o.joinToken);
      this.#refused = false;
      this.#problem = undefined;
    } catch (err) {
      this.#problem = `node attestation (${this.#o.attestor.name}) failed: ${(err as Error).message}`;
      throw err;
    }
    await this.#persist();
    await this.#o.store.saveBundle(this.#bundle);
    this.#o.logger.info(
      {
        agentId: this.#svid.id.toString(),
        attestor: this.#o.attestor.name,
        expiresAt: this.#svid.expiresAt.toISOString(),
        reattested: again,
      },
      'node attested',
    );
  }

  /** Renews the SVID with a new key (RenewAgent) and persists it. */
  async renew(client: AgentApiClient, signal?: AbortSignal): Promise<void> {
    const keys = await generateSvidKey();
    const res = await client.renewAgent({ csr: buildCsr(keys) }, { signal, timeoutMs: 30_000 });
    if (res.svid === undefined) throw new Error('RenewAgent returned no SVID');
    const svid = X509Svid.parseRaw(
      Buffer.concat(res.svid.certChain.map((c) => Buffer.from(c))),
      keys.privateKey.export({ type: 'pkcs8', format: 'der' }),
    );
    if (this.#svid !== undefined && !svid.id.equals(this.#svid.id)) {
      throw new Error(`the renewed SVID names ${svid.id}, not ${this.#svid.id}`);
    }
    this.#svid = svid;
    await this.#persist();
    this.#o.logger.info({ agentId: svid.id.toString(), expiresAt: svid.expiresAt.toISOString() }, 'agent SVID renewed');
  }

  /** Adopts a newer bundle of the own trust domain (from GetBundles) and persists it. */
  async updateBundle(bundle: SpiffeBundle): Promise<void> {
    if (this.#bundle?.equals(bundle)) return;
    this.#bundle = bundle;
    await this.#o.store.saveBundle(bundle);
  }

  #whyNotReattest(): string | undefined {
    if (this.#svid === undefined || this.#canReattest) return undefined;
    // A different join token in the config is a new proof: it may be tried.
    if (this.#o.joinToken !== undefined && joinTokenDigest(this.#o.joinToken) !== this.#joinTokenSha256)
      return undefined;
    if (this.#o.attestor.name !== this.#attestedWith) return undefined;
    const what = this.#refused
      ? 'the server no longer accepts the agent SVID (the agent was evicted, or its SVID superseded)'
      : `the agent SVID expired at ${this.#svid.expiresAt.toISOString()} (the server was unreachable until then)`;
    return `${what}, and ${this.#attestedWith} attestation cannot be repeated (a join token is single-use): generate a new join token (steeple server token generate), set it as join_token or pass -joinToken, and restart the agent`;
  }

  async #persist(): Promise<void> {
    const svid = this.#svid;
    if (svid === undefined) return;
    await this.#o.store.saveIdentity({
      svid,
      attestor: this.#attestedWith ?? this.#o.attestor.name,
      canReattest: this.#canReattest,
      ...(this.#joinTokenSha256 === undefined ? {} : { joinTokenSha256: this.#joinTokenSha256 }),
    });
  }
}
