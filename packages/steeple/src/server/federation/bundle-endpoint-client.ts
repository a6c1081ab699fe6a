/**
 * Fetches a peer trust domain's SPIFFE bundle from its bundle endpoint (SPIFFE Federation §5),
 * authenticating the endpoint by its profile and refusing anything that is not an acceptable
 * bundle of the EXPECTED trust domain:
 *
 * - the URL must be `https` without user information (F-3);
 * - `https_web`: standard Web PKI validation, system roots plus optional extra roots, host
 *   name checked per RFC 6125 (F-4);
 * - `https_spiffe`: the server certificate must be an X.509-SVID that verifies against the
 *   bundle of the endpoint ID's trust domain and carries exactly the configured endpoint ID
 *   (F-5). The TLS socket is opened and checked BEFORE the GET is written, so nothing is
 *   ever sent to, or read from, an endpoint that failed authentication. No client
 *   certificate is presented: the endpoint requires no client authentication (F-3);
 * - redirects are followed (at most 3 by default) with the same checks, and never
 *   remembered (F-6);
 * - the body is bounded (1 MiB by default), must be UTF-8 and parse as a SPIFFE bundle
 *   that is not empty (B-2), whose X.509 authorities name no other trust domain, and, for a
 *   self-serving `https_spiffe` endpoint, that vouches for the endpoint's own SVID: a server
 *   of trust domain B that serves some other trust domain's bundle is caught by that (F-8).
 *
 * Every refusal is a {@link FederationError} naming the endpoint and the rule broken.
 * @module
 */
import { X509Certificate } from 'node:crypto';
import http from 'node:http';
import { isIP } from 'node:net';
import tls from 'node:tls';
import {
  BundleError,
  type Clock,
  SpiffeBundle,
  type SpiffeId,
  systemClock,
  type TrustDomain,
  verifyX509Svid,
  type X509Bundle,
} from '@steeple/spiffe';
import { x509Fields } from '@steeple/spiffe/issuance';
import { bundleEndpointUrlProblem, displayUrl } from './federation-config.js';
import { FederationError, type FederationFailureReason } from './federation-error.js';

/** Default limit on the bundle document: a real bundle is a few KiB; 1 MiB holds hundreds of authorities. */
export const DEFAULT_MAX_BUNDLE_BYTES = 1024 * 1024;
/** Default limit on the whole fetch, redirects included. */
export const DEFAULT_FETCH_TIMEOUT_MS = 10_000;
/** Default number of redirects followed (F-6). */
export const DEFAULT_MAX_REDIRECTS = 3;

const MAX_PRESENTED_CHAIN = 10;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** How the endpoint proves who it is. */
export type EndpointAuthentication =
  | {
      readonly profile: 'https_web';
      /** PEM certificates trusted in addition to the system roots (a private web CA; tests). */
      readonly extraRootCertificates?: readonly string[];
    }
  | {
      readonly profile: 'https_spiffe';
      /** The SPIFFE ID the endpoint's SVID must carry. */
      readonly endpointSpiffeId: SpiffeId;
      /**
       * The bundle of the endpoint ID's trust domain: for a self-serving endpoint, the
       * configured bundle on first contact and the latest fetched one afterwards (F-5).
       * Undefined when none is known (the fetch then fails with `no-endpoint-bundle`).
       */
      readonly endpointBundle: X509Bundle | undefined;
    };

export interface FetchBundleOptions {
  /** The configured bundle endpoint URL; redirects start from it again on every fetch (F-6). */
  readonly url: string;
  /** The trust domain whose bundle the endpoint serves (F-1: configured, never inferred). */
  readonly trustDomain: TrustDomain;
  readonly authentication: EndpointAuthentication;
  /** Time for SVID verification; default the system clock. */
  readonly clock?: Clock;
  /** Limit on the whole fetch in real milliseconds; default {@link DEFAULT_FETCH_TIMEOUT_MS}. */
  readonly timeoutMs?: number;
  /** Largest accepted document; default {@link DEFAULT_MAX_BUNDLE_BYTES}. */
  readonly maxBytes?: number;
  /** Default {@link DEFAULT_MAX_REDIRECTS}. */
  readonly maxRedirects?: number;
  /** Aborts the fetch (e.g. the relationship was deleted). */
  readonly signal?: AbortSignal;
}

