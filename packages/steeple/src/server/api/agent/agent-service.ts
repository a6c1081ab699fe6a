/**
 * The Agent API (`steeple.agent.v1.AgentApiService`): what agents call after attestation,
 * authorized per call from the caller's agent SVID (see agent-authenticator.ts). Every
 * entry-scoped call is allowed only for entries the calling agent is authorized for — as
 * parent, through a node alias matching its selectors, or further down such a chain — and a
 * refusal is logged as an audit line naming agent and entry.
 * @module
 */
import type { Http2Session } from 'node:http2';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError, createContextKey, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import { type Clock, type SpiffeId, SpiffeId as SpiffeIdClass, type TrustDomain } from '@steeple/spiffe';
import type { Logger } from '../../../common/logger.js';
import {
  type AgentApiService,
  type BatchNewX509SvidRequest,
  type BatchNewX509SvidResponse_ResultSchema,
  ChangeKind,
  type GetBundlesResponseSchema,
  type NewJwtSvidRequest,
  type RenewAgentRequest,
  type SyncAuthorizedEntriesRequest,
  type SyncAuthorizedEntriesResponseSchema,
  type WatchChangesRequest,
  type WatchChangesResponseSchema,
} from '../../../gen/steeple/agent/v1/agent_pb.js';
import type { NodeAttestor } from '../../attestation/node-attestor.js';
import { parseCsr } from '../../ca/csr.js';
import { type Datastore, isNodeAlias, type RegistrationEntry } from '../../datastore/index.js';
import type { AgentAuthenticator, AuthenticatedAgent } from './agent-authenticator.js';
import { serialOf } from './agent-authenticator.js';
import { createAttestAgent } from './attest-agent.js';
import type { ChangeFeed, FeedChange } from './change-feed.js';
import type { AgentApiSigner } from './ports.js';
import { toConnectError } from './to-connect-error.js';
import { bundleToProto, entryToProto, jwtSvidToProto, x509SvidToProto } from './wire.js';

/** Most CSRs one BatchNewX509Svid call may carry; agents split larger batches. */
export const MAX_BATCH_SIZE = 1000;

/** Most audiences one JWT-SVID may name. */
const MAX_AUDIENCES = 32;

/** The HTTP/2 session of the call, set by the server for every request. */
export const kSession = createContextKey<Http2Session | undefined>(undefined, { description: 'http2 session' });
/** The authenticated agent, set by the authorization interceptor for every call but AttestAgent. */
export const kAgent = createContextKey<AuthenticatedAgent | undefined>(undefined, { description: 'calling agent' });

export type SvidType = 'x509' | 'jwt' | 'agent_x509';

export interface AgentServiceDeps {
  readonly trustDomain: TrustDomain;
  readonly datastore: Pick<Datastore, 'agents' | 'entries'>;
  readonly feed: ChangeFeed;
  readonly signer: AgentApiSigner;
  readonly nodeAttestors: ReadonlyMap<string, NodeAttestor>;
  readonly authenticator: AgentAuthenticator;
  /** Seconds; used when an entry's own TTL is 0. */
  readonly defaultX509SvidTtl: number;
  readonly defaultJwtSvidTtl: number;
  /** Seconds; lifetime of agent SVIDs. */
  readonly agentSvidTtl: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Called after the service wrote to the datastore (agents, alias entries). */
  readonly onLocalWrite: () => void;
  /** Records one signing: its kind and how long it took. */
  readonly observeSigning: (type: SvidType, seconds: number) => void;
}

type Impl = ServiceImpl<typeof AgentApiService>;

function agentOf(ctx: HandlerContext): AuthenticatedAgent {
  const agent = ctx.values.get(kAgent);
  // The interceptor sets it for every method but AttestAgent; reaching here without it is a wiring bug.
  if (agent === undefined) throw new ConnectError('caller not authenticated', Code.Internal);
  return agent;
}

