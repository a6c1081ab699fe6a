/**
 * undici adapter: an `Agent` (dispatcher) for `fetch`/`request` from undici that
 * speaks mTLS with SPIFFE verification. undici is an optional peer dependency.
 * @module
 */
import tls from 'node:tls';
import { Agent, fetch, type RequestInfo, type RequestInit, type Response } from 'undici';
import type { X509BundleSetSource } from '../bundle/source.js';
import type { X509SvidSource } from '../svid/x509-svid.js';
import { type Authorizer, authorizeMemberOf } from '../tls/authorizer.js';
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

/** Options of {@link createSpiffeFetch}. */
export interface SpiffeFetchOptions extends Omit<MtlsConfig, 'svid' | 'bundles' | 'authorize'> {
  /** Our X.509-SVID and the trust bundles, usually an `X509Source` from the Workload API. */
  readonly source: X509SvidSource & X509BundleSetSource;
  /**
   * Which servers we talk to, decided on the server's verified SPIFFE ID (host names are
   * not checked: the SPIFFE ID is the identity). Default: any member of our own trust domain.
   */
  readonly authorize?: Authorizer;
  /** Options of the underlying undici `Agent` (pool sizes, timeouts, …). */
  readonly agent?: MtlsUndiciAgentOptions;
}

/** A `fetch` that speaks mTLS with SPIFFE verification, with its dispatcher. */
export interface SpiffeFetch {
  (input: RequestInfo, init?: Omit<RequestInit, 'dispatcher'>): Promise<Response>;
  /** The undici `Agent` the calls go through (for `request`, `stream`, or a `Client` of your own). */
  readonly dispatcher: Agent;
  /** Closes the pooled connections; calls after this fail. */
  close(): Promise<void>;
}

/**
 * undici's `fetch`, bound to a dispatcher that presents our X.509-SVID (the current one:
 * rotation needs nothing) and accepts only servers whose SVID verifies and passes `authorize`.
 * A refused server fails the call with a `TypeError('fetch failed')` whose `cause` is the
 * `SpiffeError` (`ERR_AUTHORIZATION_DENIED`, `ERR_X509SVID_UNTRUSTED`, …).
 *
 * @example
 * const source = await X509Source.create();
 * const spiffeFetch = createSpiffeFetch({ source, authorize: authorizeId('spiffe://example.org/orders') });
 * const res = await spiffeFetch('https://orders.internal:8443/orders/7');
 * console.log(res.status, await res.text());
 * await spiffeFetch.close();
 */
export function createSpiffeFetch(options: SpiffeFetchOptions): SpiffeFetch {
  const { source, authorize, agent, ...rest } = options;
  const dispatcher = createMtlsUndiciAgent(
    {
      ...rest,
      svid: source,
      bundles: source,
      authorize: authorize ?? authorizeMemberOf(source.getX509Svid().id.trustDomain),
    },
    agent,
  );
  const spiffeFetch = (input: RequestInfo, init?: Omit<RequestInit, 'dispatcher'>) =>
    fetch(input, { ...init, dispatcher });
  return Object.assign(spiffeFetch, { dispatcher, close: () => dispatcher.close() });
}
