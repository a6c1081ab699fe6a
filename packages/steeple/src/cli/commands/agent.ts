/**
 * `steeple agent …`, as SPIRE's `spire-agent`:
 *
 * - `agent run -config agent.yaml` runs an agent until SIGTERM or SIGINT (flags override keys);
 * - `agent validate -config agent.yaml` checks a file without starting anything;
 * - `agent api fetch x509 [-write DIR]`, `agent api fetch jwt -audience A [-spiffeID ID]`,
 *   `agent api validate jwt -audience A -svid TOKEN`, `agent api watch`: a workload's view of
 *   the Workload API, through the SDK's client;
 * - `agent healthcheck`: exit 0 when the agent answers on its socket.
 * @module
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Code } from '@connectrpc/connect';
import {
  type BundleSet,
  createWorkloadApiClient,
  type JwtSvid,
  type WorkloadApiClient,
  WorkloadApiError,
  type X509Bundle,
  type X509Context,
} from '@steeple/spiffe';
import { Command, InvalidArgumentError } from 'commander';
import {
  type AgentConfig,
  agentFlagOverrides,
  DEFAULT_AGENT_SOCKET_PATH,
  loadAgentConfig,
} from '../../agent/config.js';
import { createOutputOption, formatKeyValues, type OutputFormat } from '../../common/cli/output.js';
import { parseDuration } from '../../common/config/duration.js';
import { createLogger } from '../../common/logger.js';
import { CliError } from '../admin-command.js';
import { printJson, printText } from '../command-output.js';

interface ConfigOptions {
  readonly config: string;
  readonly expandEnv?: boolean;
  readonly serverAddress?: string;
  readonly serverPort?: string;
  readonly trustDomain?: string;
  readonly trustBundle?: string;
  readonly joinToken?: string;
  readonly dataDir?: string;
  readonly socketPath?: string;
  readonly logLevel?: string;
}

function loadConfig(opts: ConfigOptions): AgentConfig {
  return loadAgentConfig(opts.config, { expandEnv: opts.expandEnv === true, overrides: agentFlagOverrides(opts) });
}

function withConfigFlags(command: Command): Command {
  return command
    .requiredOption('--config <file>', 'path to the agent configuration file (YAML)')
    .option('--expandEnv', `expand \${NAME} environment variables in the configuration`)
    .option('--serverAddress <host>', 'address of the server (overrides server_address)')
    .option('--serverPort <port>', 'port of the server’s Agent API (overrides server_port)')
    .option('--trustDomain <name>', 'the trust domain (overrides trust_domain)')
    .option('--trustBundle <file>', 'PEM roots to trust the server with at first contact (overrides trust_bundle_path)')
    .option('--joinToken <token>', 'a join token for node attestation (overrides join_token)')
    .option('--dataDir <dir>', 'where the agent keeps its SVID and bundle (overrides data_dir)')
    .option('--socketPath <path>', 'path of the Workload API socket (overrides socket_path)')
    .option('--logLevel <level>', 'trace, debug, info, warn or error (overrides log_level)');
}

function runCommand(): Command {
  return withConfigFlags(new Command('run').description('Runs the agent until SIGTERM or SIGINT')).action(
    async (opts: ConfigOptions) => {
      const config = loadConfig(opts);
      const logger = createLogger({ name: 'steeple-agent', level: config.log_level });
      // Loaded here, not at CLI start, so `agent api …` commands stay light.
      const { startAgent } = await import('../../agent/agent.js');
      const agent = await startAgent(config, { logger });
      await new Promise<void>((resolve) => {
        const stop = (signal: NodeJS.Signals) => {
          logger.info({ signal }, 'stopping');
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
          resolve();
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
      });
      await agent.close();
      logger.flush();
    },
  );
}

function validateCommand(): Command {
  return new Command('validate')
    .description('Checks an agent configuration file without starting the agent')
    .requiredOption('--config <file>', 'path to the agent configuration file (YAML)')
    .option('--expandEnv', `expand \${NAME} environment variables in the configuration`)
    .action((opts: ConfigOptions) => {
      loadConfig(opts);
      printText('configuration OK');
    });
}

interface ApiOptions {
  readonly socketPath: string;
  readonly timeout: number;
  readonly output: OutputFormat;
}

function parseTimeout(value: string): number {
  try {
    return parseDuration(value, 'timeout');
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** SPIRE's `-socketPath` and `-timeout` for Workload API commands. */
function withApiOptions(command: Command): Command {
  return command
    .option('--socketPath <path>', 'path to the agent’s Workload API socket', DEFAULT_AGENT_SOCKET_PATH)
    .option('--timeout <duration>', 'how long to wait for an answer', parseTimeout, 5)
    .addOption(createOutputOption());
}

