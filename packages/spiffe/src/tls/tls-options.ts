import { constants, randomBytes, type X509Certificate } from 'node:crypto';
import type { Http2SecureServer } from 'node:http2';
import type { Server as HttpsServer } from 'node:https';
import tls from 'node:tls';
import type { X509BundleSetSource } from '../bundle/source.js';
import type { X509Bundle } from '../bundle/x509-bundle.js';
import { type Clock, systemClock } from '../clock.js';
import { SpiffeError, X509SvidError } from '../errors.js';
import type { SpiffeId } from '../spiffeid/spiffe-id.js';
import type { X509Svid, X509SvidSource } from '../svid/x509-svid.js';
import { verifyX509Svid } from '../svid/x509-svid-verify.js';
import type { Authorizer } from './authorizer.js';
import { peerChainFromDetailed, peerIdOnSocket, setPeerId } from './peer-id.js';

/** What both sides of an mTLS connection need. */
export interface MtlsConfig {
  /** Our own X.509-SVID, or a source (such as a Workload API X509Source) that rotates it. */
  svid: X509Svid | X509SvidSource;
  /** Trust bundles per trust domain; the peer's own trust domain picks the bundle. */
  bundles: X509BundleSetSource;
  /** Who may talk to us, decided on the peer's verified SPIFFE ID. */
  authorize: Authorizer;
  /** Verification time; defaults to the system clock. */
  clock?: Clock;
  /** Called when a peer is refused (for logs and audit); the connection is already closing. */
  onReject?: (error: SpiffeError, peer: { address?: string; port?: number }) => void;
  /** Minimum TLS version; default TLSv1.2. */
  minVersion?: tls.SecureVersion;
  /**
   * Server side: let clients resume a TLS session (session tickets, TLS 1.3 and 1.2), which
   * skips the certificate exchange and the public-key operations of a full handshake.
   * Default false. A resumed connection is accepted only for a client certificate this
   * server verified in a full handshake, still valid now and under the same bundles, and
   * the authorizer decides it again; anything else is refused. The ticket keys are
   * replaced when the SVID or a bundle changes (so clients fall back to a full handshake
   * against the new material) and every {@link TICKET_KEY_LIFETIME_MS}.
   */
  sessionResumption?: boolean;
}

/** How long one set of session-ticket keys encrypts tickets before it is replaced (1 h). */
export const TICKET_KEY_LIFETIME_MS = 3_600_000;

/** Options for `tls.createServer`, `https.createServer` and `http2.createSecureServer`. */
export type MtlsServerOptions = tls.TlsOptions & { readonly [kMtls]: MtlsState };
/** Options for `tls.connect`, `https.request` and `http2.connect`. */
export type MtlsClientOptions = tls.ConnectionOptions & { readonly [kMtls]: MtlsState };

const kMtls: unique symbol = Symbol('steeple.mtls');
const kServed: unique symbol = Symbol('steeple.mtls.served');

interface Material {
  svid: X509Svid;
  bundles: readonly X509Bundle[];
  context: tls.SecureContext;
  key: string;
  cert: string;
  ca: string[];
}

/**
 * Holds the current TLS material and rebuilds it only when the SVID or a bundle object
 * changes; the check per handshake is a few identity comparisons.
 */
export class MtlsState {
  #material: Material | undefined;
  // Client side: checkServerIdentity cannot reach the socket, so verified leaves are
  // remembered here and getPeerId finds them through the socket's connect options.
  readonly #verifiedLeaves = new Map<string, SpiffeId>();
  readonly clock: Clock;
  /** Server side with {@link MtlsConfig.sessionResumption}. */
  readonly resumption: boolean;
  /** Names this server's sessions (OpenSSL resumes only a session with the same context). */
  readonly sessionIdContext = randomBytes(16).toString('hex');
  constructor(
    readonly config: MtlsConfig,
    readonly isServer: boolean,
  ) {
    this.clock = config.clock ?? systemClock;
    this.resumption = isServer && config.sessionResumption === true;
  }

