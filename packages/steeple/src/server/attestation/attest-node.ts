/**
 * One node attestation as the Agent API's AttestAgent runs it: pick the attestor the
 * agent asked for, run it, and refuse a banned agent (SPIRE: a banned agent can neither
 * renew nor re-attest until it is evicted, i.e. its record deleted).
 * @module
 */
import type { AttestedAgent } from '../datastore/index.js';
import { type AttestationContext, AttestationError, type ChallengeFn, type NodeAttestation } from './node-attestor.js';
import type { NodeAttestorCatalog } from './node-attestor-catalog.js';

/** The slice of the datastore's agent store needed to see bans. */
export interface BannedAgentLookup {
  get(spiffeId: string): Promise<Pick<AttestedAgent, 'banned'> | undefined>;
}

/** `AttestAgentRequest.params.data`. */
export interface AttestationData {
  readonly type: string;
  readonly payload: Uint8Array;
}

const MAX_TYPE_SHOWN = 64;

/**
 * Runs the attestor named by `data.type`.
 * @throws AttestationError `ERR_ATTESTATION_DATA_INVALID` when no such attestor is enabled,
 *   `ERR_ATTESTATION_FAILED` when the attestor refuses or the agent is banned.
 */
export async function attestNode(
  attestors: NodeAttestorCatalog,
  data: AttestationData,
  challenge: ChallengeFn,
  ctx: AttestationContext,
  options: { readonly agents?: BannedAgentLookup } = {},
): Promise<NodeAttestation> {
  const attestor = attestors.get(data.type);
  if (attestor === undefined) {
    const shown = data.type.length > MAX_TYPE_SHOWN ? `${data.type.slice(0, MAX_TYPE_SHOWN)}…` : data.type;
    const enabled = [...attestors.keys()].join(', ') || 'none';
    throw new AttestationError(
      shown === '' ? '(none)' : shown,
      `node attestor ${JSON.stringify(shown)} is not enabled on this server (enabled: ${enabled})`,
      { code: 'ERR_ATTESTATION_DATA_INVALID' },
    );
  }
  const attestation = await attestor.attest(data.payload, challenge, ctx);
  const existing = await options.agents?.get(attestation.agentId.toString());
  if (existing?.banned) {
    // No ID in the reason: a join_token agent ID carries the token.
    throw new AttestationError(attestor.name, 'the agent is banned; evict it to let it attest again');
  }
  return attestation;
}
