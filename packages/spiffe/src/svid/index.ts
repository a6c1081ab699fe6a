export {
  DEFAULT_JWT_LEEWAY_SECONDS,
  JWT_SVID_ALGORITHMS,
  JwtSvid,
  type JwtSvidAlgorithm,
  type JwtSvidValidationOptions,
  MAX_JWT_SVID_LENGTH,
} from './jwt-svid.js';
export type { JwtSvidParams, JwtSvidSource } from './jwt-svid-source.js';
export { X509Svid, type X509SvidOptions, type X509SvidSource } from './x509-svid.js';
export { type VerifiedX509Svid, type VerifyX509SvidOptions, verifyX509Svid } from './x509-svid-verify.js';