/** Builds the service implementation. */
export function createAgentService(deps: AgentServiceDeps): Impl {
  const { feed, trustDomain, logger } = deps;
  const ownTd = trustDomain.name;
  const nowSeconds = () => Math.floor(deps.clock.now().getTime() / 1000);

  const authorizedFor = (agent: AuthenticatedAgent): RegistrationEntry[] => {
    const now = nowSeconds();
    return feed.cache
      .authorizedEntries(agent.id.toString(), agent.record.selectors)
      .filter((e) => e.expiresAt === null || e.expiresAt > now);
  };

  const federatedTrustDomains = (entries: readonly RegistrationEntry[]): string[] => {
    const tds = new Set<string>();
    for (const e of entries) for (const td of e.federatesWith) if (td !== ownTd) tds.add(td);
    return [...tds].sort();
  };

  const timed = async <T>(type: SvidType, sign: () => Promise<T>): Promise<T> => {
    const started = process.hrtime.bigint();
    const result = await sign();
    deps.observeSigning(type, Number(process.hrtime.bigint() - started) / 1e9);
    return result;
  };

  const denied = (agent: AuthenticatedAgent, entry: RegistrationEntry, call: string): string => {
    logger.warn(
      { audit: true, agentId: agent.id.toString(), entryId: entry.id, spiffeId: entry.spiffeId, call },
      'agent is not authorized for entry',
    );
    return `agent ${agent.id} is not authorized for entry ${entry.id} (${entry.spiffeId})`;
  };

  const renewAgent = async (req: RenewAgentRequest, ctx: HandlerContext) => {
    const agent = agentOf(ctx);
    if (req.csr.length === 0) throw new ConnectError('csr is required', Code.InvalidArgument);
    const csr = await parseCsr(req.csr);
    const svid = await timed('agent_x509', () =>
      deps.signer.signX509Svid({
        spiffeId: agent.id,
        publicKey: csr.publicKey,
        subjectPublicKeyInfo: csr.subjectPublicKeyInfo,
        ttlSeconds: deps.agentSvidTtl,
      }),
    );
    const leaf = svid.certChain[0];
    if (leaf === undefined) throw new Error('the CA returned an empty certificate chain');
    const serial = serialOf(leaf);
    const updated = await deps.datastore.agents.updateSerial(agent.id.toString(), serial, svid.expiresAt, {
      expectedSerial: agent.record.serialNumber,
    });
    if (updated === undefined) {
      throw new ConnectError(
        `agent ${agent.id} renewed concurrently with another SVID; use the newest one`,
        Code.PermissionDenied,
      );
    }
    deps.authenticator.rememberRenewal(agent, serial);
    logger.debug({ agentId: agent.id.toString(), expiresAt: svid.expiresAt }, 'agent SVID renewed');
    return { svid: x509SvidToProto(agent.id.toString(), svid) };
  };

  const syncAuthorizedEntries = async (
    req: SyncAuthorizedEntriesRequest,
    ctx: HandlerContext,
  ): Promise<MessageInitShape<typeof SyncAuthorizedEntriesResponseSchema>> => {
    const agent = agentOf(ctx);
    // Changes committed just now (an operator's write whose notification is still on its way,
    // another server's write before the next poll) are included.
    await feed.catchUp();
    const revision = feed.revision;
    const authorized = authorizedFor(agent);
    const bundlesRevision = feed.bundlesRevisionFor([ownTd, ...federatedTrustDomains(authorized)]);
    const known = req.knownRevision;
    const changed =
      known === 0n || known > BigInt(Number.MAX_SAFE_INTEGER) ? undefined : feed.changedSince(Number(known));
    if (changed === undefined) {
      return { revision: BigInt(revision), full: true, entries: authorized.map(entryToProto), bundlesRevision };
    }
    const byId = new Map(authorized.map((e) => [e.id, e]));
    const entries: RegistrationEntry[] = [];
    const deletedEntryIds: string[] = [];
    for (const id of changed) {
      const entry = byId.get(id);
      if (entry !== undefined) entries.push(entry);
      else deletedEntryIds.push(id);
    }
    return {
      revision: BigInt(revision),
      full: false,
      entries: entries.map(entryToProto),
      deletedEntryIds,
      bundlesRevision,
    };
  };

  async function* watchChanges(
    req: WatchChangesRequest,
    ctx: HandlerContext,
  ): AsyncGenerator<MessageInitShape<typeof WatchChangesResponseSchema>> {
    let agent = agentOf(ctx);
    // What the agent may hold now; a change matters to it when it touches these or a node alias.
    const initial = authorizedFor(agent);
    let known = new Set(initial.map((e) => e.id));
    let trustDomains = new Set([ownTd, ...federatedTrustDomains(initial)]);
    const pending = new Set<ChangeKind>();
    let wake: (() => void) | undefined;
    const notify = (kind: ChangeKind) => {
      pending.add(kind);
      wake?.();
    };
    const unsubscribe = feed.subscribe((change: FeedChange) => {
      const nowAuthorized = authorizedFor(agent);
      const nowIds = new Set(nowAuthorized.map((e) => e.id));
      const entriesMoved =
        change.reloaded ||
        change.entries.some(
          ({ before, after }) =>
            (before !== undefined && (known.has(before.id) || isNodeAlias(before))) ||
            (after !== undefined && (nowIds.has(after.id) || isNodeAlias(after))),
        );
      known = nowIds;
      const nextTrustDomains = new Set([ownTd, ...federatedTrustDomains(nowAuthorized)]);
      const bundlesMoved =
        change.bundleTrustDomains.some((td) => trustDomains.has(td) || nextTrustDomains.has(td)) ||
        nextTrustDomains.size !== trustDomains.size ||
        [...nextTrustDomains].some((td) => !trustDomains.has(td));
      trustDomains = nextTrustDomains;
      if (entriesMoved) notify(ChangeKind.ENTRIES);
      if (bundlesMoved) notify(ChangeKind.BUNDLES);
    });
    const onAbort = () => wake?.();
    ctx.signal.addEventListener('abort', onAbort);
    try {
      if (req.knownRevision < BigInt(feed.revision)) pending.add(ChangeKind.ENTRIES);
      logger.debug({ agentId: agent.id.toString() }, 'agent watching changes');
      for (;;) {
        while (pending.size === 0 && !ctx.signal.aborted) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
        if (ctx.signal.aborted) throw ctx.signal.reason;
        // A ban or eviction ends the stream with the same refusal the next call would get.
        agent = await deps.authenticator.authenticate(ctx.values.get(kSession));
        const kinds = [...pending].sort();
        pending.clear();
        for (const kind of kinds) yield { revision: BigInt(feed.revision), kind };
      }
    } finally {
      unsubscribe();
      ctx.signal.removeEventListener('abort', onAbort);
    }
  }

  const batchNewX509Svid = async (req: BatchNewX509SvidRequest, ctx: HandlerContext) => {
    const agent = agentOf(ctx);
    if (req.params.length === 0) throw new ConnectError('params must hold at least one CSR', Code.InvalidArgument);
    if (req.params.length > MAX_BATCH_SIZE) {
      throw new ConnectError(
        `at most ${MAX_BATCH_SIZE} CSRs per call, got ${req.params.length}; split the batch`,
        Code.InvalidArgument,
      );
    }
    let authorized = new Set(authorizedFor(agent).map((e) => e.id));
    if (req.params.some((p) => !authorized.has(p.entryId))) {
      await feed.catchUp();
      authorized = new Set(authorizedFor(agent).map((e) => e.id));
    }
    const results: MessageInitShape<typeof BatchNewX509SvidResponse_ResultSchema>[] = [];
    for (const param of req.params) {
      const entryId = param.entryId;
      const refuse = (code: Code, message: string) => results.push({ entryId, status: { code, message } });
      const entry = feed.cache.get(entryId);
      if (entryId === '' || entry === undefined) {
        refuse(Code.NotFound, `no registration entry with id ${JSON.stringify(entryId)}`);
        continue;
      }
      if (!authorized.has(entryId)) {
        refuse(Code.PermissionDenied, denied(agent, entry, 'BatchNewX509Svid'));
        continue;
      }
      try {
        const csr = await parseCsr(param.csr);
        const spiffeId = SpiffeIdClass.parse(entry.spiffeId);
        const svid = await timed('x509', () =>
          deps.signer.signX509Svid({
            spiffeId,
            publicKey: csr.publicKey,
            subjectPublicKeyInfo: csr.subjectPublicKeyInfo,
            ttlSeconds: entry.x509SvidTtl || deps.defaultX509SvidTtl,
            dnsNames: entry.dnsNames,
          }),
        );
        results.push({ entryId, status: { code: 0, message: '' }, svid: x509SvidToProto(entry.spiffeId, svid) });
      } catch (err) {
        const status = toConnectError(err, (e) => logger.error({ err: e, entryId }, 'signing failed'));
        refuse(status.code, status.rawMessage);
      }
    }
    logger.debug(
      { agentId: agent.id.toString(), items: results.length, signed: results.filter((r) => r.svid).length },
      'batch signed',
    );
    return { results };
  };

  const newJwtSvid = async (req: NewJwtSvidRequest, ctx: HandlerContext) => {
    const agent = agentOf(ctx);
    if (req.audience.length === 0 || req.audience.some((a) => a === '')) {
      throw new ConnectError('audience must hold at least one non-empty value', Code.InvalidArgument);
    }
    if (req.audience.length > MAX_AUDIENCES) {
      throw new ConnectError(`at most ${MAX_AUDIENCES} audiences, got ${req.audience.length}`, Code.InvalidArgument);
    }
    const isAuthorized = () => authorizedFor(agent).some((e) => e.id === req.entryId);
    // A refusal is checked again against the latest committed changes: the entry may be brand new.
    if (req.entryId !== '' && !isAuthorized()) await feed.catchUp();
    const entry = req.entryId === '' ? undefined : feed.cache.get(req.entryId);
    if (entry === undefined) {
      throw new ConnectError(`no registration entry with id ${JSON.stringify(req.entryId)}`, Code.NotFound);
    }
    if (!isAuthorized()) throw new ConnectError(denied(agent, entry, 'NewJwtSvid'), Code.PermissionDenied);
    const spiffeId: SpiffeId = SpiffeIdClass.parse(entry.spiffeId);
    const svid = await timed('jwt', () =>
      deps.signer.mintJwtSvid({
        spiffeId,
        audience: req.audience,
        ttlSeconds: entry.jwtSvidTtl || deps.defaultJwtSvidTtl,
      }),
    );
    return { svid: jwtSvidToProto(entry.spiffeId, svid) };
  };

  const getBundles = async (
    _req: unknown,
    ctx: HandlerContext,
  ): Promise<MessageInitShape<typeof GetBundlesResponseSchema>> => {
    const agent = agentOf(ctx);
    await feed.refresh(); // bundles have no revision counter; the table is small
    const own = feed.bundle(ownTd);
    if (own === undefined) throw new ConnectError('the server has no trust bundle yet', Code.Unavailable);
    const federated = federatedTrustDomains(authorizedFor(agent));
    const federatedBundles = federated.flatMap((td) => {
      const b = feed.bundle(td);
      return b === undefined ? [] : [bundleToProto(b)];
    });
    return {
      revision: feed.bundlesRevisionFor([ownTd, ...federated]),
      bundle: bundleToProto(own),
      federatedBundles,
    };
  };

  return {
    attestAgent: createAttestAgent({
      trustDomain,
      datastore: deps.datastore,
      feed,
      signer: deps.signer,
      nodeAttestors: deps.nodeAttestors,
      agentSvidTtl: deps.agentSvidTtl,
      clock: deps.clock,
      logger,
      onLocalWrite: deps.onLocalWrite,
      observeSigning: deps.observeSigning,
    }),
    renewAgent,
    syncAuthorizedEntries,
    watchChanges,
    batchNewX509Svid,
    newJwtSvid,
    getBundles,
  };
}
