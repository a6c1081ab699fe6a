/**
 * Errors of the agent with stable codes (docs/errors.md).
 * @module
 */
import { SteepleError } from '../common/errors.js';

/**
 * A Workload API caller could not be attested: its process is gone, its pid now names
 * another process, or /proc could not be read. The caller gets PERMISSION_DENIED.
 */
export class WorkloadAttestationError extends SteepleError {
  readonly code = 'ERR_WORKLOAD_ATTESTATION_FAILED' as const;
  constructor(
    readonly pid: number,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`cannot attest the caller (pid ${pid}): ${reason}`, options);
  }
}

/**
 * The agent holds no usable SVID and cannot get one by itself: its SVID expired (or the
 * server no longer accepts it) and its node attestation method cannot be repeated (a
 * join token is single-use). `reason` says what the operator must do.
 */
export class AgentNotAttestedError extends SteepleError {
  readonly code = 'ERR_AGENT_NOT_ATTESTED' as const;
  constructor(
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`the agent is not attested: ${reason}`, options);
  }
}

/** A file the agent keeps in data_dir (its SVID, key, bundle) is corrupt or belongs to another trust domain. */
export class AgentStateError extends SteepleError {
  readonly code = 'ERR_AGENT_STATE_INVALID' as const;
  constructor(
    readonly file: string,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`agent state file ${file} cannot be used: ${reason}`, options);
  }
}
