/**
 * SPIFFE-aware HTTPS and HTTP/2 servers in a few lines, for services that want mTLS and
 * authorization policies without a sidecar proxy. The certificate follows the source
 * (a Workload API X509Source rotates it without a restart), callers are verified and
 * authorized by SPIFFE ID during the TLS handshake, and an optional policy (the Steeple
 * proxy's AuthorizationPolicy format) is evaluated for every request before any request
 * listener sees it.
 * @module
 */
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import type { X509BundleSetSource } from '../bundle/source.js';
import type { Clock } from '../clock.js';
import type { Decision, RequestAttributes } from '../policy/attributes.js';
import { PolicyEvaluator } from '../policy/policy-evaluator.js';
import type { PolicyFileInput } from '../policy/policy-schema.js';
import { normalizeRequestTarget } from '../policy/request-path.js';
import type { SpiffeId } from '../spiffeid/spiffe-id.js';
import type { X509SvidSource } from '../svid/x509-svid.js';
import { type Authorizer, authorizeMemberOf } from '../tls/authorizer.js';
import { getPeerId, type MtlsConfig, mtlsServerOptions, serveMtls } from '../tls/tls-options.js';

/** Options shared by {@link createSpiffeHttpsServer} and {@link createSpiffeHttp2SecureServer}. */
export interface SpiffeServerOptions {
  /**
   * Our X.509-SVID and the trust bundles, usually an `X509Source` from the Workload API.
   * New connections use the current SVID and bundles, so rotation needs no restart.
   */
  readonly source: X509SvidSource & X509BundleSetSource;
  /**
   * Who may connect at all, decided on the caller's verified SPIFFE ID during the TLS
   * handshake; a refused caller never reaches HTTP. Default: any member of our own trust
   * domain (the trust domain of the source's SVID at start).
   */
  readonly authorize?: Authorizer;
  /**
   * Authorization policies evaluated for every request (the Steeple proxy's policy
   * format, see docs/proxy.md): an evaluator, a policy document as a plain object
   * (validated now; a broken one throws `PolicyError`), or a function returning the
   * evaluator in force (to swap policies at run time). Denied requests get a 403.
   * Default: no per-request policy.
   */
  readonly policy?: PolicyEvaluator | PolicyFileInput | (() => PolicyEvaluator);
  /** The listener name policies see (their `listeners` field selects by it); default `"default"`. */
  readonly listener?: string;
  /** Called with every policy decision (allowed, denied, audit and dry-run marks), for logs and metrics. */
  readonly onDecision?: (decision: Decision, request: RequestAttributes) => void;
  /** Called when a caller is refused during the handshake (untrusted chain, authorizer said no). */
  readonly onReject?: MtlsConfig['onReject'];
  /** Verification time; default the system clock. */
  readonly clock?: Clock;
  /** Minimum TLS version; default TLSv1.2. */
  readonly minVersion?: tls.SecureVersion;
  /** Let callers resume TLS sessions; default false (see `MtlsConfig.sessionResumption`). */
  readonly sessionResumption?: boolean;
}

/** Non-TLS options of the HTTPS server (timeouts, header limits, …). */
export type SpiffeHttpsServerOptions = SpiffeServerOptions & {
  readonly serverOptions?: Omit<http.ServerOptions, 'IncomingMessage' | 'ServerResponse'>;
};

/** Non-TLS options of the HTTP/2 server (settings, `allowHTTP1`, …). */
export type SpiffeHttp2ServerOptions = SpiffeServerOptions & {
  readonly serverOptions?: Omit<http2.SecureServerOptions, keyof tls.TlsOptions | 'Http1IncomingMessage'> & {
    readonly allowHTTP1?: boolean;
  };
};

/**
 * The verified SPIFFE ID of the caller of a request (HTTP/1.1 or HTTP/2, request object
 * or HTTP/2 stream) served by {@link createSpiffeHttpsServer} or
 * {@link createSpiffeHttp2SecureServer} (or any server set up with `serveMtls`).
 * @example
 * const server = createSpiffeHttpsServer({ source }, (req, res) => res.end(`hello ${getRequestPeerId(req)}`));
 */
export function getRequestPeerId(
  request: http.IncomingMessage | http2.Http2ServerRequest | http2.ServerHttp2Stream,
): SpiffeId | undefined {
  const socket = socketOf(request);
  return socket === undefined ? undefined : getPeerId(socket);
}

