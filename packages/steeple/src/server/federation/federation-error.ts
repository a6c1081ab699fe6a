/**
 * Why a federated bundle was not fetched or not accepted. Every refusal names the trust
 * domain, the endpoint and the rule broken; the `reason` is a short stable word for metrics
 * and tests, the `code` the class of problem a caller branches on. Like the datastore's
 * errors, the codes form their own union ({@link FederationErrorCode}).
 * @module
 */

export type FederationErrorCode =
  /** The endpoint could not be reached: DNS, connection refused or reset, timeout, TLS alert. */
  | 'ERR_FEDERATION_ENDPOINT_UNREACHABLE'
  /** The endpoint was reached but failed authentication (F-4, F-5): wrong SVID, untrusted certificate. */
  | 'ERR_FEDERATION_ENDPOINT_UNTRUSTED'
  /** The HTTP exchange broke a rule (F-3, F-6): status, redirect, size, encoding. */
  | 'ERR_FEDERATION_RESPONSE_INVALID'
  /** The document is not an acceptable bundle of the trust domain (B-2, F-7, F-8). */
  | 'ERR_FEDERATION_BUNDLE_REFUSED';

/** Short, stable words for what exactly went wrong (metric label `reason`). */
export type FederationFailureReason =
  | 'invalid-url'
  | 'timeout'
  | 'connection-failed'
  | 'tls-handshake-failed'
  | 'webpki-untrusted'
  | 'no-endpoint-bundle'
  | 'endpoint-svid-invalid'
  | 'wrong-endpoint-id'
  | 'http-status'
  | 'invalid-redirect'
  | 'too-many-redirects'
  | 'oversized'
  | 'not-utf8'
  | 'malformed'
  | 'empty'
  | 'other-trust-domain'
  | 'sequence-rollback';

/** A bundle fetch failed or its result was refused; the last good bundle stays in force. */
export class FederationError extends Error {
  readonly code: FederationErrorCode;
  readonly reason: FederationFailureReason;

  constructor(code: FederationErrorCode, reason: FederationFailureReason, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'FederationError';
    this.code = code;
    this.reason = reason;
  }
}

/** True when `err` is a {@link FederationError}, optionally with the given code. */
export function isFederationError(err: unknown, code?: FederationErrorCode): err is FederationError {
  return err instanceof FederationError && (code === undefined || err.code === code);
}