/** A bundle fetched and accepted (apart from the sequence check, which needs the stored bundle). */
export interface FetchedBundle {
  readonly bundle: SpiffeBundle;
  /** Where the bundle finally came from (the configured URL unless redirected). */
  readonly url: string;
  /** The redirect targets followed, in order. */
  readonly redirects: readonly string[];
  /** `https_spiffe`: the endpoint's verified SPIFFE ID. */
  readonly endpointId?: SpiffeId;
  /** Size of the document in bytes. */
  readonly bytes: number;
}

interface Hop {
  readonly status: number;
  readonly location?: string;
  readonly body?: Buffer;
  readonly chain: readonly X509Certificate[];
  readonly endpointId?: SpiffeId;
}

/**
 * Fetches and checks the bundle of `options.trustDomain`. Rejects with a {@link FederationError}:
 * `ERR_FEDERATION_ENDPOINT_UNREACHABLE` (network, timeout, TLS handshake),
 * `ERR_FEDERATION_ENDPOINT_UNTRUSTED` (authentication), `ERR_FEDERATION_RESPONSE_INVALID`
 * (status, redirect, size, encoding) or `ERR_FEDERATION_BUNDLE_REFUSED` (the document).
 *
 * @example
 * const { bundle } = await fetchBundle({
 *   url: 'https://spire.partner.example:8443', trustDomain: TrustDomain.parse('partner.example'),
 *   authentication: { profile: 'https_spiffe', endpointSpiffeId, endpointBundle: stored.x509Bundle() },
 * });
 */
export async function fetchBundle(options: FetchBundleOptions): Promise<FetchedBundle> {
  const td = options.trustDomain;
  const what = `bundle endpoint of "${td.name}"`;
  const timeoutMs = options.timeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
  const maxRedirects = options.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BUNDLE_BYTES;
  const clock = options.clock ?? systemClock;

  const problem = bundleEndpointUrlProblem(options.url);
  if (problem !== undefined) {
    throw new FederationError(
      'ERR_FEDERATION_RESPONSE_INVALID',
      'invalid-url',
      `${what}: the URL ${displayUrl(options.url)} ${problem}`,
    );
  }
  const auth = options.authentication;
  if (auth.profile === 'https_spiffe' && auth.endpointBundle === undefined) {
    throw new FederationError(
      'ERR_FEDERATION_ENDPOINT_UNTRUSTED',
      'no-endpoint-bundle',
      `${what} ${options.url}: no bundle of trust domain "${auth.endpointSpiffeId.trustDomain.name}" is known to ` +
        `authenticate the endpoint ${auth.endpointSpiffeId} (F-5); give the relationship an initial bundle ` +
        '(trust_domain_bundle_path, or `steeple server bundle set`)',
    );
  }

  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), timeoutMs);
  const onOuterAbort = () => deadline.abort();
  options.signal?.addEventListener('abort', onOuterAbort, { once: true });
  if (options.signal?.aborted) deadline.abort();
  try {
    let url = new URL(options.url);
    const redirects: string[] = [];
    for (;;) {
      const hop = await fetchHop(url, {
        what,
        auth,
        clock,
        maxBytes,
        signal: deadline.signal,
        timeoutMs,
        externalSignal: options.signal,
      });
      if (REDIRECT_STATUSES.has(hop.status)) {
        if (hop.location === undefined) {
          throw invalidResponse('http-status', `${what} ${url}: HTTP ${hop.status} redirect without a Location`);
        }
        let next: URL;
        try {
          next = new URL(hop.location, url);
        } catch {
          throw invalidResponse(
            'invalid-redirect',
            `${what} ${url}: the redirect target ${displayUrl(hop.location)} is not a URL`,
          );
        }
        const targetProblem = bundleEndpointUrlProblem(next.toString());
        if (targetProblem !== undefined) {
          throw invalidResponse(
            'invalid-redirect',
            `${what} ${url}: the redirect target ${displayUrl(next)} ${targetProblem}; ` +
              'a redirect must lead to a valid bundle endpoint URL (F-6)',
          );
        }
        if (redirects.length >= maxRedirects) {
          throw invalidResponse(
            'too-many-redirects',
            `${what} ${options.url}: more than ${maxRedirects} redirects (last to ${next}) (F-6)`,
          );
        }
        redirects.push(next.toString());
        url = next;
        continue;
      }
      if (hop.status !== 200) {
        throw invalidResponse('http-status', `${what} ${url}: HTTP ${hop.status} instead of 200 with the bundle`);
      }
      const body = hop.body ?? Buffer.alloc(0);
      const bundle = acceptDocument(body, url.toString(), td, hop, clock);
      return {
        bundle,
        url: url.toString(),
        redirects,
        ...(hop.endpointId === undefined ? {} : { endpointId: hop.endpointId }),
        bytes: body.length,
      };
    }
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onOuterAbort);
  }
}

