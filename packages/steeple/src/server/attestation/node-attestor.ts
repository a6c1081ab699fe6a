/**
 * Server side of node attestation: the {@link NodeAttestor} contract every plugin
 * (join_token, x509pop, …) implements, what a successful attestation yields, and the
 * one error a refusal raises. Challenge–response is a callback, so a plugin that needs
 * a proof of possession (x509pop) fits the same shape as one that does not (join_token):
 * the Agent API turns each call into a `challenge` message on the AttestAgent stream
 * and resolves it with the agent's `challenge_response`.
 * @module
 */
import type { SpiffeId, TrustDomain } from '@steeple/spiffe';
import { SteepleError } from '../../common/errors.js';
import type { Selector } from '../datastore/index.js';

/** A node selector such as `{ type: 'x509pop', value: 'subject:cn:node-1' }` (the datastore's own type). */
export type NodeSelector = Selector;

/** What every attestation needs besides the agent's data. */
export interface AttestationContext {
  /** The server's trust domain: agent IDs are minted in it. */
  readonly trustDomain: TrustDomain;
  /** "Now" from the server's clock: expiry of tokens and certificates is judged against it. */
  readonly now: Date;
}

/**
 * Sends `nonce` (attestor-specific challenge bytes) to the agent and resolves with its
 * answer. Rejects when the stream breaks; attestors let that rejection propagate.
 */
export type ChallengeFn = (nonce: Uint8Array) => Promise<Uint8Array>;

/** The outcome of a successful node attestation. */
export interface NodeAttestation {
  /** The agent's SPIFFE ID, e.g. `spiffe://example.org/spire/agent/join_token/<token>`. */
  readonly agentId: SpiffeId;
  /** Node selectors (node aliases match on them); sorted by type then value, no duplicates. */
  readonly selectors: readonly NodeSelector[];
  /**
   * Whether the agent may attest again with the same method once its SVID has expired
   * (SPIRE semantics: false for single-use join tokens, true for x509pop).
   */
  readonly canReattest: boolean;
  /** True when attesting used up a join token (it can never be presented again). */
  readonly consumedJoinToken?: boolean;
  /**
   * For join tokens generated with `-spiffeID`: that ID, which the Agent API registers as
   * an alias of the agent (as SPIRE does). Absent otherwise.
   */
  readonly joinTokenSpiffeId?: SpiffeId;
}

/**
 * One node attestation method, chosen by name in the server config's `node_attestors`
 * (SPIRE's plugin names). Implementations never log or echo secrets (tokens, keys).
 */
export interface NodeAttestor {
  /** The plugin name, which is also `AttestationData.type` on the wire: 'join_token' | 'x509pop'. */
  readonly name: string;
  /**
   * Checks the agent's proof. Resolves with the agent's identity, or rejects with an
   * {@link AttestationError} (a refusal) — or with whatever the datastore or the
   * challenge callback threw (the server is unavailable, the stream broke).
   */
  attest(payload: Uint8Array, challenge: ChallengeFn, ctx: AttestationContext): Promise<NodeAttestation>;
}

/**
 * `ERR_ATTESTATION_FAILED`: the proof was refused (gRPC PERMISSION_DENIED).
 * `ERR_ATTESTATION_DATA_INVALID`: the attestation data is malformed (gRPC INVALID_ARGUMENT).
 */
export type AttestationErrorCode = 'ERR_ATTESTATION_FAILED' | 'ERR_ATTESTATION_DATA_INVALID';

/**
 * Node attestation was refused. `reason` is safe to log and to return to the agent: it
 * names the rule broken (`join token expired`, `certificate chain does not lead to a CA
 * in ca_bundle_path`) and never contains a token or key material.
 */
export class AttestationError extends SteepleError {
  readonly code: AttestationErrorCode;
  /** The node attestor that refused, e.g. 'join_token'. */
  readonly attestor: string;
  /** Why, in words safe to log. */
  readonly reason: string;

  constructor(
    attestor: string,
    reason: string,
    options: { readonly code?: AttestationErrorCode; readonly cause?: unknown } = {},
  ) {
    super(
      `node attestation (${attestor}) refused: ${reason}`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.code = options.code ?? 'ERR_ATTESTATION_FAILED';
    this.attestor = attestor;
    this.reason = reason;
  }
}
