/**
 * AttestAgent: the one Agent API call that needs no client certificate. The agent sends its
 * attestation data and a CSR; the configured node attestor checks the proof (asking for
 * challenge responses on the same stream when it needs them, as x509pop does); then the
 * server refuses banned agents, signs the agent SVID for the CSR's key, records the agent and
 * its current serial, and answers with the SVID and the trust bundle.
 * @module
 */
import type { MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError, type HandlerContext } from '@connectrpc/connect';
import type { Clock, TrustDomain } from '@steeple/spiffe';
import type { Logger } from '../../../common/logger.js';
import type { AttestAgentRequest, AttestAgentResponseSchema } from '../../../gen/steeple/agent/v1/agent_pb.js';
import { attestNode } from '../../attestation/attest-node.js';
import {
  AttestationError,
  type ChallengeFn,
  type NodeAttestation,
  type NodeAttestor,
} from '../../attestation/node-attestor.js';
import { parseCsr } from '../../ca/csr.js';
import { type AttestedAgent, type Datastore, isDatastoreError } from '../../datastore/index.js';
import { serialOf } from './agent-authenticator.js';
import type { ChangeFeed } from './change-feed.js';
import type { AgentApiSigner } from './ports.js';
import { bundleToProto, x509SvidToProto } from './wire.js';

type Response = MessageInitShape<typeof AttestAgentResponseSchema>;

/** How long the agent has to answer one challenge. */
const CHALLENGE_TIMEOUT_MS = 30_000;

export interface AttestAgentDeps {
  readonly trustDomain: TrustDomain;
  readonly datastore: Pick<Datastore, 'agents' | 'entries'>;
  readonly feed: ChangeFeed;
  readonly signer: AgentApiSigner;
  readonly nodeAttestors: ReadonlyMap<string, NodeAttestor>;
  /** Lifetime of agent SVIDs, seconds. */
  readonly agentSvidTtl: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Called after the handler wrote to the datastore, so the change feed picks it up at once. */
  readonly onLocalWrite: () => void;
  /** Observes each agent SVID signing (seconds), for metrics. */
  readonly observeSigning: (type: 'agent_x509', seconds: number) => void;
}

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

function bannedError(): ConnectError {
  return new ConnectError(
    'the agent is banned; an operator must evict it (steeple server agent evict) before it can attest again',
    Code.PermissionDenied,
  );
}