function invalidResponse(reason: FederationFailureReason, message: string): FederationError {
  return new FederationError('ERR_FEDERATION_RESPONSE_INVALID', reason, message);
}

function refused(reason: FederationFailureReason, message: string, cause?: unknown): FederationError {
  return new FederationError(
    'ERR_FEDERATION_BUNDLE_REFUSED',
    reason,
    message,
    cause === undefined ? undefined : { cause },
  );
}

/** The checks on the document itself; the caller still compares its sequence with the stored one. */
function acceptDocument(body: Buffer, url: string, td: TrustDomain, hop: Hop, clock: Clock): SpiffeBundle {
  const what = `bundle of "${td.name}" from ${url}`;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch (cause) {
    throw new FederationError('ERR_FEDERATION_RESPONSE_INVALID', 'not-utf8', `${what}: the body is not UTF-8 (F-3)`, {
      cause,
    });
  }
  let bundle: SpiffeBundle;
  try {
    bundle = SpiffeBundle.parse(td, text);
  } catch (cause) {
    if (cause instanceof BundleError) {
      throw refused('malformed', `${what}: not a SPIFFE bundle: ${cause.message}`, cause);
    }
    throw cause;
  }
  if (bundle.isEmpty()) {
    throw refused(
      'empty',
      `${what}: the bundle holds no X.509 or JWT authority; an empty bundle would invalidate every SVID of "${td.name}" (B-2)`,
    );
  }
  bundle.x509Authorities.forEach((cert, i) => {
    const other = foreignTrustDomainOf(cert, td);
    if (other !== undefined) {
      throw refused(
        'other-trust-domain',
        `${what}: X.509 authority #${i} names trust domain "${other}" in its URI SAN: this is not a bundle of ` +
          `"${td.name}", and bundles of different trust domains are never merged (F-8)`,
      );
    }
  });
  if (hop.endpointId?.trustDomain.equals(td)) {
    // A self-serving endpoint is a server of `td`: its SVID chains to `td`'s bundle, so the
    // bundle it serves must vouch for it. Otherwise it serves some other trust domain's bundle.
    try {
      verifyX509Svid(hop.chain, bundle.x509Bundle(), { now: clock.now() });
    } catch (cause) {
      throw refused(
        'other-trust-domain',
        `${what}: the endpoint's own SVID ${hop.endpointId} does not verify against the bundle it serves ` +
          `(${(cause as Error).message}); a self-serving endpoint of "${td.name}" must serve the bundle that ` +
          'vouches for it, so this is not the bundle of that trust domain (F-5, F-8)',
        cause,
      );
    }
  }
  return bundle;
}

