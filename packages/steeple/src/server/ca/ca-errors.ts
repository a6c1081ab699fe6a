/**
 * The typed errors of the server's certificate authority. Each names the offending value
 * and the rule broken; none carries key material, CSR bytes or tokens.
 * @module
 */
import { SteepleError } from '../../common/errors.js';

/**
 * A certificate signing request was refused (`ERR_CSR_INVALID`): malformed or oversized
 * DER, an unsupported key or signature algorithm, or a self-signature that does not
 * verify. `rule` says which rule was broken; the API layer maps this to InvalidArgument.
 */
export class CsrError extends SteepleError {
  readonly code = 'ERR_CSR_INVALID';
  constructor(
    readonly rule: string,
    options?: ErrorOptions,
  ) {
    super(`invalid CSR: ${rule}`, options);
  }
}

/**
 * The CA refused to sign what it was asked to (`ERR_SVID_REQUEST_INVALID`): an ID
 * outside the trust domain, without a path or over 2048 bytes, a bad TTL, DNS name or
 * audience. Maps to InvalidArgument.
 */
export class SvidRequestError extends SteepleError {
  readonly code = 'ERR_SVID_REQUEST_INVALID';
}

/** Codes of {@link CaError}. */
export type CaErrorCode = 'ERR_CA_NOT_READY' | 'ERR_CA_STATE_INVALID' | 'ERR_UPSTREAM_AUTHORITY_INVALID';

/**
 * The CA cannot do its job: no active authority (`ERR_CA_NOT_READY`, maps to
 * Unavailable), unusable saved state (`ERR_CA_STATE_INVALID`), or an upstream authority
 * that cannot sign (`ERR_UPSTREAM_AUTHORITY_INVALID`).
 */
export class CaError extends SteepleError {
  readonly code: CaErrorCode;
  constructor(code: CaErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}
