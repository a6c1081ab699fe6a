import { BundleError, JwtSvidError, WorkloadApiError, X509SvidError } from '../errors.js';

/** A response that breaks the Workload API spec. */
export function badResponse(message: string): WorkloadApiError {
  return new WorkloadApiError('ERR_WORKLOADAPI_RESPONSE', `Workload API response: ${message}`);
}

/**
 * Says where in a response a parse error happened, keeping the error's class and code so
 * that callers still branch on ERR_X509SVID_KEY_MISMATCH, ERR_BUNDLE_INVALID and so on.
 */
export function located(where: string, err: unknown): unknown {
  const message = `Workload API response, ${where}: ${(err as Error)?.message}`;
  if (err instanceof X509SvidError) return new X509SvidError(err.code, message, { cause: err });
  if (err instanceof BundleError) return new BundleError(err.code, message, { cause: err });
  if (err instanceof JwtSvidError) return new JwtSvidError(err.code, message, { cause: err });
  return err;
}
