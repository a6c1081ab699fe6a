/**
 * Node attestation from the agent's side: one AttestAgent stream. The agent sends the
 * attestor's payload and a CSR for a fresh key, answers every challenge the server sends
 * with the attestor, and receives its agent SVID, the trust bundle, and whether it may
 * attest the same way again once this SVID has expired.
 * @module
 */
import type { MessageInitShape } from '@bufbuild/protobuf';
import { SpiffeBundle, type TrustDomain, X509Svid } from '@steeple/spiffe';
import type { AttestAgentRequestSchema } from '../../gen/steeple/agent/v1/agent_pb.js';
import type { NodeAttestorClient } from '../node-attestation/index.js';
import type { AgentApiClient } from './agent-api-connection.js';
import { buildCsr, generateSvidKey } from './csr.js';

type Request = MessageInitShape<typeof AttestAgentRequestSchema>;

/** What a successful attestation yields. */
export interface AttestedIdentity {
  /** The agent SVID with the key generated for it. */
  readonly svid: X509Svid;
  /** The server's bundle of the agent's trust domain. */
  readonly bundle: SpiffeBundle;
  /** Whether the same method works again after this SVID expires (x509pop yes, join_token no). */
  readonly canReattest: boolean;
}

/** A pushable request stream for the bidi call. */
class RequestQueue implements AsyncIterable<Request> {
  readonly #items: Request[] = [];
  #ended = false;
  #wake: (() => void) | undefined;

  push(item: Request): void {
    this.#items.push(item);
    this.#wake?.();
  }

  end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Request> {
    for (;;) {
      const next = this.#items.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = undefined;
    }
  }
}

/**
 * Attests the node with `attestor` and returns the new agent identity.
 * @throws ConnectError as the server answered (PermissionDenied: proof refused or reused;
 *   InvalidArgument: malformed; Unavailable: unreachable), NodeAttestationClientError when
 *   the attestor cannot answer a challenge, or Error when the result is not usable.
 */
export async function attestAgent(
  client: AgentApiClient,
  attestor: NodeAttestorClient,
  trustDomain: TrustDomain,
  options: { readonly signal?: AbortSignal; readonly timeoutMs?: number } = {},
): Promise<AttestedIdentity> {
  const keys = await generateSvidKey();
  const requests = new RequestQueue();
  requests.push({
    step: {
      case: 'params',
      value: { data: { type: attestor.name, payload: await attestor.payload() }, csr: buildCsr(keys) },
    },
  });
  let result: AttestedIdentity | undefined;
  try {
    for await (const res of client.attestAgent(requests, {
      signal: options.signal,
      timeoutMs: options.timeoutMs ?? 60_000,
    })) {
      if (res.step.case === 'challenge') {
        requests.push({ step: { case: 'challengeResponse', value: await attestor.answer(res.step.value) } });
      } else if (res.step.case === 'result') {
        const r = res.step.value;
        if (r.svid === undefined || r.bundle === undefined)
          throw new Error('the attestation result lacks the SVID or the bundle');
        if (r.bundle.trustDomain !== trustDomain.name) {
          throw new Error(`the server sent the bundle of "${r.bundle.trustDomain}", not of "${trustDomain.name}"`);
        }
        const svid = X509Svid.parseRaw(
          Buffer.concat(r.svid.certChain.map((c) => Buffer.from(c))),
          keys.privateKey.export({ type: 'pkcs8', format: 'der' }),
        );
        if (svid.id.toString() !== r.spiffeId || !svid.id.trustDomain.equals(trustDomain)) {
          throw new Error(`the agent SVID names ${svid.id}, but the server said ${r.spiffeId}`);
        }
        result = {
          svid,
          bundle: SpiffeBundle.parse(trustDomain, r.bundle.spiffeBundleJson),
          canReattest: r.canReattest,
        };
        requests.end();
      }
    }
  } finally {
    requests.end();
  }
  if (result === undefined) throw new Error('the server ended AttestAgent without a result');
  return result;
}
