/**
 * How errors become gRPC statuses on the admin API: one total table from every typed error
 * code to a status code (a code added to a union without a row here fails to compile), field
 * validation errors that name the field, and a catch-all that never sends a stack trace.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { Code, ConnectError } from '@connectrpc/connect';
import type { SpiffeErrorCode } from '@steeple/spiffe';
import type { SteepleErrorCode } from '../../../common/errors.js';
import type { Logger } from '../../../common/logger.js';
import type { DatastoreErrorCode } from '../../datastore/index.js';
import type { FederationErrorCode } from '../../federation/federation-error.js';

/** The status for each typed error the admin API can meet. */
export const grpcCodeFor = {
  // Datastore
  ERR_ENTRY_DUPLICATE: Code.AlreadyExists,
  ERR_ENTRY_NOT_FOUND: Code.NotFound,
  ERR_AGENT_EXISTS: Code.AlreadyExists,
  ERR_AGENT_NOT_FOUND: Code.NotFound,
  ERR_JOIN_TOKEN_EXISTS: Code.AlreadyExists,
  ERR_BUNDLE_NOT_FOUND: Code.NotFound,
  ERR_BUNDLE_IN_USE: Code.FailedPrecondition,
  ERR_FEDERATION_RELATIONSHIP_EXISTS: Code.AlreadyExists,
  ERR_FEDERATION_RELATIONSHIP_NOT_FOUND: Code.NotFound,
  ERR_REVISION_OUT_OF_RANGE: Code.OutOfRange,
  ERR_DATASTORE_UNAVAILABLE: Code.Unavailable,
  ERR_DATASTORE_SCHEMA_TOO_NEW: Code.FailedPrecondition,
  // SDK
  ERR_SPIFFEID_INVALID: Code.InvalidArgument,
  ERR_TRUST_DOMAIN_INVALID: Code.InvalidArgument,
  ERR_BUNDLE_INVALID: Code.InvalidArgument,
  ERR_BUNDLE_MISSING: Code.FailedPrecondition,
  ERR_X509SVID_INVALID: Code.InvalidArgument,
  ERR_X509SVID_KEY_MISMATCH: Code.InvalidArgument,
  ERR_X509SVID_UNTRUSTED: Code.PermissionDenied,
  ERR_X509SVID_EXPIRED: Code.Unauthenticated,
  ERR_JWTSVID_INVALID: Code.InvalidArgument,
  ERR_JWTSVID_ALGORITHM: Code.InvalidArgument,
  ERR_JWTSVID_UNTRUSTED: Code.PermissionDenied,
  ERR_JWTSVID_EXPIRED: Code.Unauthenticated,
  ERR_JWTSVID_AUDIENCE: Code.PermissionDenied,
  ERR_AUTHORIZATION_DENIED: Code.PermissionDenied,
  ERR_POLICY_INVALID: Code.InvalidArgument,
  ERR_WORKLOADAPI_ADDRESS: Code.InvalidArgument,
  ERR_WORKLOADAPI_STATUS: Code.Unavailable,
  ERR_WORKLOADAPI_RESPONSE: Code.Internal,
  ERR_WORKLOADAPI_TIMEOUT: Code.DeadlineExceeded,
  ERR_WORKLOADAPI_CLOSED: Code.Unavailable,
  // Product
  ERR_CONFIG_INVALID: Code.InvalidArgument,
  ERR_CONFIG_UNREADABLE: Code.FailedPrecondition,
  ERR_ATTESTATION_FAILED: Code.PermissionDenied,
  ERR_ATTESTATION_DATA_INVALID: Code.InvalidArgument,
  ERR_CSR_INVALID: Code.InvalidArgument,
  ERR_SVID_REQUEST_INVALID: Code.InvalidArgument,
  ERR_CA_NOT_READY: Code.Unavailable,
  ERR_CA_STATE_INVALID: Code.Internal,
  ERR_UPSTREAM_AUTHORITY_INVALID: Code.Internal,
  ERR_WORKLOAD_ATTESTATION_FAILED: Code.PermissionDenied,
  ERR_AGENT_NOT_ATTESTED: Code.Unauthenticated,
  ERR_AGENT_STATE_INVALID: Code.Internal,
  // Federation (RefreshBundle): the peer is down, or what it served was refused; the last good bundle stays
  ERR_FEDERATION_ENDPOINT_UNREACHABLE: Code.Unavailable,
  ERR_FEDERATION_ENDPOINT_UNTRUSTED: Code.FailedPrecondition,
  ERR_FEDERATION_RESPONSE_INVALID: Code.FailedPrecondition,
  ERR_FEDERATION_BUNDLE_REFUSED: Code.FailedPrecondition,
} as const satisfies Record<DatastoreErrorCode | SpiffeErrorCode | SteepleErrorCode | FederationErrorCode, Code>;

type TypedCode = keyof typeof grpcCodeFor;

function typedCodeOf(err: unknown): TypedCode | undefined {
  if (!(err instanceof Error)) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && Object.hasOwn(grpcCodeFor, code) ? (code as TypedCode) : undefined;
}

/**
 * A refusal of one request field: `spiffeId: "spiffe://other.org/x" is not in trust domain "example.org"`.
 * The field is named as in the API (camelCase), with an index for list items (`selectors[1]`).
 */
export function invalidField(field: string, reason: string): ConnectError {
  return new ConnectError(`${field}: ${reason}`, Code.InvalidArgument);
}

/** A refusal for a record that does not exist. */
export function notFound(message: string): ConnectError {
  return new ConnectError(message, Code.NotFound);
}

/**
 * The ConnectError to send for `err`. Typed errors keep their message (which names the value and
 * the rule, never a secret) with their mapped status; anything else is an internal error whose
 * details go only to the server log, correlated by a short incident id.
 */
export function toConnectError(err: unknown, logger: Logger, rpc: string): ConnectError {
  if (err instanceof ConnectError) return err;
  const code = typedCodeOf(err);
  if (code !== undefined) return new ConnectError((err as Error).message, grpcCodeFor[code]);
  const incident = randomBytes(4).toString('hex');
  logger.error({ err, rpc, incident }, 'admin API call failed unexpectedly');
  return new ConnectError(`internal error (incident ${incident}; see the server log)`, Code.Internal);
}

/** The per-item status of a batch result (gRPC code numbers equal Connect's `Code` values). */
export interface ItemStatus {
  readonly code: number;
  readonly message: string;
}

export const OK_STATUS: ItemStatus = Object.freeze({ code: 0, message: 'OK' });

/**
 * The per-item status for an error that refuses only that item (validation, not found,
 * duplicate); undefined for errors that should fail the whole call (datastore down, bugs).
 */
export function itemStatusFor(err: unknown): ItemStatus | undefined {
  if (err instanceof ConnectError) return { code: err.code, message: err.rawMessage };
  const code = typedCodeOf(err);
  if (code === undefined) return undefined;
  const status = grpcCodeFor[code];
  if (status === Code.Unavailable || status === Code.Internal) return undefined;
  return { code: status, message: (err as Error).message };
}
