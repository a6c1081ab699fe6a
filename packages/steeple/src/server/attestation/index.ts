/**
 * Node attestation, server side: the attestor contract, the join_token and x509pop
 * plugins, the catalog that builds them from `node_attestors`, and {@link attestNode},
 * which the Agent API's AttestAgent calls.
 * @module
 */

export {
  splitX509PopCertificates,
  X509POP_ATTESTOR_NAME,
  X509POP_CONTEXT,
  X509POP_MAX_CERTIFICATES,
  X509POP_MAX_PAYLOAD_BYTES,
  X509POP_MAX_RESPONSE_BYTES,
  X509POP_NONCE_LENGTH,
  type X509PopSignatureScheme,
  x509PopSchemeFor,
  x509PopSignedMessage,
} from '../../common/attestation/x509pop-format.js';
export {
  AGENT_PATH_TEMPLATE_VALUES,
  type AgentPathTemplate,
  DEFAULT_AGENT_PATH_TEMPLATE,
  parseAgentPathTemplate,
} from './agent-path-template.js';
export { type AttestationData, attestNode, type BannedAgentLookup } from './attest-node.js';
export {
  createJoinTokenAttestor,
  JOIN_TOKEN_ATTESTOR_NAME,
  type JoinTokenConsumer,
  MAX_JOIN_TOKEN_LENGTH,
} from './join-token.js';
export {
  type AttestationContext,
  AttestationError,
  type AttestationErrorCode,
  type ChallengeFn,
  type NodeAttestation,
  type NodeAttestor,
  type NodeSelector,
} from './node-attestor.js';
export { createNodeAttestors, type NodeAttestorCatalog, type NodeAttestorDeps } from './node-attestor-catalog.js';
export { type NodeAttestorsConfig, nodeAttestorsSchema, type X509PopConfig } from './node-attestors-config.js';
export { CertificateChainError, type VerifiedChain, verifyCertificateChain } from './verify-certificate-chain.js';
export { createX509PopAttestor, type X509PopAttestorOptions } from './x509pop.js';