async function withWorkloadClient<T>(
  opts: ApiOptions,
  fn: (client: WorkloadApiClient, signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const client = createWorkloadApiClient({ address: `unix://${opts.socketPath}` });
  try {
    return await fn(client, AbortSignal.timeout(opts.timeout * 1000));
  } catch (err) {
    throw new CliError(describeWorkloadFailure(err, opts.socketPath));
  } finally {
    await client.close();
  }
}

function describeWorkloadFailure(err: unknown, socketPath: string): string {
  if (err instanceof WorkloadApiError && err.grpcCode === Code.PermissionDenied) {
    return `the agent has no identity for this process (PermissionDenied): register an entry whose selectors match it`;
  }
  if (err instanceof WorkloadApiError && err.grpcCode === Code.Unavailable) {
    return `cannot reach the agent on ${socketPath}: ${err.message}`;
  }
  const name = (err as Error)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') return `no answer from the agent on ${socketPath} in time`;
  return (err as Error)?.message ?? String(err);
}

function validity(cert: { validFrom: string; validTo: string }): [string, string] {
  return [new Date(cert.validFrom).toISOString(), new Date(cert.validTo).toISOString()];
}

function describeContext(ctx: X509Context, elapsedMs: number): string {
  const blocks = [
    `Received ${ctx.svids.length} svid${ctx.svids.length === 1 ? '' : 's'} after ${elapsedMs.toFixed(1)}ms`,
  ];
  for (const svid of ctx.svids) {
    const [after, until] = validity(svid.leaf);
    const rows: [string, string | undefined][] = [
      ['SPIFFE ID', svid.id.toString()],
      ['Hint', svid.hint || undefined],
      ['SVID Valid After', after],
      ['SVID Valid Until', until],
    ];
    for (const [i, cert] of svid.certificates.slice(1).entries()) {
      const [a, u] = validity(cert);
      rows.push([`Intermediate #${i + 1} Valid After`, a], [`Intermediate #${i + 1} Valid Until`, u]);
    }
    const bundle = ctx.bundles.get(svid.id.trustDomain)?.x509Bundle();
    for (const [i, cert] of (bundle?.authorities ?? []).entries()) {
      const [a, u] = validity(cert);
      rows.push([`CA #${i + 1} Valid After`, a], [`CA #${i + 1} Valid Until`, u]);
    }
    blocks.push(formatKeyValues(rows));
  }
  const own = new Set(ctx.svids.map((s) => s.id.trustDomain.name));
  const federated = ctx.bundles.trustDomains().filter((td) => !own.has(td.name));
  if (federated.length > 0) blocks.push(formatKeyValues([['Federated bundles', federated.map((td) => td.name)]]));
  return blocks.join('\n\n');
}

function contextJson(ctx: X509Context): unknown {
  return {
    svids: ctx.svids.map((s) => ({
      spiffe_id: s.id.toString(),
      hint: s.hint ?? '',
      not_before: new Date(s.leaf.validFrom).toISOString(),
      not_after: s.expiresAt.toISOString(),
    })),
    bundles: ctx.bundles.trustDomains().map((td) => td.name),
  };
}

/** Writes the files SPIRE's `-write` writes: svid.N.pem, svid.N.key (0600), bundle.N.pem, federated_bundle.N.M.pem. */
async function writeContext(dir: string, ctx: X509Context): Promise<void> {
  await mkdir(dir, { recursive: true });
  const pem = (bundle: X509Bundle | undefined) => bundle?.marshal() ?? '';
  for (const [i, svid] of ctx.svids.entries()) {
    const { certificates, privateKey } = svid.marshal();
    await writeFile(join(dir, `svid.${i}.pem`), certificates, { mode: 0o644 });
    const keyPath = join(dir, `svid.${i}.key`);
    await writeFile(keyPath, privateKey, { mode: 0o600 });
    await chmod(keyPath, 0o600);
    await writeFile(join(dir, `bundle.${i}.pem`), pem(ctx.bundles.get(svid.id.trustDomain)?.x509Bundle()), {
      mode: 0o644,
    });
    const federated = ctx.bundles.trustDomains().filter((td) => !td.equals(svid.id.trustDomain));
    for (const [j, td] of federated.entries()) {
      await writeFile(join(dir, `federated_bundle.${i}.${j}.pem`), pem(ctx.bundles.get(td)?.x509Bundle()), {
        mode: 0o644,
      });
    }
  }
}

function fetchX509Command(): Command {
  return withApiOptions(
    new Command('x509').description('Fetches the X.509-SVIDs of this process from the Workload API'),
  )
    .option('--write <dir>', 'write svid.N.pem, svid.N.key and bundle.N.pem into this directory')
    .action(async (opts: ApiOptions & { write?: string }) => {
      const started = performance.now();
      const ctx = await withWorkloadClient(opts, (client, signal) => client.fetchX509Context(signal));
      const elapsed = performance.now() - started;
      if (opts.write !== undefined) await writeContext(opts.write, ctx);
      if (opts.output === 'json') printJson(contextJson(ctx));
      else printText(describeContext(ctx, elapsed));
      if (opts.write !== undefined && opts.output !== 'json') printText(`Writing SVIDs and bundles to ${opts.write}`);
    });
}

function jwksText(bundles: BundleSet): string[] {
  return bundles.bundles().map((b) => `bundle(${b.trustDomain.idString()}):\n\t${b.jwtBundle().marshal()}`);
}

function fetchJwtCommand(): Command {
  return withApiOptions(new Command('jwt').description('Fetches a JWT-SVID of this process for an audience'))
    .requiredOption(
      '--audience <aud>',
      'audience of the token; repeat or comma-separate for several',
      (v, prev: string[] = []) => [...prev, ...v.split(',').filter((a) => a !== '')],
    )
    .option('--spiffeID <id>', 'only this identity of the process')
    .action(async (opts: ApiOptions & { audience: string[]; spiffeID?: string }) => {
      const { svids, bundles } = await withWorkloadClient(opts, async (client, signal) => ({
        svids: await client.fetchJwtSvids(
          { audience: opts.audience, ...(opts.spiffeID === undefined ? {} : { subject: opts.spiffeID }) },
          signal,
        ),
        bundles: await client.fetchJwtBundles(signal),
      }));
      if (opts.output === 'json') {
        printJson({
          svids: svids.map((s: JwtSvid) => ({
            spiffe_id: s.id.toString(),
            svid: s.token,
            expires_at: s.expiry.toISOString(),
          })),
          bundles: Object.fromEntries(
            bundles.bundles().map((b) => [b.trustDomain.idString(), JSON.parse(b.jwtBundle().marshal())]),
          ),
        });
        return;
      }
      const lines = svids.map((s: JwtSvid) => `token(${s.id}):\n\t${s.token}`);
      printText([...lines, ...jwksText(bundles)].join('\n'));
    });
}

function validateJwtCommand(): Command {
  return withApiOptions(new Command('jwt').description('Validates a JWT-SVID through the Workload API'))
    .requiredOption('--audience <aud>', 'the audience the token must be for')
    .requiredOption('--svid <token>', 'the JWT-SVID to validate')
    .action(async (opts: ApiOptions & { audience: string; svid: string }) => {
      const client = createWorkloadApiClient({ address: `unix://${opts.socketPath}` });
      let svid: JwtSvid;
      try {
        svid = await client.validateJwtSvid(opts.svid, opts.audience, AbortSignal.timeout(opts.timeout * 1000));
      } catch (err) {
        if (err instanceof WorkloadApiError && err.grpcCode === Code.InvalidArgument) {
          throw new CliError(`SVID is not valid: ${err.message}`);
        }
        throw new CliError(describeWorkloadFailure(err, opts.socketPath));
      } finally {
        await client.close();
      }
      if (opts.output === 'json') {
        printJson({ spiffe_id: svid.id.toString(), claims: svid.claims });
        return;
      }
      printText(
        `SVID is valid.\n${formatKeyValues([
          ['SPIFFE ID', svid.id.toString()],
          ['Claims', JSON.stringify(svid.claims)],
        ])}`,
      );
    });
}

function watchCommand(): Command {
  return new Command('watch')
    .description('Prints every X.509 context update until interrupted')
    .option('--socketPath <path>', 'path to the agent’s Workload API socket', DEFAULT_AGENT_SOCKET_PATH)
    .addOption(createOutputOption())
    .action(async (opts: Omit<ApiOptions, 'timeout'>) => {
      const client = createWorkloadApiClient({ address: `unix://${opts.socketPath}` });
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      let last = performance.now();
      try {
        await client.watchX509Context(
          {
            onUpdate(ctx) {
              const now = performance.now();
              if (opts.output === 'json') printJson(contextJson(ctx));
              else printText(`${describeContext(ctx, now - last)}\n`);
              last = now;
            },
            onError(err) {
              process.stderr.write(`watch: ${describeWorkloadFailure(err, opts.socketPath)}; retrying\n`);
            },
          },
          stop.signal,
        );
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        await client.close();
      }
    });
}

function healthcheckCommand(): Command {
  return new Command('healthcheck')
    .description('Exits 0 when the agent answers on its Workload API socket')
    .option('--socketPath <path>', 'path to the agent’s Workload API socket', DEFAULT_AGENT_SOCKET_PATH)
    .option('--timeout <duration>', 'how long to wait for an answer', parseTimeout, 5)
    .option('--verbose', 'say what was checked')
    .action(async (opts: { socketPath: string; timeout: number; verbose?: boolean }) => {
      const client = createWorkloadApiClient({ address: `unix://${opts.socketPath}` });
      try {
        await client.fetchX509Bundles(AbortSignal.timeout(opts.timeout * 1000));
      } catch (err) {
        // Refusing this caller still proves the agent attests and serves.
        if (!(err instanceof WorkloadApiError && err.grpcCode === Code.PermissionDenied)) {
          throw new CliError(`Agent is unhealthy: ${describeWorkloadFailure(err, opts.socketPath)}`);
        }
      } finally {
        await client.close();
      }
      if (opts.verbose) printText(`Workload API on ${opts.socketPath} answered.`);
      printText('Agent is healthy.');
    });
}

/** Adds `agent run`, `agent validate`, `agent api …` and `agent healthcheck` to `program`. */
export function registerAgentCommands(program: Command): void {
  const agent = new Command('agent').description('Run the Steeple agent and use its Workload API');
  agent.addCommand(runCommand());
  agent.addCommand(validateCommand());
  const api = new Command('api').description('Talk to the Workload API as this process');
  const fetch = new Command('fetch').description('Fetch SVIDs');
  fetch.addCommand(fetchX509Command());
  fetch.addCommand(fetchJwtCommand());
  api.addCommand(fetch);
  const validate = new Command('validate').description('Validate SVIDs');
  validate.addCommand(validateJwtCommand());
  api.addCommand(validate);
  api.addCommand(watchCommand());
  agent.addCommand(api);
  agent.addCommand(healthcheckCommand());
  program.addCommand(agent);
}
