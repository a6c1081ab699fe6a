/**
 * One cluster of the two-cluster test: a trust domain with its own `steeple server` (CA,
 * federation bundle endpoint), `steeple agent` (join token), proxies and apps, all real
 * processes over files in one directory, placed in the cluster's network namespace when
 * there is one. The YAML written here is what the README's "Connect two clusters" shows.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  APP,
  type LogEvent,
  MAIN,
  type ManagedProcess,
  type Placement,
  type ProcessGroup,
  steepleOk,
} from './processes.js';

/** A trust domain this cluster federates with. */
export interface Peer {
  readonly trustDomain: string;
  /** `https://host:port` of the peer's bundle endpoint, as this cluster reaches it. */
  readonly bundleEndpointUrl: string;
  /** The peer's bundle (SPIFFE JSON), exchanged out of band once. */
  readonly bundlePath: string;
}

export interface ClusterOptions {
  readonly trustDomain: string;
  readonly dir: string;
  readonly netns?: string | undefined;
  /** Host that listeners reached by the other cluster bind to. */
  readonly listenHost: string;
  readonly agentApiPort: number;
  readonly bundlePort: number;
  /** `ca_ttl`; default the server's (24 h). */
  readonly caTtl?: string;
  /** `default_x509_svid_ttl`; default the server's (1 h). */
  readonly svidTtl?: string;
  /** `default_jwt_svid_ttl`; default the server's (5 min). */
  readonly jwtSvidTtl?: string;
  readonly processes: ProcessGroup;
}

const isServerReady = (e: LogEvent) => String(e['msg'] ?? '').startsWith('server ready');

export class Cluster {
  readonly o: ClusterOptions;
  server: ManagedProcess | undefined;
  agent: ManagedProcess | undefined;
  #token: string | undefined;
  #peer: Peer | undefined;

  constructor(options: ClusterOptions) {
    this.o = options;
  }

  get trustDomain(): string {
    return this.o.trustDomain;
  }

  get placement(): Placement {
    return { netns: this.o.netns };
  }

  get adminSocket(): string {
    return join(this.o.dir, 'server', 'admin.sock');
  }

  get workloadSocket(): string {
    return join(this.o.dir, 'agent', 'public', 'api.sock');
  }

