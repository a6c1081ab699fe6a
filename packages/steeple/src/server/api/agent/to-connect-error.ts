/**
 * Errors to gRPC statuses at the Agent API's edge. Typed errors (they carry a stable
 * `code`) keep their message, which names the value and the rule and never holds secrets;
 * anything else becomes Internal with a generic message, and its details go to the log only.
 * @module
 */
import { Code, ConnectError } from '@connectrpc/connect';

/** Stable error codes of the server and SDK, and the gRPC status each becomes. */
const STATUS_BY_CODE: Readonly<Record<string, Code>> = {
  ERR_CSR_INVALID: Code.InvalidArgument,
  ERR_SVID_REQUEST_INVALID: Code.InvalidArgument,
  ERR_CA_NOT_READY: Code.Unavailable,
  ERR_ATTESTATION_FAILED: Code.PermissionDenied,
  ERR_ATTESTATION_DATA_INVALID: Code.InvalidArgument,
  ERR_DATASTORE_UNAVAILABLE: Code.Unavailable,
  ERR_AGENT_NOT_FOUND: Code.PermissionDenied,
  ERR_ENTRY_NOT_FOUND: Code.NotFound,
  ERR_SPIFFEID_INVALID: Code.InvalidArgument,
  ERR_TRUST_DOMAIN_INVALID: Code.InvalidArgument,
};

/** The stable `code` of a typed error, if it has one. */
export function errorCodeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('ERR_') ? code : undefined;
}

/**
 * Maps `err` to a ConnectError. `onInternal` is called for errors that become Internal
 * (to log them); their message does not reach the caller.
 */
export function toConnectError(err: unknown, onInternal?: (err: unknown) => void): ConnectError {
  if (err instanceof ConnectError) return err;
  const code = errorCodeOf(err);
  const status = code === undefined ? undefined : STATUS_BY_CODE[code];
  if (status !== undefined) return new ConnectError((err as Error).message, status, undefined, undefined, err);
  onInternal?.(err);
  return new ConnectError('internal error; see the server log', Code.Internal, undefined, undefined, err);
}