/**
 * An `https.Server` that requires callers to present an X.509-SVID, allows those the
 * authorizer accepts, and answers 403 to requests the policy denies. Call `listen()` as usual.
 *
 * @example
 * const source = await X509Source.create();
 * const server = createSpiffeHttpsServer(
 *   { source, authorize: authorizeMemberOf('example.org'), policy: { policies: [...] } },
 *   (req, res) => res.end(`hello ${getRequestPeerId(req)}\n`),
 * );
 * server.listen(8443);
 */
export function createSpiffeHttpsServer(
  options: SpiffeHttpsServerOptions,
  handler?: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): https.Server {
  const tlsOptions = mtlsServerOptions(mtlsConfigOf(options));
  const server = serveMtls(https.createServer({ ...options.serverOptions, ...tlsOptions }), tlsOptions);
  const guard = requestGuard(options);
  if (guard !== undefined) guardHttp1Events(server, guard, () => false);
  if (handler !== undefined) server.on('request', handler);
  return server;
}

/**
 * An `http2.Http2SecureServer` with the same checks as {@link createSpiffeHttpsServer}.
 * The policy runs for every stream, before `'stream'` and `'request'` listeners
 * (and, with `serverOptions.allowHTTP1`, for HTTP/1.1 requests too).
 *
 * @example
 * const server = createSpiffeHttp2SecureServer({ source, policy }, (req, res) => res.end('ok'));
 */
export function createSpiffeHttp2SecureServer(
  options: SpiffeHttp2ServerOptions,
  handler?: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
): http2.Http2SecureServer {
  const tlsOptions = mtlsServerOptions(mtlsConfigOf(options));
  const server = serveMtls(http2.createSecureServer({ ...options.serverOptions, ...tlsOptions }), tlsOptions);
  const guard = requestGuard(options);
  if (guard !== undefined) {
    const emit = server.emit;
    server.emit = function emitAfterPolicy(this: http2.Http2SecureServer, event: string | symbol, ...args: unknown[]) {
      if (event === 'stream' && !guardStream(guard, args[0] as http2.ServerHttp2Stream, args[1] as Headers))
        return false;
      return Reflect.apply(emit, this, [event, ...args]) as boolean;
    } as typeof server.emit;
    // HTTP/2 requests were checked as streams; only HTTP/1.1 fallbacks are left to check.
    guardHttp1Events(server, guard, (req) => req instanceof http2.Http2ServerRequest);
  }
  if (handler !== undefined) server.on('request', handler);
  return server;
}

type Headers = http2.IncomingHttpHeaders;

function mtlsConfigOf(options: SpiffeServerOptions): MtlsConfig {
  const { source } = options;
  return {
    svid: source,
    bundles: source,
    authorize: options.authorize ?? authorizeMemberOf(source.getX509Svid().id.trustDomain),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(options.onReject === undefined ? {} : { onReject: options.onReject }),
    ...(options.minVersion === undefined ? {} : { minVersion: options.minVersion }),
    ...(options.sessionResumption === undefined ? {} : { sessionResumption: options.sessionResumption }),
  };
}

/** Evaluates one request; undefined when the server has no policy. */
type Guard = (request: Omit<RequestAttributes, 'kind' | 'listener' | 'principal'>, socket: tls.TLSSocket) => Decision;

function requestGuard(options: SpiffeServerOptions): Guard | undefined {
  const { policy, onDecision } = options;
  if (policy === undefined) return undefined;
  const current: () => PolicyEvaluator =
    policy instanceof PolicyEvaluator
      ? () => policy
      : typeof policy === 'function'
        ? policy
        : (
            (evaluator) => () =>
              evaluator
          )(PolicyEvaluator.fromObject(policy));
  const listener = options.listener ?? 'default';
  return (request, socket) => {
    const attributes: RequestAttributes = {
      kind: 'http',
      listener,
      principal: getPeerId(socket)?.toString(),
      sni: typeof socket.servername === 'string' ? socket.servername : undefined,
      ...request,
    };
    const decision = current().evaluate(attributes);
    onDecision?.(decision, attributes);
    return decision;
  };
}

const denialBody = (decision: Decision) => `RBAC: access denied: ${decision.reason}\n`;

function addresses(socket: tls.TLSSocket) {
  return {
    sourceIp: socket.remoteAddress ?? '',
    destinationIp: socket.localAddress ?? '',
    destinationPort: socket.localPort ?? 0,
  };
}

