/**
 * A fake Agent API server for the agent's tests: a real connect-node gRPC server over
 * HTTP/2 + TLS on loopback, presenting `spiffe://<td>/spire/server` from a test CA,
 * implementing `steeple.agent.v1.AgentApiService` with the same contract as the real server
 * (single-use join tokens, mTLS-authenticated calls, deltas by revision, change
 * notifications, batch signing, JWT minting, bundles), with handles for the test to add and
 * remove entries, stop and restart the listener, and count calls.
 *
 * It is not the server: no datastore, no authorization beyond "entries belong to the
 * agent(s) named in their parent", no audit. The agent must never import server code, so
 * its tests run against this.
 * @module
 */
import { createPublicKey, type KeyObject, X509Certificate } from 'node:crypto';
import http2, { type Http2ServerRequest, type Http2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import {
  Code,
  ConnectError,
  createContextKey,
  createContextValues,
  type HandlerContext,
  type ServiceImpl,
} from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { type Clock, SpiffeBundle, SpiffeError, systemClock, verifyX509Svid } from '@steeple/spiffe';
import { CertificateIssuer } from '@steeple/spiffe/issuance';
import { createTestCa, createTestJwtAuthority, type TestCa, type TestJwtAuthority } from '@steeple/spiffe/testing';
import {
  AgentApiService,
  type AttestAgentRequest,
  type BatchNewX509SvidResponse_ResultSchema,
  ChangeKind,
} from '../../gen/steeple/agent/v1/agent_pb.js';
import { type Entry, EntrySchema } from '../../gen/steeple/types/v1/entry_pb.js';

type Impl = ServiceImpl<typeof AgentApiService>;

const kSession = createContextKey<Http2Session | undefined>(undefined);

/** What a test registers; ids and revisions are assigned. */
export interface FakeEntryInit {
  readonly spiffeId: string;
  /** Default: the first attested agent's ID (`spiffe://<td>/spire/agent/join_token/<token>`). */
  readonly parentId?: string;
  /** `type:value` strings, e.g. `unix:uid:1000`. */
  readonly selectors: readonly string[];
  readonly x509SvidTtl?: number;
  readonly jwtSvidTtl?: number;
  readonly dnsNames?: readonly string[];
  readonly federatesWith?: readonly string[];
  readonly hint?: string;
}

export interface FakeAgentApiOptions {
  readonly trustDomain?: string;
  /** Join tokens the fake accepts, once each. */
  readonly joinTokens?: readonly string[];
  /** Lifetime of agent SVIDs, seconds; default 3600. */
  readonly agentSvidTtl?: number;
  /** Default lifetime of workload X.509-SVIDs, seconds; default 3600. */
  readonly x509SvidTtl?: number;
  /** Validity times of the SVIDs signed (the TLS certificates always use the system clock). */
  readonly clock?: Clock;
  /** Port to listen on; default a free one. */
  readonly port?: number;
}

export interface FakeAgentApi {
  readonly trustDomain: string;
  readonly port: number;
  readonly ca: TestCa;
  readonly jwt: TestJwtAuthority;
  /** The CA root as PEM, for the agent's trust_bundle_path. */
  readonly bundlePem: string;
  /** Calls per method name, e.g. `calls.get('AttestAgent')`. */
  readonly calls: Map<string, number>;
  /** X.509-SVIDs signed for workloads, in total. */
  readonly signed: () => number;
  addEntry(init: FakeEntryInit): string;
  removeEntry(id: string): void;
  /** Adds or replaces a federated bundle (and tells watchers). */
  setFederatedBundle(bundle: SpiffeBundle): void;
  /** Adds a join token. */
  addJoinToken(token: string): void;
  /** Stops listening and drops every connection (the agent sees the server as down). */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
  close(): Promise<void>;
}

function parseSelector(s: string): { type: string; value: string } {
  const i = s.indexOf(':');
  return { type: s.slice(0, i), value: s.slice(i + 1) };
}

/** The SubjectPublicKeyInfo of a DER PKCS#10 request (the fake does not check the signature). */
function csrPublicKey(csr: Uint8Array): KeyObject {
  // CertificationRequest ::= SEQ { info SEQ { version, subject, spki, attrs }, alg, sig }
  const der = Buffer.from(csr);
  const read = (at: number): { start: number; end: number; next: number } => {
    let len = der[at + 1] as number;
    let start = at + 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + (der[start + i] as number);
      start += n;
    }
    return { start, end: start + len, next: start + len };
  };
  const outer = read(0);
  const info = read(outer.start);
  const version = read(info.start);
  const subject = read(version.next);
  const spki = read(subject.next);
  return createPublicKey({ key: der.subarray(subject.next, spki.end), format: 'der', type: 'spki' });
}

