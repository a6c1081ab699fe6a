/**
 * Typed errors of @steeple/spiffe. Every error that bad input can cause is a
 * {@link SpiffeError} with a stable `code`; callers branch on `code`, never on the
 * message. Misuse by the programmer (wrong argument types) stays a plain `TypeError`.
 * Messages name the offending value and the rule it breaks, and never carry key
 * material or whole tokens.
 * @module
 */

export type SpiffeErrorCode =
  | 'ERR_SPIFFEID_INVALID'
  | 'ERR_TRUST_DOMAIN_INVALID'
  | 'ERR_BUNDLE_INVALID'
  | 'ERR_BUNDLE_MISSING'
  | 'ERR_X509SVID_INVALID'
  | 'ERR_X509SVID_KEY_MISMATCH'
  | 'ERR_X509SVID_UNTRUSTED'
  | 'ERR_X509SVID_EXPIRED'
  | 'ERR_JWTSVID_INVALID'
  | 'ERR_JWTSVID_ALGORITHM'
  | 'ERR_JWTSVID_UNTRUSTED'
  | 'ERR_JWTSVID_EXPIRED'
  | 'ERR_JWTSVID_AUDIENCE'
  | 'ERR_AUTHORIZATION_DENIED'
  | 'ERR_POLICY_INVALID'
  | WorkloadApiErrorCode;

/** Base class of every error raised for bad input. */
export abstract class SpiffeError extends Error {
  abstract readonly code: SpiffeErrorCode;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Shortens a value for an error message so that huge inputs do not flood logs. */
export function quote(value: string, max = 120): string {
  const shown = value.length > max ? `${value.slice(0, max)}…(${value.length} chars)` : value;
  return JSON.stringify(shown);
}

/** A string is not a valid SPIFFE ID or trust domain name. */
export class SpiffeIdError extends SpiffeError {
  readonly code: 'ERR_SPIFFEID_INVALID' | 'ERR_TRUST_DOMAIN_INVALID';
  constructor(
    readonly input: string,
    readonly rule: string,
    kind: 'id' | 'trust-domain' = 'id',
  ) {
    super(`invalid ${kind === 'id' ? 'SPIFFE ID' : 'trust domain'} ${quote(input)}: ${rule}`);
    this.code = kind === 'id' ? 'ERR_SPIFFEID_INVALID' : 'ERR_TRUST_DOMAIN_INVALID';
  }
}

/** A trust bundle (PEM, JWKS or SPIFFE bundle JSON) is malformed, or a needed bundle is absent. */
export class BundleError extends SpiffeError {
  constructor(
    readonly code: 'ERR_BUNDLE_INVALID' | 'ERR_BUNDLE_MISSING',
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** An X.509-SVID breaks a rule of the X509-SVID specification or does not chain to its trust domain's bundle. */
export class X509SvidError extends SpiffeError {
  constructor(
    readonly code:
      | 'ERR_X509SVID_INVALID'
      | 'ERR_X509SVID_KEY_MISMATCH'
      | 'ERR_X509SVID_UNTRUSTED'
      | 'ERR_X509SVID_EXPIRED',
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A JWT-SVID breaks a rule of the JWT-SVID specification or fails validation. */
export class JwtSvidError extends SpiffeError {
  constructor(
    readonly code:
      | 'ERR_JWTSVID_INVALID'
      | 'ERR_JWTSVID_ALGORITHM'
      | 'ERR_JWTSVID_UNTRUSTED'
      | 'ERR_JWTSVID_EXPIRED'
      | 'ERR_JWTSVID_AUDIENCE',
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** An authorizer refused a verified peer. */
export class AuthorizationError extends SpiffeError {
  readonly code = 'ERR_AUTHORIZATION_DENIED' as const;
}

/** One problem in an authorization policy document: where it is and what is wrong. */
export interface PolicyIssue {
  /** Key path such as `policies[0].rules[1].from[0].source.principals[2]`; empty for the document itself. */
  readonly path: string;
  /** What is wrong, naming the offending value and the rule it breaks. */
  readonly message: string;
}

/**
 * An authorization policy document breaks the policy schema (`ERR_POLICY_INVALID`).
 * {@link PolicyError.issues} lists every problem with its key path; the message holds
 * them one per line as `path: message`.
 */
export class PolicyError extends SpiffeError {
  readonly code = 'ERR_POLICY_INVALID' as const;
  constructor(
    readonly issues: readonly PolicyIssue[],
    options?: ErrorOptions,
  ) {
    const n = issues.length;
    const lines = issues.map((i) => `  ${i.path === '' ? '' : `${i.path}: `}${i.message}`);
    super(`invalid authorization policy (${n} ${n === 1 ? 'problem' : 'problems'}):\n${lines.join('\n')}`, options);
  }
}

/** Codes of {@link WorkloadApiError}. */
export type WorkloadApiErrorCode =
  | 'ERR_WORKLOADAPI_ADDRESS'
  | 'ERR_WORKLOADAPI_STATUS'
  | 'ERR_WORKLOADAPI_RESPONSE'
  | 'ERR_WORKLOADAPI_TIMEOUT'
  | 'ERR_WORKLOADAPI_CLOSED';

/**
 * A Workload API problem: an address that breaks the SPIFFE Workload Endpoint rules
 * (`ERR_WORKLOADAPI_ADDRESS`), a call the endpoint answered with a gRPC error status
 * (`ERR_WORKLOADAPI_STATUS`, with {@link WorkloadApiError.grpcCode}), a response that breaks
 * the Workload API spec (`ERR_WORKLOADAPI_RESPONSE`), no answer in time
 * (`ERR_WORKLOADAPI_TIMEOUT`), or use after `close()` (`ERR_WORKLOADAPI_CLOSED`).
 */
export class WorkloadApiError extends SpiffeError {
  /** The gRPC status code (3 InvalidArgument, 7 PermissionDenied, 14 Unavailable, …) for `ERR_WORKLOADAPI_STATUS`. */
  readonly grpcCode: number | undefined;
  constructor(
    readonly code: WorkloadApiErrorCode,
    message: string,
    options?: ErrorOptions & { grpcCode?: number },
  ) {
    super(message, options);
    this.grpcCode = options?.grpcCode;
  }
}
