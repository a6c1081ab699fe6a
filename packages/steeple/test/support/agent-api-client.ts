/**
 * A minimal Agent API client for tests: a gRPC transport over TLS to the server, trusting
 * only the trust domain's bundle and accepting only the server's SPIFFE ID
 * (`spiffe://<td>/spire/server`), optionally presenting an agent SVID; plus the attestation
 * exchange, keys and CSRs. It is not the agent: just enough to drive the server.
 * @module
 */
import { generateKeyPairSync, type KeyObject, X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { create } from '@bufbuild/protobuf';
import { type Client, createClient } from '@connectrpc/connect';
import { createGrpcTransport, Http2SessionManager } from '@connectrpc/connect-node';
import { SpiffeBundle, verifyX509Svid } from '@steeple/spiffe';
import {
  AgentApiService,
  type AttestAgentRequest,
  AttestAgentRequestSchema,
  type AttestAgentResponse_Result,
} from '../../src/gen/steeple/agent/v1/agent_pb.js';
import { createCsr } from '../../src/server/ca/create-csr.js';

export type AgentApiClient = Client<typeof AgentApiService>;

/** An agent SVID in hand: DER chain (leaf first) and its private key. */
export interface HeldSvid {
  readonly certChain: readonly Uint8Array[];
  readonly privateKey: KeyObject;
}

export interface AgentApiConnectionOptions {
  readonly host: string;
  readonly port: number;
  /** The SPIFFE bundle JSON of the server's trust domain (from `steeple server bundle show -format spiffe`). */
  readonly bundle: SpiffeBundle;
  /** The agent SVID to present; omit before attestation. */
  readonly svid?: HeldSvid;
}

export interface AgentApiConnection {
  readonly client: AgentApiClient;
  close(): void;
}

function pem(der: Uint8Array): string {
  return new X509Certificate(der).toString();
}

function chainOf(peer: PeerCertificate): Buffer[] {
  const chain: Buffer[] = [];
  const seen = new Set<string>();
  for (let c: (PeerCertificate & { issuerCertificate?: PeerCertificate }) | undefined = peer; c?.raw; ) {
    if (seen.has(c.fingerprint256)) break;
    seen.add(c.fingerprint256);
    chain.push(c.raw);
    c = c.issuerCertificate;
  }
  return chain;
}

/** Opens a connection to the Agent API; the server must present `spiffe://<td>/spire/server` chaining to the bundle. */
export function connectAgentApi(options: AgentApiConnectionOptions): AgentApiConnection {
  const td = options.bundle.trustDomain;
  const serverId = `spiffe://${td.name}/spire/server`;
  const baseUrl = `https://${options.host.includes(':') ? `[${options.host}]` : options.host}:${options.port}`;
  const sessions = new Http2SessionManager(
    baseUrl,
    {},
    {
      ca: options.bundle.x509Authorities.map((c) => c.toString()),
      ...(options.svid
        ? {
            key: options.svid.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
            cert: options.svid.certChain.map(pem).join(''),
          }
        : {}),
      checkServerIdentity: (_host: string, cert: PeerCertificate) => {
        try {
          const { id } = verifyX509Svid(chainOf(cert), options.bundle);
          if (id.toString() !== serverId) return new Error(`server presented ${id}, expected ${serverId}`);
          return undefined;
        } catch (err) {
          return err as Error;
        }
      },
    },
  );
  const transport = createGrpcTransport({ baseUrl, sessionManager: sessions });
  return {
    client: createClient(AgentApiService, transport),
    close: () => sessions.abort(),
  };
}

/** A fresh EC P-256 key. */
export function newKey(): KeyObject {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
}

/** A DER PKCS#10 request for `key`. */
export function csrFor(key: KeyObject): Uint8Array {
  return createCsr(key);
}

/**
 * Runs AttestAgent with `type`/`payload` for `key`; `answer` responds to challenges (none for
 * join_token). Resolves with the result message; rejects with the server's ConnectError.
 */
export async function attestAgent(
  client: AgentApiClient,
  data: { type: string; payload: Uint8Array },
  key: KeyObject,
  answer?: (challenge: Uint8Array) => Uint8Array,
): Promise<AttestAgentResponse_Result> {
  const outbox: AttestAgentRequest[] = [
    create(AttestAgentRequestSchema, { step: { case: 'params', value: { data, csr: csrFor(key) } } }),
  ];
  let wake: (() => void) | undefined;
  let finished = false;
  async function* requests(): AsyncGenerator<AttestAgentRequest> {
    for (;;) {
      const next = outbox.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (finished) return;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  }
  try {
    for await (const res of client.attestAgent(requests())) {
      if (res.step.case === 'challenge') {
        if (answer === undefined) throw new Error('the server sent a challenge, but no answer function was given');
        outbox.push(
          create(AttestAgentRequestSchema, {
            step: { case: 'challengeResponse', value: answer(res.step.value) },
          }),
        );
        wake?.();
      } else if (res.step.case === 'result') {
        return res.step.value;
      }
    }
    throw new Error('the server closed AttestAgent without a result');
  } finally {
    finished = true;
    wake?.();
  }
}

/** Parses a SPIFFE bundle document (as `bundle show -format spiffe` prints it). */
export function parseBundle(trustDomain: string, json: string): SpiffeBundle {
  return SpiffeBundle.parse(trustDomain, json);
}