  get agentId(): string {
    if (this.#token === undefined) throw new Error('no agent yet');
    return `spiffe://${this.trustDomain}/spire/agent/join_token/${this.#token}`;
  }

  id(path: string): string {
    return `spiffe://${this.trustDomain}${path}`;
  }

  /** `server.yaml`: the CA, the agent API on loopback, and the federation section. */
  serverConfig(): string {
    const { o } = this;
    const lines = [
      `trust_domain: ${o.trustDomain}`,
      `data_dir: ${join(o.dir, 'server', 'data')}`,
      'bind_address: 127.0.0.1',
      `bind_port: ${o.agentApiPort}`,
      `socket_path: ${this.adminSocket}`,
      ...(o.caTtl ? [`ca_ttl: ${o.caTtl}`] : []),
      ...(o.svidTtl ? [`default_x509_svid_ttl: ${o.svidTtl}`] : []),
      ...(o.jwtSvidTtl ? [`default_jwt_svid_ttl: ${o.jwtSvidTtl}`] : []),
      'log_level: info',
      'federation:',
      '  bundle_endpoint:',
      `    address: ${o.listenHost}`,
      `    port: ${o.bundlePort}`,
      '    refresh_hint: 5s',
      '    profile:',
      '      https_spiffe: {}',
    ];
    const peer = this.#peer;
    if (peer !== undefined) {
      lines.push(
        '  federates_with:',
        `    ${peer.trustDomain}:`,
        `      bundle_endpoint_url: ${peer.bundleEndpointUrl}`,
        '      bundle_endpoint_profile:',
        '        https_spiffe:',
        `          endpoint_spiffe_id: spiffe://${peer.trustDomain}/spire/server`,
        `          trust_domain_bundle_path: ${peer.bundlePath}`,
      );
    }
    return `${lines.join('\n')}\n`;
  }

  /** Starts (or restarts) the server, federating with `peer` from now on when given. */
  async startServer(peer?: Peer): Promise<ManagedProcess> {
    if (peer !== undefined) this.#peer = peer;
    await mkdir(join(this.o.dir, 'server'), { recursive: true });
    const file = join(this.o.dir, 'server.yaml');
    await writeFile(file, this.serverConfig());
    const server = this.o.processes.start(
      `server ${this.trustDomain}`,
      MAIN,
      ['server', 'run', '-config', file],
      this.placement,
    );
    this.server = server;
    await server.waitFor(isServerReady, 'server ready');
    return server;
  }

  async stopServer(): Promise<void> {
    await this.server?.stop();
  }

  /** Runs an admin command of this cluster's server. */
  admin(...args: string[]): Promise<string> {
    return steepleOk('server', ...args, '-socketPath', this.adminSocket);
  }

  /** The server's bundle as SPIFFE JSON (`bundle show -format spiffe`), parsed. */
  async bundle(): Promise<{ keys: { use: string; x5c?: string[] }[]; spiffe_sequence?: number }> {
    return JSON.parse(await this.admin('bundle', 'show', '-format', 'spiffe'));
  }

  /** Writes this trust domain's bundle to a file for the peer (the out-of-band exchange); returns its path. */
  async exportBundle(): Promise<string> {
    const path = join(this.o.dir, `${this.trustDomain}.bundle.json`);
    await writeFile(path, await this.admin('bundle', 'show', '-format', 'spiffe'));
    return path;
  }

  /** Starts an agent that attests with a fresh join token and serves the Workload API. */
  async startAgent(): Promise<ManagedProcess> {
    const bootstrap = join(this.o.dir, 'bootstrap.pem');
    await writeFile(bootstrap, await this.admin('bundle', 'show'));
    this.#token = (JSON.parse(await this.admin('token', 'generate', '-output', 'json')) as { token: string }).token;
    await mkdir(join(this.o.dir, 'agent', 'data'), { recursive: true });
    const file = join(this.o.dir, 'agent.yaml');
    await writeFile(
      file,
      [
        'server_address: 127.0.0.1',
        `server_port: ${this.o.agentApiPort}`,
        `trust_domain: ${this.trustDomain}`,
        `trust_bundle_path: ${bootstrap}`,
        `join_token: ${this.#token}`,
        `data_dir: ${join(this.o.dir, 'agent', 'data')}`,
        `socket_path: ${this.workloadSocket}`,
        'log_level: info',
        '',
      ].join('\n'),
    );
    const agent = this.o.processes.start(
      `agent ${this.trustDomain}`,
      MAIN,
      ['agent', 'run', '-config', file],
      this.placement,
    );
    this.agent = agent;
    await agent.waitFor((e) => e['msg'] === 'Workload API listening', 'the Workload API');
    return agent;
  }

  /** `entry create` for processes of `uid` on this cluster's agent, receiving the bundles of `federatesWith`. */
  async createEntry(path: string, uid: number, federatesWith: readonly string[]): Promise<void> {
    await this.admin(
      'entry',
      'create',
      '-spiffeID',
      this.id(path),
      '-parentID',
      this.agentId,
      '-selector',
      `unix:uid:${uid}`,
      ...federatesWith.flatMap((td) => ['-federatesWith', td]),
    );
  }

  /**
   * Runs `steeple proxy run` with `yaml` in this cluster (as `uid` when given) and waits until
   * it holds an identity and all `listeners` are ready.
   */
  async startProxy(name: string, yaml: string, listeners: readonly string[], uid?: number): Promise<ManagedProcess> {
    const file = join(this.o.dir, `${name}.yaml`);
    await writeFile(file, yaml);
    const proxy = this.o.processes.start(
      `${name} ${this.trustDomain}`,
      MAIN,
      ['proxy', 'run', '-config', file],
      { ...this.placement, uid },
      { HOME: this.o.dir },
    );
    for (const listener of listeners) {
      await proxy.waitFor(
        (e) => String(e['msg'] ?? '').endsWith('listener ready') && e['listener'] === listener,
        `listener ${listener}`,
      );
    }
    return proxy;
  }

  /** Starts the sample HTTP service on 127.0.0.1:`port` in this cluster. */
  async startServiceApp(port: number): Promise<ManagedProcess> {
    const app = this.o.processes.start(
      `app ${this.trustDomain}`,
      APP,
      ['serve', '127.0.0.1', String(port)],
      this.placement,
    );
    await app.waitFor((e) => e['event'] === 'listening', 'the app to listen');
    return app;
  }

  /** Starts the sample HTTP client in this cluster. */
  async startClientApp(): Promise<CallingApp> {
    const app = this.o.processes.start(`client ${this.trustDomain}`, APP, ['client'], this.placement);
    await app.waitFor((e) => e['event'] === 'ready', 'the client to start');
    return new CallingApp(app);
  }
}

/** What one call of the client app got. */
export interface CallResult {
  readonly status?: number;
  readonly body?: string;
  readonly error?: string;
}

/** Drives the client app: each call is an HTTP GET on a new connection to a local port. */
export class CallingApp {
  readonly #app: ManagedProcess;
  #next = 1;

  constructor(app: ManagedProcess) {
    this.#app = app;
  }

  async get(port: number, path: string): Promise<CallResult> {
    const id = this.#next++;
    const answer = this.#app.waitFor((e) => e['id'] === id, `the answer to call ${id}`, 30_000);
    this.#app.child.stdin?.write(`${JSON.stringify({ id, port, path })}\n`);
    const e = await answer;
    return {
      ...(typeof e['status'] === 'number' ? { status: e['status'] } : {}),
      ...(typeof e['body'] === 'string' ? { body: e['body'] } : {}),
      ...(typeof e['error'] === 'string' ? { error: e['error'] } : {}),
    };
  }
}
