/**
 * undici adapter: an `Agent` (dispatcher) for `fetch`/`request` from undici that
 * speaks mTLS with SPIFFE verification. undici is an optional peer dependency.
 * @module
 */
import tls from 'node:tls';
import { Agent } from 'undici';
import { type MtlsConfig, mtlsClientOptions } from '../tls/tls-options.js';

export interface MtlsUndiciAgentOptions extends Omit<Agent.Options, 'connect'> {}

/**
 * An undici `Agent` whose connections present our X.509-SVID and accept only servers
 * whose SVID verifies against their own trust domain's bundle and passes `authorize`.
 * Each new connection uses the current SVID and bundles.
 *
 * @example
 * import { fetch } from 'undici';
 * const dispatcher = createMtlsUndiciAgent({ svid, bundles, authorize: authorizeId(serverId) });
 * const res = await fetch('https://127.0.0.1:8443/hello', { dispatcher });
 */
export function createMtlsUndiciAgent(config: MtlsConfig, options: MtlsUndiciAgentOptions = {}): Agent {
  const tlsOptions = mtlsClientOptions(config);
  return new Agent({
    ...options,
    connect(opts, callback) {
      const socket = tls.connect({
        host: opts.hostname,
        port: Number(opts.port) || 443,
        servername: opts.servername || undefined,
        ALPNProtocols: ['http/1.1'],
        ...tlsOptions,
      });
      let done = false;
      socket.once('secureConnect', () => {
        if (done) return;
        done = true;
        callback(null, socket);
      });
      socket.once('error', (err) => {
        if (done) return;
        done = true;
        callback(err, null);
      });
      return socket;
    },
  });
}
