/**
 * The server's Agent API: start it with {@link startAgentApi}. It needs the change feed
 * (entries and bundles kept current from the datastore), a signer (the CA), the node
 * attestors by name, and the server's own SVID.
 * @module
 */
import { type Clock, SpiffeBundle, systemClock, type TrustDomain } from '@steeple/spiffe';
import type { Logger } from '../../../common/logger.js';
import type { Metrics } from '../../../common/metrics.js';
import type { NodeAttestor } from '../../attestation/node-attestor.js';
import type { Datastore } from '../../datastore/index.js';
import { type AgentApiServer, startAgentApiServer } from './agent-api-server.js';
import { AgentAuthenticator } from './agent-authenticator.js';
import { createAgentService, type SvidType } from './agent-service.js';
import type { ChangeFeed } from './change-feed.js';
import type { AgentApiSigner } from './ports.js';
import type { ServerSvid } from './server-svid.js';

export type { AgentApiServer } from './agent-api-server.js';
export { AGENT_PATH_PREFIX, AgentAuthenticator, normalizeSerial, serialOf } from './agent-authenticator.js';
export { kAgent, kSession, MAX_BATCH_SIZE, type SvidType } from './agent-service.js';
export { ChangeFeed, type ChangeFeedOptions, type ChangeFeedSource, type FeedChange } from './change-feed.js';
export type {
  AgentApiSigner,
  IssuedJwtSvid,
  IssuedX509Svid,
  JwtSvidRequest,
  X509SvidRequest,
} from './ports.js';
export { ServerSvid, type ServerSvidOptions, type ServerTlsMaterial } from './server-svid.js';

export interface AgentApiOptions {
  readonly trustDomain: TrustDomain;
  readonly host: string;
  readonly port: number;
  readonly datastore: Pick<Datastore, 'agents' | 'entries'>;
  readonly feed: ChangeFeed;
  readonly signer: AgentApiSigner;
  readonly nodeAttestors: ReadonlyMap<string, NodeAttestor>;
  readonly serverSvid: ServerSvid;
  /** Seconds. */
  readonly defaultX509SvidTtl: number;
  /** Seconds. */
  readonly defaultJwtSvidTtl: number;
  /** Seconds; default {@link AgentApiOptions.defaultX509SvidTtl} (SPIRE's agent_ttl default). */
  readonly agentSvidTtl?: number;
  readonly clock?: Clock;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  /** Called after the Agent API wrote to the datastore; default: refresh the feed. */
  readonly onLocalWrite?: () => void;
}

/** Agent API metrics: SVIDs signed by type, signing latency by type, calls by method and code. */
export function createAgentApiMetrics(metrics: Metrics) {
  return {
    signed: metrics.counter({ name: 'svids_signed_total', help: 'SVIDs signed, by type', labelNames: ['type'] }),
    signing: metrics.histogram({
      name: 'svid_signing_seconds',
      help: 'Time to sign one SVID (CSR checked, certificate or token out), by type',
      labelNames: ['type'],
    }),
    calls: metrics.counter({
      name: 'agent_api_calls_total',
      help: 'Agent API calls, by method and status code',
      labelNames: ['method', 'code'],
    }),
  };
}

/** Starts the Agent API listener on `host:port`. */
export async function startAgentApi(options: AgentApiOptions): Promise<AgentApiServer> {
  const clock = options.clock ?? systemClock;
  const ownTd = options.trustDomain.name;
  let parsed: { json: string; bundle: SpiffeBundle } | undefined;
  const ownBundle = () => {
    const stored = options.feed.bundle(ownTd);
    if (stored === undefined) return undefined;
    if (parsed?.json !== stored.bundle)
      parsed = { json: stored.bundle, bundle: SpiffeBundle.parse(ownTd, stored.bundle) };
    return parsed.bundle;
  };
  const authenticator = new AgentAuthenticator({
    trustDomain: options.trustDomain,
    bundles: ownBundle,
    agents: options.datastore.agents,
    clock,
  });
  const m = options.metrics ? createAgentApiMetrics(options.metrics) : undefined;
  const feed = options.feed;
  const onLocalWrite =
    options.onLocalWrite ??
    (() => {
      feed.refresh().catch(() => undefined);
    });
  const service = createAgentService({
    trustDomain: options.trustDomain,
    datastore: options.datastore,
    feed,
    signer: options.signer,
    nodeAttestors: options.nodeAttestors,
    authenticator,
    defaultX509SvidTtl: options.defaultX509SvidTtl,
    defaultJwtSvidTtl: options.defaultJwtSvidTtl,
    agentSvidTtl: options.agentSvidTtl ?? options.defaultX509SvidTtl,
    clock,
    logger: options.logger,
    onLocalWrite,
    observeSigning: (type: SvidType, seconds: number) => {
      m?.signed.inc({ type });
      m?.signing.observe({ type }, seconds);
    },
  });
  return startAgentApiServer({
    host: options.host,
    port: options.port,
    service,
    authenticator,
    tls: options.serverSvid,
    logger: options.logger,
    ...(m ? { calls: m.calls } : {}),
  });
}