  current(): Material {
    const svid = this.config.svid.getX509Svid();
    const bundles = this.config.bundles.getX509Bundles();
    const m = this.#material;
    if (m && m.svid === svid && sameBundles(m.bundles, bundles)) return m;
    const key = svid.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const cert = svid.certificates.map((c) => c.toString()).join('');
    const ca = bundles.flatMap((b) => b.authorities.map((a) => a.toString()));
    const context = tls.createSecureContext({
      key,
      cert,
      ca: ca.length > 0 ? ca : undefined,
      minVersion: this.config.minVersion ?? 'TLSv1.2',
      // Without sessionResumption nothing resumes: a resumed session skips the certificate
      // exchange, and so the SPIFFE check, unless the server checks resumed sessions (it
      // does when resumption is on, see verifyServerSideSocket). (With SSL_OP_NO_TICKET a
      // TLS 1.3 server still sends stateful tickets; Node keeps no store to resume them from.)
      secureOptions: this.resumption ? 0 : constants.SSL_OP_NO_TICKET,
      // The same session ID context as the server's own (OpenSSL refuses to resume a
      // session verified with a client certificate without one, and a context switched to
      // through SNI would otherwise clear it).
      sessionIdContext: this.isServer ? this.sessionIdContext : undefined,
    });
    this.#material = { svid, bundles: [...bundles], context, key, cert, ca };
    return this.#material;
  }

  rememberVerified(fingerprint256: string, id: SpiffeId): void {
    if (this.#verifiedLeaves.size >= 1024) {
      const oldest = this.#verifiedLeaves.keys().next().value;
      if (oldest !== undefined) this.#verifiedLeaves.delete(oldest);
    }
    this.#verifiedLeaves.set(fingerprint256, id);
  }

  verifiedLeaf(fingerprint256: string): SpiffeId | undefined {
    return this.#verifiedLeaves.get(fingerprint256);
  }

  /** Verifies a peer chain with SPIFFE rules and authorizes it; returns the ID or the error. */
  check(chain: X509Certificate[]): SpiffeId | SpiffeError {
    if (chain.length === 0) return new X509SvidError('ERR_X509SVID_UNTRUSTED', 'peer presented no certificate');
    try {
      const now = this.clock.now();
      const { id, verifiedChain } = verifyX509Svid(chain, this.config.bundles, { now });
      this.#rememberChain(chain[0] as X509Certificate, id, verifiedChain);
      const denied = this.config.authorize(id, verifiedChain);
      return denied ?? id;
    } catch (err) {
      if (err instanceof SpiffeError) return err;
      throw err;
    }
  }

  // Server side: the same peers come back on every connection, and Node's detailed peer
  // certificate (needed for the intermediates) costs ~4× the leaf alone. A leaf whose chain
  // verified against the very same bundle objects stays verified until the first certificate
  // of that chain expires; TLS itself proves possession of the key on every handshake.
  readonly #verifiedChains = new Map<
    string,
    { id: SpiffeId; chain: X509Certificate[]; bundles: readonly X509Bundle[]; validUntil: number }
  >();

  #rememberChain(leaf: X509Certificate, id: SpiffeId, verifiedChain: X509Certificate[]): void {
    if (this.#verifiedChains.size >= 4096) {
      const oldest = this.#verifiedChains.keys().next().value;
      if (oldest !== undefined) this.#verifiedChains.delete(oldest);
    }
    const validUntil = Math.min(...verifiedChain.map((c) => Date.parse(c.validTo)));
    const bundles = this.config.bundles.getX509Bundles();
    this.#verifiedChains.set(leaf.fingerprint256, { id, chain: verifiedChain, bundles, validUntil });
  }

  /** A still-valid earlier verification of this leaf against the current bundles, authorized now. */
  checkKnownLeaf(fingerprint256: string): SpiffeId | SpiffeError | undefined {
    const hit = this.#verifiedChains.get(fingerprint256);
    if (!hit) return undefined;
    const now = this.clock.now().getTime();
    if (now >= hit.validUntil || !sameBundles(hit.bundles, this.config.bundles.getX509Bundles())) {
      this.#verifiedChains.delete(fingerprint256);
      return undefined;
    }
    return this.config.authorize(hit.id, hit.chain) ?? hit.id;
  }
}

