/**
 * Who is calling: every Agent API call except AttestAgent must come over a TLS connection
 * whose client certificate chain is an X.509-SVID of this trust domain (verified with the
 * SDK against the server's own bundle), whose ID is an agent ID (`/spire/agent/…`), and
 * which is that agent's CURRENT SVID in the datastore: after a renewal, an eviction or a
 * re-attestation the old SVID stops working at once, and a banned agent is refused.
 *
 * The chain is verified once per connection (cached until the leaf expires); the agent
 * record is read on every call, because a ban must take effect immediately.
 * @module
 */
import { X509Certificate } from 'node:crypto';
import type { Http2Session } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { Code, ConnectError } from '@connectrpc/connect';
import {
  type Clock,
  SpiffeError,
  type SpiffeId,
  systemClock,
  type TrustDomain,
  verifyX509Svid,
  type X509BundleSource,
} from '@steeple/spiffe';
import type { AttestedAgent } from '../../datastore/index.js';

/** The path prefix of agent IDs, as in SPIRE. */
export const AGENT_PATH_PREFIX = '/spire/agent/';

/** A caller that passed every check. */
export interface AuthenticatedAgent {
  readonly id: SpiffeId;
  /** The agent's record as read for this call. */
  readonly record: AttestedAgent;
  /** Serial number of the presented SVID, normalized (see {@link normalizeSerial}). */
  readonly serial: string;
  /** Epoch ms of the presented SVID's notAfter. */
  readonly notAfter: number;
}

export interface AgentAuthenticatorOptions {
  readonly trustDomain: TrustDomain;
  /** The server's own X.509 authorities, current at the time of the call. */
  readonly bundles: () => X509BundleSource | undefined;
  readonly agents: { get(spiffeId: string): Promise<AttestedAgent | undefined> };
  readonly clock?: Clock;
}

interface VerifiedPeer {
  readonly id: SpiffeId;
  readonly serial: string;
  /** Epoch ms of the leaf's notAfter: the cached verification is void after it. */
  readonly notAfter: number;
}

/** Upper-case hex without leading zeros, so that serials read from any source compare equal. */
export function normalizeSerial(serial: string): string {
  const hex = serial.replace(/:/g, '').toUpperCase().replace(/^0+/, '');
  return hex === '' ? '0' : hex;
}

/** The serial of a DER certificate, normalized. */
export function serialOf(der: Uint8Array): string {
  return normalizeSerial(new X509Certificate(der).serialNumber);
}

/** The client's certificate chain on a TLS socket, leaf first, as DER; empty when it sent none. */
export function peerChainOf(socket: TLSSocket): Buffer[] {
  const peer = socket.getPeerCertificate(true);
  if (peer === null || peer.raw === undefined) return [];
  const chain: Buffer[] = [];
  const seen = new Set<string>();
  // Node links each certificate to its issuer and ends with a self-link at the top.
  for (let c: typeof peer | undefined = peer; c?.raw !== undefined; c = c.issuerCertificate) {
    if (seen.has(c.fingerprint256)) break;
    seen.add(c.fingerprint256);
    chain.push(c.raw);
  }
  return chain;
}

export class AgentAuthenticator {
  readonly #options: AgentAuthenticatorOptions;
  readonly #clock: Clock;
  readonly #verified = new WeakMap<Http2Session, VerifiedPeer | ConnectError>();
  /** Per agent ID: the serial it renewed away from, until the new one is first used. */
  readonly #renewals = new Map<string, { previous: string; current: string; previousNotAfter: number }>();

  constructor(options: AgentAuthenticatorOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
  }

