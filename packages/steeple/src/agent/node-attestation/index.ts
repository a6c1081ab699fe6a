/**
 * Node attestation, agent side: one {@link NodeAttestorClient} per method, speaking the
 * format of the server's attestor of the same name.
 * @module
 */

export {
  encodeX509PopPayload,
  X509POP_ATTESTOR_NAME,
  X509POP_CONTEXT,
  X509POP_NONCE_LENGTH,
  type X509PopSignatureScheme,
  x509PopSchemeFor,
  x509PopSignedMessage,
} from '../../common/attestation/x509pop-format.js';
export { createJoinTokenClient, JOIN_TOKEN_CLIENT_NAME, type JoinTokenClientOptions } from './join-token-client.js';
export { NodeAttestationClientError, type NodeAttestorClient } from './node-attestor-client.js';
export {
  createX509PopClient,
  type X509PopClientConfig,
  type X509PopClientOptions,
  x509PopClientConfigSchema,
} from './x509pop-client.js';
