/**
 * @steeple/spiffe/issuance — fast X.509 certificate construction and signing, for
 * Steeple's own CA (and anyone building a SPIFFE CA). The TBSCertificate is encoded
 * directly as DER with the issuer's parts prepared once, then signed with node:crypto,
 * so the cost per certificate is about one signature.
 * @module
 */
export {
  CertificateIssuer,
  type CertificateSpec,
  type DistinguishedName,
  type ExtensionSpec,
  encodeName,
  type KeyUsageName,
  type NameAttribute,
  selfSignCertificate,
  signatureSchemeFor,
} from '../internal/certificate-builder.js';
export { keyIdentifierForSpki, OID, type X509Fields, x509Fields } from '../internal/x509-fields.js';