function headerReader(headers: http.IncomingHttpHeaders): (name: string) => string | undefined {
  return (name) => {
    const value = headers[name];
    return value === undefined ? undefined : Array.isArray(value) ? value.join(',') : String(value);
  };
}

/** Checks a stream before any listener sees it; answers it and returns false when refused. */
function guardStream(guard: Guard, stream: http2.ServerHttp2Stream, headers: Headers): boolean {
  const socket = stream.session?.socket as tls.TLSSocket | undefined;
  if (socket === undefined) return false;
  const method = String(headers[':method'] ?? '');
  const normalized = normalizeRequestTarget(String(headers[':path'] ?? ''));
  const refuse = (status: number, body: string) => {
    stream.on('error', () => {});
    if (stream.destroyed || stream.closed) return false;
    stream.respond({ ':status': status, 'content-type': 'text/plain; charset=utf-8' });
    stream.end(body);
    return false;
  };
  if (normalized === undefined || method === 'CONNECT') return refuse(400, 'bad request: invalid :path or CONNECT\n');
  const decision = guard(
    {
      ...addresses(socket),
      method,
      path: normalized.path,
      host: String(headers[':authority'] ?? headers.host ?? ''),
      header: headerReader(headers),
    },
    socket,
  );
  if (!decision.allowed) return refuse(403, denialBody(decision));
  headers[':path'] = normalized.target; // the application serves the path the policy saw
  return true;
}

/**
 * Runs the policy before `request`, `checkContinue`, `checkExpectation`, `upgrade` and
 * `connect` listeners of an HTTP/1.1 server (all the ways a request reaches a listener).
 */
function guardHttp1Events(
  server: https.Server | http2.Http2SecureServer,
  guard: Guard,
  skip: (req: unknown) => boolean,
): void {
  const emit = server.emit;
  const check = (req: http.IncomingMessage): { decision?: Decision; target?: string } => {
    const normalized = req.method === 'CONNECT' ? undefined : normalizeRequestTarget(req.url ?? '');
    if (normalized === undefined) return {};
    const socket = req.socket as tls.TLSSocket;
    const decision = guard(
      {
        ...addresses(socket),
        method: req.method ?? '',
        path: normalized.path,
        host: req.headers.host ?? normalized.authority ?? '',
        header: headerReader(req.headers),
      },
      socket,
    );
    return { decision, target: normalized.target };
  };
  server.emit = function emitAfterPolicy(this: typeof server, event: string | symbol, ...args: unknown[]): boolean {
    const req = args[0] as http.IncomingMessage;
    if (
      (event === 'request' || event === 'checkContinue' || event === 'checkExpectation') &&
      !skip(req) &&
      req instanceof http.IncomingMessage
    ) {
      const res = args[1] as http.ServerResponse;
      const { decision, target } = check(req);
      if (decision === undefined || !decision.allowed) {
        const body = decision === undefined ? 'bad request: invalid request target\n' : denialBody(decision);
        res.writeHead(decision === undefined ? 400 : 403, {
          'content-type': 'text/plain; charset=utf-8',
          'content-length': Buffer.byteLength(body),
        });
        res.end(body);
        return true;
      }
      req.url = target as string;
    } else if ((event === 'upgrade' || event === 'connect') && req instanceof http.IncomingMessage) {
      const socket = args[1] as Duplex;
      const { decision, target } = check(req);
      if (decision === undefined || !decision.allowed) {
        const status = decision === undefined ? '400 Bad Request' : '403 Forbidden';
        const body = decision === undefined ? 'bad request: invalid request target\n' : denialBody(decision);
        socket.on('error', () => {});
        socket.end(
          `HTTP/1.1 ${status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
        );
        return true;
      }
      req.url = target as string;
    }
    return Reflect.apply(emit, this, [event, ...args]) as boolean;
  } as typeof server.emit;
}

function socketOf(
  request: http.IncomingMessage | http2.Http2ServerRequest | http2.ServerHttp2Stream,
): tls.TLSSocket | undefined {
  if (request instanceof http2.Http2ServerRequest) return request.stream.session?.socket as tls.TLSSocket | undefined;
  if (request instanceof http.IncomingMessage) return request.socket as tls.TLSSocket;
  return (request as http2.ServerHttp2Stream).session?.socket as tls.TLSSocket | undefined;
}