/** The trust domain named by a `spiffe://` URI SAN of a CA certificate, when it is not `td`. */
function foreignTrustDomainOf(cert: X509Certificate, td: TrustDomain): string | undefined {
  let uris: readonly string[];
  try {
    uris = x509Fields(cert).subjectAltName?.uris ?? [];
  } catch {
    return undefined;
  }
  for (const uri of uris) {
    const m = /^spiffe:\/\/([^/?#]*)/i.exec(uri);
    if (m === null) continue;
    const name = (m[1] as string).toLowerCase();
    if (name !== td.name) return name;
  }
  return undefined;
}

interface HopOptions {
  readonly what: string;
  readonly auth: EndpointAuthentication;
  readonly clock: Clock;
  readonly maxBytes: number;
  readonly signal: AbortSignal;
  readonly timeoutMs: number;
  readonly externalSignal: AbortSignal | undefined;
}

/** One TLS connection, authenticated before a single byte of HTTP is written, and one GET. */
async function fetchHop(url: URL, o: HopOptions): Promise<Hop> {
  const at = `${o.what} ${url}`;
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === '' ? 443 : Number(url.port);
  const aborted = (): FederationError =>
    o.externalSignal?.aborted
      ? new FederationError('ERR_FEDERATION_ENDPOINT_UNREACHABLE', 'timeout', `${at}: the fetch was cancelled`)
      : new FederationError(
          'ERR_FEDERATION_ENDPOINT_UNREACHABLE',
          'timeout',
          `${at}: no complete answer within ${o.timeoutMs} ms`,
        );
  if (o.signal.aborted) throw aborted();

  const web = o.auth.profile === 'https_web';
  const extraRoots = o.auth.profile === 'https_web' ? (o.auth.extraRootCertificates ?? []) : [];
  const socket = tls.connect({
    host,
    port,
    ...(isIP(host) === 0 ? { servername: host } : {}),
    ALPNProtocols: ['http/1.1'],
    minVersion: 'TLSv1.2',
    // https_web: OpenSSL and Node's RFC 6125 host check decide. https_spiffe: our own SPIFFE
    // check below decides (the SVID verifies against the endpoint's trust domain, not a web PKI).
    rejectUnauthorized: web,
    ...(web && extraRoots.length > 0 ? { ca: [...tls.rootCertificates, ...extraRoots] } : {}),
  });
  const onAbort = () => socket.destroy();
  o.signal.addEventListener('abort', onAbort, { once: true });
  try {
    await new Promise<void>((resolve, reject) => {
      const fail = (err: Error) => {
        socket.off('secureConnect', ok);
        reject(err);
      };
      const ok = () => {
        socket.off('error', fail);
        socket.off('close', closed);
        resolve();
      };
      const closed = () => fail(new Error('connection closed during the TLS handshake'));
      socket.once('secureConnect', ok);
      socket.once('error', fail);
      socket.once('close', closed);
    }).catch((err: unknown) => {
      if (o.signal.aborted) throw aborted();
      throw connectFailure(at, err as NodeJS.ErrnoException, web);
    });

    let chain: X509Certificate[] = [];
    let endpointId: SpiffeId | undefined;
    if (o.auth.profile === 'https_spiffe') {
      chain = presentedChain(socket);
      endpointId = authenticateSpiffe(at, chain, o.auth, o.clock);
    }

    return await new Promise<Hop>((resolve, reject) => {
      const req = http.request({
        createConnection: () => socket,
        method: 'GET',
        path: `${url.pathname}${url.search}`,
        headers: {
          host: url.host,
          accept: 'application/json',
          'user-agent': 'steeple-federation',
          connection: 'close',
        },
      });
      const failed = (err: Error) => reject(o.signal.aborted ? aborted() : connectFailure(at, err, web));
      req.once('error', failed);
      req.once('response', (res) => {
        const status = res.statusCode ?? 0;
        const location = res.headers.location;
        const base = { status, chain, ...(endpointId === undefined ? {} : { endpointId }) };
        if (status !== 200) {
          res.resume();
          resolve({ ...base, ...(location === undefined ? {} : { location }) });
          return;
        }
        const declared = Number(res.headers['content-length']);
        if (Number.isFinite(declared) && declared > o.maxBytes) {
          req.destroy();
          reject(
            invalidResponse(
              'oversized',
              `${at}: the bundle is ${declared} bytes, more than the ${o.maxBytes} accepted`,
            ),
          );
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > o.maxBytes) {
            req.destroy();
            reject(invalidResponse('oversized', `${at}: the bundle exceeds the ${o.maxBytes} bytes accepted`));
            return;
          }
          chunks.push(chunk);
        });
        res.once('end', () => resolve({ ...base, body: Buffer.concat(chunks, size) }));
        res.once('error', failed);
        res.once('aborted', () => failed(new Error('the response was cut short')));
      });
      req.end();
    });
  } finally {
    o.signal.removeEventListener('abort', onAbort);
    socket.destroy();
  }
}