/** Creates the bidi-streaming AttestAgent implementation. */
export function createAttestAgent(deps: AttestAgentDeps) {
  return async function* attestAgent(
    requests: AsyncIterable<AttestAgentRequest>,
    ctx: HandlerContext,
  ): AsyncGenerator<Response> {
    const incoming = requests[Symbol.asyncIterator]();
    const first = await incoming.next();
    if (first.done || first.value.step.case !== 'params') {
      throw invalid('the first AttestAgent message must carry params (attestation data and CSR)');
    }
    const { data, csr: csrBytes } = first.value.step.value;
    if (data === undefined || data.type === '') throw invalid('params.data.type is required (e.g. "join_token")');
    if (csrBytes.length === 0) throw invalid('params.csr is required: a PKCS#10 request for the agent key');
    const csr = await parseCsr(csrBytes);

    // Challenges travel out through `outbox`; the attestor waits for each answer.
    const outbox: Response[] = [];
    let wake: (() => void) | undefined;
    const push = (message: Response) => {
      outbox.push(message);
      wake?.();
    };
    const challenge: ChallengeFn = async (nonce) => {
      push({ step: { case: 'challenge', value: nonce } });
      const next = await withTimeout(incoming.next(), CHALLENGE_TIMEOUT_MS, ctx.signal);
      if (next.done) throw invalid('the agent closed the stream instead of answering the challenge');
      if (next.value.step.case !== 'challengeResponse') {
        throw invalid('expected a challenge_response message after a challenge');
      }
      return next.value.step.value;
    };

    let outcome: { attestation: NodeAttestation } | { error: unknown } | undefined;
    // The CSR was checked first, so a malformed request never uses up a join token.
    const attesting = attestNode(
      deps.nodeAttestors,
      data,
      challenge,
      { trustDomain: deps.trustDomain, now: deps.clock.now() },
      { agents: deps.datastore.agents },
    )
      .then(
        (attestation) => {
          outcome = { attestation };
        },
        (error: unknown) => {
          outcome = { error };
        },
      )
      .finally(() => wake?.());
    while (outcome === undefined || outbox.length > 0) {
      const message = outbox.shift();
      if (message !== undefined) {
        yield message;
        continue;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        if (outcome !== undefined || outbox.length > 0) resolve();
      });
      wake = undefined;
    }
    await attesting;
    if (outcome === undefined) throw new Error('attestation ended without an outcome');
    if ('error' in outcome) {
      const error = outcome.error;
      if (error instanceof AttestationError) {
        deps.logger.warn({ attestor: error.attestor, reason: error.reason }, 'node attestation refused');
      }
      throw error;
    }
    const attestor = { name: data.type };

    const { attestation } = outcome;
    const agentId = attestation.agentId.toString();
    const existing = await deps.datastore.agents.get(agentId);

    const started = process.hrtime.bigint();
    const svid = await deps.signer.signX509Svid({
      spiffeId: attestation.agentId,
      publicKey: csr.publicKey,
      subjectPublicKeyInfo: csr.subjectPublicKeyInfo,
      ttlSeconds: deps.agentSvidTtl,
    });
    deps.observeSigning('agent_x509', Number(process.hrtime.bigint() - started) / 1e9);
    const leaf = svid.certChain[0];
    if (leaf === undefined) throw new Error('the CA returned an empty certificate chain');

    const record = await recordAgent(deps, {
      spiffeId: agentId,
      attestationType: attestor.name,
      serialNumber: serialOf(leaf),
      expiresAt: svid.expiresAt,
      selectors: attestation.selectors,
    });
    // A ban that raced with this attestation wins: update() never clears it.
    if (record.banned) throw bannedError();

    if (attestation.joinTokenSpiffeId !== undefined) {
      await registerJoinTokenAlias(deps, agentId, attestation.joinTokenSpiffeId.toString());
    }
    deps.onLocalWrite();

    const bundle = deps.feed.bundle(deps.trustDomain.name);
    if (bundle === undefined) throw new ConnectError('the server has no trust bundle yet', Code.Unavailable);
    deps.logger.info(
      { agentId, attestor: attestor.name, reattested: existing !== undefined, expiresAt: svid.expiresAt },
      'agent attested',
    );
    yield {
      step: {
        case: 'result',
        value: {
          spiffeId: agentId,
          svid: x509SvidToProto(agentId, svid),
          bundle: bundleToProto(bundle),
          canReattest: attestation.canReattest,
        },
      },
    };
  };
}

async function recordAgent(
  deps: AttestAgentDeps,
  agent: {
    spiffeId: string;
    attestationType: string;
    serialNumber: string;
    expiresAt: number;
    selectors: AttestedAgent['selectors'];
  },
): Promise<AttestedAgent> {
  const patch = {
    attestationType: agent.attestationType,
    serialNumber: agent.serialNumber,
    expiresAt: agent.expiresAt,
    selectors: agent.selectors,
  };
  try {
    return await deps.datastore.agents.create(agent);
  } catch (err) {
    if (!isDatastoreError(err, 'ERR_AGENT_EXISTS')) throw err;
    return deps.datastore.agents.update(agent.spiffeId, patch);
  }
}

/**
 * A join token generated with `-spiffeID` gives the agent that ID as an alias, as SPIRE
 * does: an entry parented by the agent, so entries parented by the alias reach the agent.
 */
async function registerJoinTokenAlias(deps: AttestAgentDeps, agentId: string, alias: string): Promise<void> {
  try {
    await deps.datastore.entries.create({
      spiffeId: alias,
      parentId: agentId,
      selectors: [{ type: 'spiffe_id', value: agentId }],
    });
  } catch (err) {
    if (!isDatastoreError(err, 'ERR_ENTRY_DUPLICATE')) throw err;
  }
}

async function withTimeout<T>(promise: Promise<T>, ms: number, signal: AbortSignal): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new ConnectError(`the agent did not answer the challenge within ${ms / 1000} s`, Code.DeadlineExceeded)),
      ms,
    );
    onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, limit]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}
