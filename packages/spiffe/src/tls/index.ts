export {
  type Authorizer,
  authorizeAny,
  authorizeId,
  authorizeMatching,
  authorizeMemberOf,
  authorizeOneOf,
} from './authorizer.js';
export { createMtlsHttpsAgent } from './https-agent.js';
export {
  getPeerId,
  type MtlsClientOptions,
  type MtlsConfig,
  type MtlsServerOptions,
  mtlsClientOptions,
  mtlsServerOptions,
  serveMtls,
} from './tls-options.js';
