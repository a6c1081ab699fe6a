/**
 * The `join_token` node attestor (SPIRE's): the agent presents a token that an operator
 * generated with `steeple server token generate`; the server uses it up atomically, so a
 * token admits exactly one agent, and an expired one admits none.
 *
 * Wire format (must match agent/node-attestation/join-token-client.ts):
 *   AttestationData.type    = "join_token"
 *   AttestationData.payload = the token's UTF-8 bytes, nothing else
 *   no challenge.
 * The agent ID is `spiffe://<td>/spire/agent/join_token/<token>`, there are no node
 * selectors, and the agent cannot re-attest with the same token (it is gone).
 *
 * The token is a secret until used: it never appears in an error, a reason or a log line.
 * @module
 */
import { SpiffeId } from '@steeple/spiffe';
import type { JoinToken } from '../datastore/index.js';
import { type AttestationContext, AttestationError, type NodeAttestation, type NodeAttestor } from './node-attestor.js';

/** The plugin name, which is also `AttestationData.type`. */
export const JOIN_TOKEN_ATTESTOR_NAME = 'join_token';

/** Tokens are path segments of the agent ID; SPIRE's are 36-character UUIDs. */
export const MAX_JOIN_TOKEN_LENGTH = 256;

/** Characters a SPIFFE ID path segment may hold (SPIFFE-ID §2.2), so the agent ID is always valid. */
const TOKEN_CHARS = /^[A-Za-z0-9._-]+$/;

/** The slice of the datastore's join-token store this attestor needs. */
export interface JoinTokenConsumer {
  /**
   * Deletes the token and returns it if it existed and had not expired at `now` (epoch
   * seconds); undefined otherwise. Atomic: of two concurrent calls at most one gets it.
   */
  consume(token: string, now: number): Promise<JoinToken | undefined>;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function invalid(reason: string): AttestationError {
  return new AttestationError(JOIN_TOKEN_ATTESTOR_NAME, reason, { code: 'ERR_ATTESTATION_DATA_INVALID' });
}

/** Decodes and checks the token's form without revealing it. */
function parseToken(payload: Uint8Array): string {
  if (payload.length === 0) throw invalid('join token is empty');
  if (payload.length > MAX_JOIN_TOKEN_LENGTH) {
    throw invalid(`join token is longer than ${MAX_JOIN_TOKEN_LENGTH} bytes`);
  }
  let token: string;
  try {
    token = utf8.decode(payload);
  } catch {
    throw invalid('join token is not valid UTF-8');
  }
  // "." and ".." are not path segments; the SpiffeIdError they would cause names the whole ID.
  if (!TOKEN_CHARS.test(token) || token === '.' || token === '..') {
    throw invalid('join token may hold only letters, digits, ".", "-" and "_"');
  }
  return token;
}

/**
 * Creates the join_token attestor over the datastore's token store
 * (`datastore.joinTokens`).
 */
export function createJoinTokenAttestor(deps: { readonly joinTokens: JoinTokenConsumer }): NodeAttestor {
  const { joinTokens } = deps;
  return Object.freeze({
    name: JOIN_TOKEN_ATTESTOR_NAME,
    async attest(payload: Uint8Array, _challenge: unknown, ctx: AttestationContext): Promise<NodeAttestation> {
      const token = parseToken(payload);
      // Consume with "now" at the epoch, so the store hands back an expired token too
      // (deleting it all the same) and the refusal can say *why*: an operator who sees
      // "expired" generates a new token, one who sees "not found" looks for a typo.
      const found = await joinTokens.consume(token, 0);
      if (found === undefined)
        throw new AttestationError(JOIN_TOKEN_ATTESTOR_NAME, 'join token not found or already used');
      const nowSeconds = Math.floor(ctx.now.getTime() / 1000);
      if (found.expiresAt <= nowSeconds) throw new AttestationError(JOIN_TOKEN_ATTESTOR_NAME, 'join token expired');

      const agentId = SpiffeId.fromPath(ctx.trustDomain, `/spire/agent/join_token/${token}`);
      const alias = found.spiffeId === undefined ? undefined : SpiffeId.tryParse(found.spiffeId);
      return Object.freeze({
        agentId,
        selectors: Object.freeze([]),
        canReattest: false,
        consumedJoinToken: true,
        ...(alias instanceof SpiffeId ? { joinTokenSpiffeId: alias } : {}),
      });
    },
  });
}
