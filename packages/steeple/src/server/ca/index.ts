/**
 * The server's certificate authority: CSR parsing, X.509-SVID and JWT-SVID signing,
 * rotation of the signing authorities with SPIRE's timing, key managers, the upstream
 * authority, and publishing into the trust bundle. The server composition wires a
 * {@link CaManager} from the config and serves what it signs.
 * @module
 */
export {
  type BundlePublisher,
  DEFAULT_REFRESH_HINT_SECONDS,
  type JwtAuthority,
  MemoryBundlePublisher,
  type PublishedAuthorities,
} from './bundle-publisher.js';
export {
  DEFAULT_CA_SUBJECT,
  DEFAULT_SVID_SUBJECT,
  type SubjectConfig,
  subjectFromConfig,
} from './ca-certificate.js';
export { CaError, type CaErrorCode, CsrError, SvidRequestError } from './ca-errors.js';
export {
  type AuthorityState,
  CA_JOURNAL_FILE,
  type CaJournalStorage,
  fileJournalStorage,
  journalPath,
  MemoryJournalStorage,
} from './ca-journal.js';
export {
  type AuthoritySetStatus,
  type AuthorityStatus,
  activationTime,
  CaManager,
  type CaManagerOptions,
  type CaStatus,
  DEFAULT_CA_TTL_SECONDS,
  preparationTime,
} from './ca-manager.js';
export { type CreateCsrOptions, createCsr } from './create-csr.js';
export { MAX_CSR_BYTES, type ParsedCsr, parseCsr } from './csr.js';
export { JwtSigner, type JwtSvidRequest, type MintedJwtSvid } from './jwt-signer.js';
export {
  createKeyManager,
  DiskKeyManager,
  KEY_TYPES,
  type KeyManager,
  type KeyManagerName,
  type KeyType,
  MemoryKeyManager,
} from './key-manager.js';
export { ServerSvidRotator, type ServerSvidRotatorOptions, type ServerSvidSigner } from './server-svid.js';
export {
  importSubjectPublicKey,
  parseSubjectPublicKeyInfo,
  type SubjectKeyType,
  type SubjectPublicKey,
} from './subject-public-key.js';
export {
  createDiskUpstreamAuthority,
  type DiskUpstreamAuthorityConfig,
  type MintedX509Ca,
  type MintX509CaRequest,
  type UpstreamAuthority,
} from './upstream-authority.js';
export {
  DEFAULT_X509_SVID_TTL_SECONDS,
  MAX_SPIFFE_ID_BYTES,
  type SignedX509Ca,
  type SignedX509Svid,
  X509Ca,
  type X509SvidRequest,
} from './x509-ca.js';
