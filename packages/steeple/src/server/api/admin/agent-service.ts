/**
 * AgentService: attested agents (list, show, ban, evict, count) and join tokens.
 * @module
 */
import { create } from '@bufbuild/protobuf';
import type { ServiceImpl } from '@connectrpc/connect';
import {
  type Agent,
  type AgentFilter,
  AgentSchema,
  type AgentService,
} from '../../../gen/steeple/server/v1/agent_pb.js';
import {
  type AttestedAgent,
  type AgentFilter as DatastoreAgentFilter,
  matchesSet,
  type Page,
  selectorKey,
} from '../../datastore/index.js';
import { loggableId } from './admin-caller.js';
import type { AdminContext } from './admin-context.js';
import { selectorFilterOf } from './entry-service.js';
import {
  requireEpochSeconds,
  requireMemberId,
  requirePageSize,
  requireSpiffeId,
  requireWorkloadId,
} from './field-rules.js';
import { invalidField, notFound } from './grpc-status.js';

/** SPIRE's path for agents attested with a join token. */
const JOIN_TOKEN_AGENT_PATH = '/spire/agent/join_token/';

function agentToProto(a: AttestedAgent, canReattest: boolean): Agent {
  return create(AgentSchema, {
    spiffeId: a.spiffeId,
    attestationType: a.attestationType,
    x509SvidSerialNumber: a.serialNumber,
    x509SvidExpiresAt: BigInt(a.expiresAt),
    selectors: a.selectors.map((s) => ({ type: s.type, value: s.value })),
    banned: a.banned,
    canReattest,
    createdAt: BigInt(a.createdAt),
  });
}

/** The part of a filter the datastore answers, and a predicate for the rest (answered here). */
function splitFilter(
  f: AgentFilter | undefined,
  canReattest: (a: AttestedAgent) => boolean,
): { stored: DatastoreAgentFilter; rest: ((a: AttestedAgent) => boolean) | undefined } {
  if (f === undefined) return { stored: {}, rest: undefined };
  const stored: DatastoreAgentFilter = {
    ...(f.byAttestationType !== undefined ? { attestationType: f.byAttestationType } : {}),
    ...(f.byBanned !== undefined ? { banned: f.byBanned } : {}),
    ...(f.byExpiresBefore !== undefined
      ? { expiresBefore: requireEpochSeconds('filter.byExpiresBefore', f.byExpiresBefore) }
      : {}),
  };
  const checks: ((a: AttestedAgent) => boolean)[] = [];
  if (f.bySelectors !== undefined) {
    const { selectors, match } = selectorFilterOf('filter.bySelectors', f.bySelectors);
    const wanted = new Set(selectors.map(selectorKey));
    checks.push((a) => matchesSet(new Set(a.selectors.map(selectorKey)), wanted, match));
  }
  if (f.byCanReattest !== undefined) {
    const want = f.byCanReattest;
    checks.push((a) => canReattest(a) === want);
  }
  return { stored, rest: checks.length === 0 ? undefined : (a) => checks.every((check) => check(a)) };
}

export function agentService(c: AdminContext): Partial<ServiceImpl<typeof AgentService>> {
  const agents = c.datastore.agents;

  /**
   * Agents matching the filter, a page at a time. Filters the datastore cannot answer (selectors,
   * re-attestability) are applied here over the stored matches, paging by SPIFFE ID the same way.
   */
  async function list(
    filter: AgentFilter | undefined,
    pageSize: number,
    pageToken: string,
  ): Promise<Page<AttestedAgent>> {
    const { stored, rest } = splitFilter(filter, c.canReattest);
    const page = pageToken ? { pageToken } : {};
    if (rest === undefined) return agents.list(stored, { pageSize, ...page });
    const all = (await agents.list(stored, page)).items.filter(rest);
    if (pageSize === 0 || all.length <= pageSize) return { items: all, nextPageToken: undefined };
    const items = all.slice(0, pageSize);
    return { items, nextPageToken: items[items.length - 1]!.spiffeId };
  }

  return {
    async listAgents(req) {
      const pageSize = requirePageSize('pageSize', req.pageSize);
      const page = await list(req.filter, pageSize, req.pageToken);
      return {
        agents: page.items.map((a) => agentToProto(a, c.canReattest(a))),
        nextPageToken: page.nextPageToken ?? '',
      };
    },

    async countAgents(req) {
      const { stored, rest } = splitFilter(req.filter, c.canReattest);
      if (rest === undefined) return { count: BigInt(await agents.count(stored)) };
      return { count: BigInt((await agents.list(stored)).items.filter(rest).length) };
    },

    async getAgent(req) {
      const id = requireSpiffeId('spiffeId', req.spiffeId).toString();
      const agent = await agents.get(id);
      if (agent === undefined) throw notFound(`no attested agent ${JSON.stringify(loggableId(id))}`);
      return { agent: agentToProto(agent, c.canReattest(agent)) };
    },

    async banAgent(req, ctx) {
      const id = requireSpiffeId('spiffeId', req.spiffeId).toString();
      await agents.ban(id);
      c.changed('agents');
      c.audit(ctx, { agent: loggableId(id) }, 'banned agent');
      return {};
    },

    async deleteAgent(req, ctx) {
      const id = requireSpiffeId('spiffeId', req.spiffeId).toString();
      await agents.delete(id);
      c.changed('agents');
      c.audit(ctx, { agent: loggableId(id) }, 'evicted agent');
      return {};
    },

    async createJoinToken(req, ctx) {
      if (req.ttlSeconds <= 0) throw invalidField('ttlSeconds', `must be more than 0, got ${req.ttlSeconds}`);
      const alias =
        req.agentAliasSpiffeId === undefined || req.agentAliasSpiffeId === ''
          ? undefined
          : requireWorkloadId('agentAliasSpiffeId', req.agentAliasSpiffeId, c.trustDomain);
      const token = c.generateJoinToken();
      const agentId = requireMemberId(
        'token',
        `${c.trustDomain.idString()}${JOIN_TOKEN_AGENT_PATH}${token}`,
        c.trustDomain,
      );
      const expiresAt = c.nowSeconds() + req.ttlSeconds;
      await c.datastore.joinTokens.create({ token, expiresAt });
      let aliasEntryId: string | undefined;
      if (alias !== undefined) {
        // As SPIRE does: an entry for the alias, parented to the agent ID the token will produce,
        // so entries parented to the alias reach that agent once it attests.
        const entry = await c.datastore.entries.create({
          spiffeId: alias.toString(),
          parentId: agentId.toString(),
          selectors: [{ type: 'spiffe_id', value: agentId.toString() }],
        });
        aliasEntryId = entry.id;
        c.changed('entries');
      }
      // The token is a secret until used: only the fact that one was made is logged.
      c.audit(
        ctx,
        { ttlSeconds: req.ttlSeconds, expiresAt, ...(alias ? { alias: alias.toString(), aliasEntryId } : {}) },
        'created join token',
      );
      return { token, expiresAt: BigInt(expiresAt), agentSpiffeId: agentId.toString() };
    },
  };
}
