/**
 * Agent side of node attestation: what the agent sends in AttestAgent and how it answers
 * the server's challenges. One client per method, chosen by the agent config
 * (`join_token`, or the x509pop key and certificate), speaking exactly the format of the
 * server's attestor of the same name (server/attestation/).
 * @module
 */
import { SteepleError } from '../../common/errors.js';

/**
 * The agent's half of one node attestation method. The Agent API client sends
 * `AttestationData { type: name, payload: await payload() }`, then answers every
 * `challenge` with `await answer(challenge)`.
 */
export interface NodeAttestorClient {
  /** The method, which is `AttestationData.type`: 'join_token' | 'x509pop'. */
  readonly name: string;
  /** The attestation payload; read fresh on every call, so a renewed certificate on disk is used. */
  payload(): Promise<Uint8Array>;
  /** The response to one server challenge; rejects with {@link NodeAttestationClientError} for a challenge it cannot accept. */
  answer(challenge: Uint8Array): Promise<Uint8Array>;
}

/**
 * The agent cannot take part in the attestation the server asked for (a challenge of the
 * wrong shape, a challenge for a method that has none). Code `ERR_ATTESTATION_FAILED`.
 */
export class NodeAttestationClientError extends SteepleError {
  readonly code = 'ERR_ATTESTATION_FAILED' as const;
  /** The method, e.g. 'x509pop'. */
  readonly attestor: string;
  /** Why, in words safe to log. */
  readonly reason: string;

  constructor(attestor: string, reason: string) {
    super(`node attestation (${attestor}) failed on the agent: ${reason}`);
    this.attestor = attestor;
    this.reason = reason;
  }
}