function sameBundles(a: readonly X509Bundle[], b: readonly X509Bundle[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function verifyServerSideSocket(state: MtlsState, socket: tls.TLSSocket): boolean {
  const leaf = socket.getPeerCertificate(false);
  const known = leaf && 'fingerprint256' in leaf ? state.checkKnownLeaf(leaf.fingerprint256) : undefined;
  let result: SpiffeError | SpiffeId;
  if (known !== undefined) {
    result = known;
  } else if (socket.isSessionReused()) {
    // A resumed session carries the client's leaf but not its chain, and OpenSSL checked
    // nothing this time: only a leaf verified here in a full handshake (under the bundles
    // in force now, and not expired since) may come back this way. Ticket keys change
    // with the bundles, so this is rare: the client's next connection does a full handshake.
    result = new X509SvidError(
      'ERR_X509SVID_UNTRUSTED',
      'resumed TLS session for a client certificate not verified under the current trust bundles, or expired',
    );
  } else {
    const peer = socket.getPeerCertificate(true);
    result = state.check(peer && 'raw' in peer ? peerChainFromDetailed(peer) : []);
  }
  if (result instanceof SpiffeError) {
    state.config.onReject?.(result, { address: socket.remoteAddress, port: socket.remotePort });
    socket.destroy();
    return false;
  }
  setPeerId(socket, result);
  return true;
}

/**
 * TLS options for a server that requires a client X.509-SVID. The handshake fails for a
 * peer without a certificate or whose chain reaches none of our trust anchors; then the
 * SPIFFE check (the anchor must belong to the peer ID's own trust domain, leaf rules)
 * and the authorizer run before the application sees the connection. No hostname checks.
 *
 * Pass the options to the server constructor, then hand the server to
 * {@link serveMtls}, which makes the checks run for every connection and applies a new
 * SVID or bundle to new connections without a restart:
 *
 * @example
 * const opts = mtlsServerOptions({ svid: source, bundles: source, authorize: authorizeId(clientId) });
 * const server = serveMtls(https.createServer(opts, (req, res) => res.end(`hi ${getPeerId(req.socket)}`)), opts);
 */
export function mtlsServerOptions(config: MtlsConfig): MtlsServerOptions {
  const state = new MtlsState(config, true);
  const first = state.current();
  const options = {
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: config.minVersion ?? 'TLSv1.2',
    // Tickets stay off until serveMtls (which checks resumed sessions) takes the server.
    secureOptions: constants.SSL_OP_NO_TICKET,
    sessionIdContext: state.sessionIdContext,
    get key() {
      return state.current().key;
    },
    get cert() {
      return state.current().cert;
    },
    get ca() {
      const ca = state.current().ca;
      return ca.length > 0 ? ca : undefined;
    },
    // Clients that send SNI get the current material even on a server not passed to serveMtls;
    // `this` is the server-side TLSSocket here, so the SPIFFE check is attached to it as well.
    SNICallback(this: tls.TLSSocket, _servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) {
      const server = (this as unknown as { server?: { [kServed]?: boolean } }).server;
      if (this && typeof this.prependOnceListener === 'function' && !server?.[kServed]) {
        this.prependOnceListener('secure', () => verifyServerSideSocket(state, this));
      }
      try {
        cb(null, state.current().context);
      } catch (err) {
        cb(err as Error);
      }
    },
    [kMtls]: state,
  };
  void first;
  return options as MtlsServerOptions;
}

type AnyTlsServer = tls.Server | HttpsServer | Http2SecureServer;

/**
 * Makes a server built from {@link mtlsServerOptions} run the SPIFFE check and the
 * authorizer on every connection (with or without SNI), and switch to a new SVID or
 * bundle for new connections as soon as the sources change. Open connections stay up.
 * Returns the server.
 */
export function serveMtls<S extends AnyTlsServer>(server: S, options: MtlsServerOptions): S {
  const state = options[kMtls];
  if (!state?.isServer) throw new TypeError('serveMtls needs the options returned by mtlsServerOptions');
  const s = server as unknown as tls.Server & { [kServed]?: boolean };
  s[kServed] = true;
  // With resumption, the server's own context issues tickets (OpenSSL takes that setting,
  // and the ticket keys, from the context a connection starts with, not from one chosen
  // through SNI): the same options, tickets on.
  const served: MtlsServerOptions = state.resumption
    ? Object.assign(Object.create(options) as MtlsServerOptions, { secureOptions: 0 })
    : options;
  let applied = state.current();
  let ticketKeysSince = state.clock.now().getTime();
  if (state.resumption) {
    s.setSecureContext(served);
    s.setTicketKeys(randomBytes(48));
  }
  s.prependListener('connection', () => {
    const now = state.current();
    const changed = now !== applied;
    if (changed) {
      applied = now;
      s.setSecureContext(served);
    }
    // New ticket keys with new material (tickets issued under the old bundles no longer
    // decrypt: those clients do a full handshake; the new context alone would bring new
    // keys too, this does not rely on it) and once an hour (forward secrecy: a ticket key
    // only ever protects an hour's sessions).
    if (!state.resumption) return;
    const at = state.clock.now().getTime();
    if (changed || at - ticketKeysSince >= TICKET_KEY_LIFETIME_MS) {
      ticketKeysSince = at;
      s.setTicketKeys(randomBytes(48));
    }
  });
  // The check must run before ANY 'secureConnection' listener (the application's, or
  // the http/https/http2 machinery) sees the socket, and a refused socket must not be
  // announced at all: so the server's own emit is wrapped, for this instance only.
  const emit = s.emit;
  s.emit = function emitAfterSpiffeCheck(this: tls.Server, event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'secureConnection') {
      const socket = args[0] as tls.TLSSocket;
      if (peerIdOnSocket(socket) === undefined && !verifyServerSideSocket(state, socket)) return false;
    }
    return Reflect.apply(emit, this, [event, ...args]) as boolean;
  } as typeof s.emit;
  return server;
}

/**
 * TLS options for a client that presents our X.509-SVID and accepts the server only
 * if its X.509-SVID verifies against the bundle of its own trust domain and the
 * authorizer allows its ID. No hostname checks: the SPIFFE ID is the identity.
 * Each connection picks up the current SVID and bundles.
 *
 * @example
 * const res = await new Promise((ok, fail) =>
 *   https.get(url, mtlsClientOptions({ svid, bundles, authorize: authorizeId(serverId) }), ok).on('error', fail));
 */
export function mtlsClientOptions(config: MtlsConfig): MtlsClientOptions {
  const state = new MtlsState(config, false);
  state.current();
  const options = {
    rejectUnauthorized: true,
    minVersion: config.minVersion ?? 'TLSv1.2',
    get secureContext() {
      return state.current().context;
    },
    checkServerIdentity(_host: string, cert: tls.PeerCertificate): Error | undefined {
      const result = state.check(peerChainFromDetailed(cert));
      if (result instanceof SpiffeError) {
        config.onReject?.(result, {});
        return result;
      }
      state.rememberVerified(cert.fingerprint256, result);
      return undefined;
    },
    [kMtls]: state,
  };
  return options as MtlsClientOptions;
}

/**
 * The SPIFFE ID of the peer of a TLS socket that was verified by this SDK's mTLS
 * options (server or client side), or undefined when it was not verified that way.
 *
 * @example
 * https.createServer(opts, (req, res) => res.end(`hello ${getPeerId(req.socket as TLSSocket)}`));
 */
export function getPeerId(socket: tls.TLSSocket): SpiffeId | undefined {
  const marked = peerIdOnSocket(socket);
  if (marked) return marked;
  if (!socket.authorized || socket.destroyed) return undefined;
  // Client side: Node keeps the (spread) connect options on the socket under an internal
  // symbol; our state comes along with them.
  const state = connectOptionsOf(socket)?.[kMtls];
  if (!state || state.isServer) return undefined;
  const id = state.verifiedLeaf(socket.getPeerCertificate().fingerprint256);
  if (id) setPeerId(socket, id);
  return id;
}

let connectOptionsSymbol: symbol | undefined;
function connectOptionsOf(socket: tls.TLSSocket): { [kMtls]?: MtlsState } | undefined {
  if (!connectOptionsSymbol) {
    connectOptionsSymbol = Object.getOwnPropertySymbols(socket).find((sym) => sym.description === 'connect-options');
    if (!connectOptionsSymbol) return undefined;
  }
  return (socket as unknown as Record<symbol, { [kMtls]?: MtlsState } | undefined>)[connectOptionsSymbol];
}

/** The state behind a set of options (used by the undici and https agent helpers). */
export function mtlsStateOf(options: MtlsClientOptions | MtlsServerOptions): MtlsState {
  return options[kMtls];
}
