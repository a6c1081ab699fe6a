/**
 * @steeple/spiffe/http — SPIFFE-aware HTTPS and HTTP/2 servers in a few lines: mTLS with
 * a rotating X.509-SVID, callers authorized by SPIFFE ID at the handshake, and the Steeple
 * proxy's authorization policies evaluated per request. The client side is
 * `createSpiffeFetch` in `@steeple/spiffe/undici`.
 * @module
 */

export {
  createSpiffeHttp2SecureServer,
  createSpiffeHttpsServer,
  getRequestPeerId,
  type SpiffeHttp2ServerOptions,
  type SpiffeHttpsServerOptions,
  type SpiffeServerOptions,
} from './spiffe-server.js';