  /**
   * Authenticates and authorizes the caller on `session`.
   * @throws ConnectError Unauthenticated (no or unverifiable client certificate) or
   *   PermissionDenied (not an agent, unknown, banned, or not its current SVID).
   */
  async authenticate(session: Http2Session | undefined): Promise<AuthenticatedAgent> {
    const peer = this.#verifyPeer(session);
    const idText = peer.id.toString();
    const record = await this.#options.agents.get(idText);
    if (record === undefined) {
      throw new ConnectError(
        `agent ${idText} is not attested (it was evicted, or never attested here); attest again`,
        Code.PermissionDenied,
      );
    }
    if (record.banned) {
      throw new ConnectError(
        `agent ${idText} is banned; an operator must evict it before it can attest again`,
        Code.PermissionDenied,
      );
    }
    const current = normalizeSerial(record.serialNumber);
    const renewal = this.#renewals.get(idText);
    if (current === peer.serial) {
      // The renewed SVID is in use: the one it replaced stops working (SPIRE promotes it alike).
      if (renewal?.current === current) this.#renewals.delete(idText);
    } else if (
      renewal === undefined ||
      renewal.current !== current ||
      renewal.previous !== peer.serial ||
      renewal.previousNotAfter <= this.#clock.now().getTime()
    ) {
      throw new ConnectError(
        `the presented SVID (serial ${peer.serial}) is not the current SVID of agent ${idText}: it was renewed or the agent re-attested`,
        Code.PermissionDenied,
      );
    }
    return { id: peer.id, record, serial: peer.serial, notAfter: peer.notAfter };
  }

  /**
   * Records a renewal: until the agent first presents the new SVID, the one it renewed with
   * keeps working, so an agent whose RenewAgent response was lost can simply retry (SPIRE's
   * "new serial number" rule). Kept in this server's memory: a retry that reaches another
   * server of the trust domain is refused and the agent re-attests.
   */
  rememberRenewal(agent: AuthenticatedAgent, newSerial: string): void {
    this.#renewals.set(agent.id.toString(), {
      previous: agent.serial,
      current: normalizeSerial(newSerial),
      previousNotAfter: agent.notAfter,
    });
  }

  #verifyPeer(session: Http2Session | undefined): VerifiedPeer {
    if (session === undefined) throw unauthenticated('no TLS session');
    const now = this.#clock.now();
    const cached = this.#verified.get(session);
    if (cached instanceof ConnectError) throw cached;
    if (cached !== undefined && cached.notAfter > now.getTime()) return cached;
    let result: VerifiedPeer | ConnectError;
    try {
      result = this.#verifyChain(peerChainOf(session.socket as unknown as TLSSocket), now);
    } catch (err) {
      if (err instanceof ConnectError) result = err;
      else throw err;
    }
    // A missing bundle may appear; every other refusal stands for the connection's life.
    if (!(result instanceof ConnectError && result.code === Code.Unavailable)) this.#verified.set(session, result);
    if (result instanceof ConnectError) throw result;
    return result;
  }

  #verifyChain(chain: readonly Buffer[], now: Date): VerifiedPeer {
    if (chain.length === 0) {
      throw unauthenticated('this call needs the agent SVID as client certificate (attest first)');
    }
    const bundles = this.#options.bundles();
    if (bundles === undefined) throw new ConnectError('the server has no trust bundle yet', Code.Unavailable);
    let id: SpiffeId;
    try {
      id = verifyX509Svid(chain, bundles, { now }).id;
    } catch (err) {
      if (err instanceof SpiffeError) throw unauthenticated(`client certificate refused: ${err.message}`);
      throw err;
    }
    const td = this.#options.trustDomain;
    if (!id.trustDomain.equals(td) || !id.path.startsWith(AGENT_PATH_PREFIX)) {
      throw new ConnectError(
        `${id} is not an agent ID of trust domain "${td.name}" (spiffe://${td.name}${AGENT_PATH_PREFIX}…)`,
        Code.PermissionDenied,
      );
    }
    const leaf = new X509Certificate(chain[0] as Buffer);
    return { id, serial: normalizeSerial(leaf.serialNumber), notAfter: Date.parse(leaf.validTo) };
  }
}

function unauthenticated(reason: string): ConnectError {
  return new ConnectError(reason, Code.Unauthenticated);
}