/** Starts the fake on 127.0.0.1. */
export async function startFakeAgentApi(options: FakeAgentApiOptions = {}): Promise<FakeAgentApi> {
  const trustDomain = options.trustDomain ?? 'example.org';
  const clock = options.clock ?? systemClock;
  const ca = createTestCa({ trustDomain, ttlSeconds: 30 * 24 * 3600 });
  const jwt = createTestJwtAuthority({ trustDomain, clock });
  const issuer = new CertificateIssuer(ca.certificate, ca.privateKey);
  const serverSvid = ca.issueX509Svid(`spiffe://${trustDomain}/spire/server`, { ttlSeconds: 24 * 3600 });
  const ownBundle = () => SpiffeBundle.fromBundles({ x509: ca.x509Bundle(), jwt: jwt.jwtBundle(), sequenceNumber: 1 });
  const tokens = new Set(options.joinTokens ?? []);
  const calls = new Map<string, number>();
  const count = (name: string) => calls.set(name, (calls.get(name) ?? 0) + 1);
  let signedCount = 0;

  // Entries and their change log: revision → ids changed at it.
  let revision = 1;
  let bundlesRevision = 1;
  const entries = new Map<string, Entry>();
  const changes: { revision: number; id: string }[] = [];
  const federated = new Map<string, SpiffeBundle>();
  const agents = new Map<string, string>(); // agent ID → current serial
  let firstAgent: string | undefined;
  const watchers = new Set<(kind: ChangeKind) => void>();
  let nextId = 1;

  const notify = (kind: ChangeKind) => {
    for (const w of watchers) w(kind);
  };

  const sign = (spiffeId: string, publicKey: KeyObject, ttlSeconds: number, dnsNames: readonly string[] = []) => {
    const now = clock.now().getTime();
    const der = issuer.issue({
      subject: [],
      publicKey,
      notBefore: new Date(now - 10_000),
      notAfter: new Date(now + ttlSeconds * 1000),
      basicConstraints: { ca: false },
      keyUsage: { usages: ['digitalSignature', 'keyEncipherment', 'keyAgreement'], critical: true },
      extendedKeyUsage: { purposes: ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'] },
      subjectAltName: { uris: [spiffeId], dnsNames },
    });
    return { spiffeId, certChain: [new Uint8Array(der)], expiresAt: BigInt(Math.floor(now / 1000) + ttlSeconds) };
  };

  const authenticate = (ctx: HandlerContext): string => {
    const session = ctx.values.get(kSession);
    const socket = session?.socket as unknown as TLSSocket | undefined;
    const peer = socket?.getPeerCertificate(true);
    if (peer?.raw === undefined) throw new ConnectError('no client certificate', Code.Unauthenticated);
    let id: string;
    try {
      id = verifyX509Svid([new X509Certificate(peer.raw)], ca.x509Bundle(), { now: clock.now() }).id.toString();
    } catch (err) {
      if (err instanceof SpiffeError) throw new ConnectError(err.message, Code.Unauthenticated);
      throw err;
    }
    const serial = new X509Certificate(peer.raw).serialNumber;
    if (agents.get(id) !== serial)
      throw new ConnectError(`agent ${id} unknown or SVID superseded`, Code.PermissionDenied);
    return id;
  };

  const authorized = (agentId: string): Entry[] =>
    [...entries.values()].filter(
      (e) => e.parentId === agentId || e.parentId === `spiffe://${trustDomain}/spire/server`,
    );

  const impl: Impl = {
    async *attestAgent(requests: AsyncIterable<AttestAgentRequest>) {
      count('AttestAgent');
      const it = requests[Symbol.asyncIterator]();
      const first = await it.next();
      if (first.done || first.value.step.case !== 'params')
        throw new ConnectError('params first', Code.InvalidArgument);
      const { data, csr } = first.value.step.value;
      const publicKey = csrPublicKey(csr);
      let agentId: string;
      let canReattest = false;
      const payload = Buffer.from(data?.payload ?? new Uint8Array()).toString('utf8');
      if (data?.type === 'join_token') {
        if (!tokens.delete(payload))
          throw new ConnectError('join token unknown or already used', Code.PermissionDenied);
        agentId = `spiffe://${trustDomain}/spire/agent/join_token/${payload}`;
      } else if (data?.type === 'test_reattest') {
        // A re-attestable method with one challenge round, standing in for x509pop.
        yield { step: { case: 'challenge', value: new Uint8Array([1, 2, 3]) } };
        const answer = await it.next();
        if (answer.done || answer.value.step.case !== 'challengeResponse') {
          throw new ConnectError('challenge_response expected', Code.InvalidArgument);
        }
        agentId = `spiffe://${trustDomain}/spire/agent/test/${payload}`;
        canReattest = true;
      } else {
        throw new ConnectError(`unknown attestor ${data?.type}`, Code.InvalidArgument);
      }
      const svid = sign(agentId, publicKey, options.agentSvidTtl ?? 3600);
      agents.set(agentId, new X509Certificate(svid.certChain[0] as Uint8Array).serialNumber);
      firstAgent ??= agentId;
      yield {
        step: {
          case: 'result',
          value: {
            spiffeId: agentId,
            svid,
            bundle: { trustDomain, spiffeBundleJson: ownBundle().marshal(), sequence: 1n },
            canReattest,
          },
        },
      };
    },
    async renewAgent(req, ctx) {
      count('RenewAgent');
      const agentId = authenticate(ctx);
      const svid = sign(agentId, csrPublicKey(req.csr), options.agentSvidTtl ?? 3600);
      agents.set(agentId, new X509Certificate(svid.certChain[0] as Uint8Array).serialNumber);
      return { svid };
    },
    async syncAuthorizedEntries(req, ctx) {
      count('SyncAuthorizedEntries');
      const agentId = authenticate(ctx);
      const mine = authorized(agentId);
      const known = Number(req.knownRevision);
      if (known === 0)
        return { revision: BigInt(revision), full: true, entries: mine, bundlesRevision: BigInt(bundlesRevision) };
      const changedIds = new Set(changes.filter((c) => c.revision > known).map((c) => c.id));
      const byId = new Map(mine.map((e) => [e.id, e]));
      return {
        revision: BigInt(revision),
        full: false,
        entries: [...changedIds].flatMap((id) => (byId.has(id) ? [byId.get(id) as Entry] : [])),
        deletedEntryIds: [...changedIds].filter((id) => !byId.has(id)),
        bundlesRevision: BigInt(bundlesRevision),
      };
    },
    async *watchChanges(req, ctx) {
      count('WatchChanges');
      authenticate(ctx);
      const pending: ChangeKind[] = [];
      let wake: (() => void) | undefined;
      const watcher = (kind: ChangeKind) => {
        pending.push(kind);
        wake?.();
      };
      watchers.add(watcher);
      const onAbort = () => wake?.();
      ctx.signal.addEventListener('abort', onAbort);
      try {
        if (Number(req.knownRevision) < revision) pending.push(ChangeKind.ENTRIES);
        for (;;) {
          while (pending.length === 0 && !ctx.signal.aborted) {
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
          }
          if (ctx.signal.aborted) throw ctx.signal.reason;
          const kind = pending.shift() as ChangeKind;
          yield { revision: BigInt(revision), kind };
        }
      } finally {
        watchers.delete(watcher);
        ctx.signal.removeEventListener('abort', onAbort);
      }
    },
    async batchNewX509Svid(req, ctx) {
      count('BatchNewX509Svid');
      const agentId = authenticate(ctx);
      const mine = new Map(authorized(agentId).map((e) => [e.id, e]));
      const results: MessageInitShape<typeof BatchNewX509SvidResponse_ResultSchema>[] = [];
      for (const p of req.params) {
        const entry = mine.get(p.entryId);
        if (entry === undefined) {
          results.push({ entryId: p.entryId, status: { code: Code.NotFound, message: 'no such entry' } });
          continue;
        }
        signedCount++;
        results.push({
          entryId: p.entryId,
          status: { code: 0, message: '' },
          svid: sign(
            entry.spiffeId,
            csrPublicKey(p.csr),
            entry.x509SvidTtl || (options.x509SvidTtl ?? 3600),
            entry.dnsNames,
          ),
        });
      }
      return { results };
    },
    async newJwtSvid(req, ctx) {
      count('NewJwtSvid');
      const agentId = authenticate(ctx);
      const entry = authorized(agentId).find((e) => e.id === req.entryId);
      if (entry === undefined) throw new ConnectError('no such entry', Code.NotFound);
      const ttl = entry.jwtSvidTtl || 300;
      const token = jwt.mint(entry.spiffeId, req.audience, { ttlSeconds: ttl });
      const iat = Math.floor(clock.now().getTime() / 1000);
      return { svid: { spiffeId: entry.spiffeId, token, issuedAt: BigInt(iat), expiresAt: BigInt(iat + ttl) } };
    },
    async getBundles(_req, ctx) {
      count('GetBundles');
      const agentId = authenticate(ctx);
      const tds = new Set(authorized(agentId).flatMap((e) => e.federatesWith));
      return {
        revision: BigInt(bundlesRevision),
        bundle: { trustDomain, spiffeBundleJson: ownBundle().marshal(), sequence: 1n },
        federatedBundles: [...federated.values()]
          .filter((b) => tds.has(b.trustDomain.name))
          .map((b) => ({ trustDomain: b.trustDomain.name, spiffeBundleJson: b.marshal(), sequence: 1n })),
      };
    },
  };

  const handler = connectNodeAdapter({
    routes: (router) => router.service(AgentApiService, impl),
    grpc: true,
    connect: false,
    grpcWeb: false,
    acceptCompression: [],
    contextValues: (req) => createContextValues().set(kSession, (req as Http2ServerRequest).stream?.session),
  });
  const sessions = new Set<Http2Session>();
  let server: http2.Http2SecureServer | undefined;
  let port = options.port ?? 0;

  const start = async () => {
    const s = http2.createSecureServer(
      {
        key: serverSvid.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
        cert: serverSvid.certificates.map((c) => c.toString()).join(''),
        requestCert: true,
        rejectUnauthorized: false,
      },
      (req, res) => {
        Object.defineProperty(req, 'authority', { value: 'localhost', configurable: true });
        handler(req, res);
      },
    );
    s.on('session', (session) => {
      sessions.add(session);
      session.on('error', () => {});
      session.on('close', () => sessions.delete(session));
    });
    s.on('stream', (stream) => stream.on('error', () => {}));
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => resolve());
    });
    port = (s.address() as AddressInfo).port;
    server = s;
  };
  const stop = async () => {
    const s = server;
    server = undefined;
    if (s === undefined) return;
    const closed = new Promise<void>((resolve) => s.close(() => resolve()));
    for (const session of sessions) session.destroy();
    await closed;
  };
  await start();

  const bump = (id: string) => {
    revision++;
    changes.push({ revision, id });
    notify(ChangeKind.ENTRIES);
  };

  return {
    trustDomain,
    get port() {
      return port;
    },
    ca,
    jwt,
    bundlePem: ca.certificate.toString(),
    calls,
    signed: () => signedCount,
    addEntry(init) {
      const parentId = init.parentId ?? firstAgent;
      if (parentId === undefined) throw new Error('addEntry: no agent attested yet; give parentId');
      const id = `entry-${nextId++}`;
      entries.set(
        id,
        create(EntrySchema, {
          id,
          spiffeId: init.spiffeId,
          parentId,
          selectors: init.selectors.map(parseSelector),
          x509SvidTtl: init.x509SvidTtl ?? 0,
          jwtSvidTtl: init.jwtSvidTtl ?? 0,
          dnsNames: [...(init.dnsNames ?? [])],
          federatesWith: [...(init.federatesWith ?? [])],
          hint: init.hint ?? '',
          createdAt: BigInt(nextId),
          revisionNumber: BigInt(revision + 1),
        }),
      );
      bump(id);
      return id;
    },
    removeEntry(id) {
      entries.delete(id);
      bump(id);
    },
    setFederatedBundle(bundle) {
      federated.set(bundle.trustDomain.name, bundle);
      bundlesRevision++;
      revision++;
      notify(ChangeKind.BUNDLES);
    },
    addJoinToken(token) {
      tokens.add(token);
    },
    stop,
    start,
    async close() {
      await stop();
    },
  };
}
