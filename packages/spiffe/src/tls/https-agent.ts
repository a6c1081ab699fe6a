import type https from 'node:https';
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { type MtlsConfig, mtlsClientOptions } from './tls-options.js';

/**
 * `node:https` is loaded when the first agent is made, not with the SDK: it brings
 * Node's whole HTTP client and server (≈130 KiB of heap), which a process that only
 * uses `tls` (the Steeple proxy, say) never needs.
 */
const requireBuiltin = createRequire(import.meta.url);

/**
 * An `https.Agent` whose connections use mTLS with SPIFFE verification and the
 * current SVID and bundles (a plain `new https.Agent(options)` would freeze the
 * options it was built with). Keep-alive pooling works as usual; TLS session
 * resumption is off so that every connection is checked.
 *
 * @example
 * const agent = createMtlsHttpsAgent({ svid, bundles, authorize: authorizeId(serverId) });
 * https.get('https://10.0.0.5:8443/', { agent }, (res) => ...);
 */
export function createMtlsHttpsAgent(config: MtlsConfig, agentOptions: https.AgentOptions = {}): https.Agent {
  const tlsOptions = mtlsClientOptions(config);
  const { Agent } = requireBuiltin('node:https') as typeof https;
  class MtlsAgent extends Agent {
    override createConnection(
      options: tls.ConnectionOptions,
      callback?: (err: Error | null, socket: Duplex) => void,
    ): Duplex {
      const { session: _session, ...rest } = options;
      const socket = tls.connect({ ...rest, ...tlsOptions });
      if (callback) {
        socket.once('secureConnect', () => callback(null, socket));
        socket.once('error', (err) => callback(err, socket));
        return undefined as unknown as Duplex;
      }
      return socket;
    }
  }
  return new MtlsAgent({ keepAlive: true, ...agentOptions, maxCachedSessions: 0 });
}
