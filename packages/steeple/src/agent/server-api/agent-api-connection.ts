/**
 * The agent's gRPC connection to the server's Agent API (HTTP/2 over TLS). One HTTP/2
 * session carries every call; it is replaced whenever the TLS material changes (a renewed
 * agent SVID, a new bundle), because the server authorizes each call by the certificate
 * the connection was opened with and refuses a superseded SVID at once.
 * @module
 */
import { type Client, createClient } from '@connectrpc/connect';
import { createGrpcTransport, Http2SessionManager } from '@connectrpc/connect-node';
import { type Clock, systemClock } from '@steeple/spiffe';
import { AgentApiService } from '../../gen/steeple/agent/v1/agent_pb.js';
import { type AgentTlsMaterial, agentTlsOptions } from './server-tls.js';

/** The typed Agent API client. */
export type AgentApiClient = Client<typeof AgentApiService>;

/** Options of {@link AgentApiConnection}. */
export interface AgentApiConnectionOptions {
  /** Host name or IP of the server. */
  readonly address: string;
  readonly port: number;
  /** The material to connect with now; read each time a session is (re)opened. */
  readonly material: () => AgentTlsMaterial;
  readonly clock?: Clock;
}

/** Largest response accepted (a full sync of 10,000 entries is a few MiB). */
const READ_MAX_BYTES = 64 * 1024 * 1024;

interface Open {
  readonly material: AgentTlsMaterial;
  readonly sessions: Http2SessionManager;
  readonly client: AgentApiClient;
}

export class AgentApiConnection {
  readonly #options: AgentApiConnectionOptions;
  readonly #baseUrl: string;
  #open: Open | undefined;
  #closed = false;

  constructor(options: AgentApiConnectionOptions) {
    this.#options = options;
    const host =
      options.address.includes(':') && !options.address.startsWith('[') ? `[${options.address}]` : options.address;
    this.#baseUrl = `https://${host}:${options.port}`;
  }

  /** `host:port` of the server, for logs. */
  get target(): string {
    return this.#baseUrl.slice('https://'.length);
  }

  /** The client for the current material, opening a new session when the material changed. */
  client(): AgentApiClient {
    if (this.#closed) throw new Error('the Agent API connection is closed');
    const material = this.#options.material();
    const open = this.#open;
    if (open !== undefined && open.material.svid === material.svid && open.material.bundle === material.bundle) {
      return open.client;
    }
    this.reset();
    const sessions = new Http2SessionManager(
      this.#baseUrl,
      { pingIntervalMs: 30_000, pingTimeoutMs: 15_000, idleConnectionTimeoutMs: 15 * 60_000 },
      agentTlsOptions(material, this.#options.clock ?? systemClock),
    );
    const transport = createGrpcTransport({
      baseUrl: this.#baseUrl,
      sessionManager: sessions,
      acceptCompression: [],
      readMaxBytes: READ_MAX_BYTES,
    });
    const client = createClient(AgentApiService, transport);
    this.#open = { material, sessions, client };
    return client;
  }

  /** Drops the current session (calls in flight fail); the next {@link client} opens a new one. */
  reset(): void {
    const open = this.#open;
    this.#open = undefined;
    open?.sessions.abort();
  }

  close(): void {
    this.#closed = true;
    this.reset();
  }
}