/** The chain as presented (leaf first), without a self-issued anchor: that comes from our bundle. */
function presentedChain(socket: tls.TLSSocket): X509Certificate[] {
  const chain: X509Certificate[] = [];
  let cur: tls.DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  const seen = new Set<string>();
  while (cur?.raw && cur.raw.length > 0 && chain.length < MAX_PRESENTED_CHAIN) {
    if (seen.has(cur.fingerprint256)) break;
    seen.add(cur.fingerprint256);
    const selfIssued = cur.issuerCertificate === cur || cur.issuerCertificate?.fingerprint256 === cur.fingerprint256;
    if (selfIssued && chain.length > 0) break;
    chain.push(new X509Certificate(cur.raw));
    cur = cur.issuerCertificate;
  }
  return chain;
}

function authenticateSpiffe(
  at: string,
  chain: readonly X509Certificate[],
  auth: Extract<EndpointAuthentication, { profile: 'https_spiffe' }>,
  clock: Clock,
): SpiffeId {
  const bundle = auth.endpointBundle as X509Bundle;
  let id: SpiffeId;
  try {
    id = verifyX509Svid(chain, bundle, { now: clock.now() }).id;
  } catch (cause) {
    throw new FederationError(
      'ERR_FEDERATION_ENDPOINT_UNTRUSTED',
      'endpoint-svid-invalid',
      `${at}: the server certificate is not a valid X.509-SVID of trust domain ` +
        `"${auth.endpointSpiffeId.trustDomain.name}": ${(cause as Error).message} (F-5)`,
      { cause },
    );
  }
  if (!id.equals(auth.endpointSpiffeId)) {
    throw new FederationError(
      'ERR_FEDERATION_ENDPOINT_UNTRUSTED',
      'wrong-endpoint-id',
      `${at}: the endpoint presented the SVID of ${id}, not the configured endpoint SPIFFE ID ${auth.endpointSpiffeId} (F-5)`,
    );
  }
  return id;
}

/** Web PKI verification failures reported by OpenSSL or Node's host name check. */
const WEBPKI_ERROR = /CERT|UNABLE_TO_GET_ISSUER|UNABLE_TO_VERIFY|SELF_SIGNED|ALTNAME|HOSTNAME/;

function connectFailure(at: string, err: NodeJS.ErrnoException, web: boolean): FederationError {
  const code = err.code ?? '';
  if (web && WEBPKI_ERROR.test(code)) {
    return new FederationError(
      'ERR_FEDERATION_ENDPOINT_UNTRUSTED',
      'webpki-untrusted',
      `${at}: the server certificate failed Web PKI validation (${code}: ${err.message}) (F-4)`,
      { cause: err },
    );
  }
  const reason: FederationFailureReason = /^ERR_SSL/.test(code) ? 'tls-handshake-failed' : 'connection-failed';
  return new FederationError(
    'ERR_FEDERATION_ENDPOINT_UNREACHABLE',
    reason,
    `${at}: ${reason === 'tls-handshake-failed' ? 'TLS handshake failed' : 'cannot connect'} (${code || 'error'}: ${err.message})`,
    { cause: err },
  );
}
