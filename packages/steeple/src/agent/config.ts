/**
 * The agent's configuration: SPIRE's key names in YAML, unknown keys rejected with a
 * did-you-mean, and the rules between keys (exactly one node attestation method) checked
 * once, here. Nothing downstream reads raw YAML: {@link AgentConfig} is the one runtime shape.
 *
 * ```yaml
 * server_address: steeple-server.example.org
 * server_port: 8081
 * trust_domain: example.org
 * trust_bundle_path: /etc/steeple/bootstrap.pem
 * join_token: 4b0c7e2a-1f3d-4c5b-8a9e-6d7f8e9a0b1c      # or: node_attestor: { x509pop: {...} }
 * data_dir: /var/lib/steeple/agent
 * socket_path: /tmp/steeple-agent/public/api.sock
 * workload_attestors: { unix: { discover_workload_path: true } }
 * ```
 * @module
 */
import * as z from 'zod/mini';
import type { FlagOverride } from '../common/config/apply-flag-overrides.js';
import { healthChecksSchema, portSchema } from '../common/config/health-checks-schema.js';
import { type LoadYamlConfigOptions, loadYamlConfig, parseYamlConfig } from '../common/config/load-yaml.js';
import { logLevelSchema } from '../common/config/log-level-schema.js';
import { telemetrySchema } from '../common/config/telemetry-schema.js';
import { trustDomainNameSchema } from '../common/config/trust-domain-schema.js';
import { x509PopClientConfigSchema } from './node-attestation/index.js';

/** Where the Workload API socket lives unless `socket_path` says otherwise (SPIRE's layout, Steeple's name). */
export const DEFAULT_AGENT_SOCKET_PATH = '/tmp/steeple-agent/public/api.sock';

/** The Agent API port of the server unless `server_port` says otherwise (SPIRE's). */
export const DEFAULT_SERVER_PORT = 8081;

const nonEmpty = z.string().check(z.minLength(1));

/** `workload_attestors.unix` (SPIRE's plugin of that name). */
export const unixAttestorConfigSchema = z.prefault(
  z.strictObject({
    /** Also yield `unix:path` and `unix:sha256` from the process's executable. */
    discover_workload_path: z.prefault(z.boolean(), false),
    /**
     * Largest executable (bytes) hashed for `unix:sha256`; 0 = no limit, negative = never
     * hash (SPIRE's meaning). A larger binary gets no `unix:sha256` selector.
     */
    workload_size_limit: z.prefault(z.number().check(z.int()), 0),
  }),
  {},
);

export type UnixAttestorConfig = z.output<typeof unixAttestorConfigSchema>;

const workloadAttestorsSchema = z.prefault(
  z.strictObject({
    unix: z.optional(unixAttestorConfigSchema),
  }),
  { unix: {} },
);

const nodeAttestorSchema = z.strictObject({
  x509pop: x509PopClientConfigSchema,
});

/** The agent configuration as read from YAML, before the cross-key rules. */
export const AgentConfigSchema = z
  .strictObject({
    server_address: nonEmpty,
    server_port: z.prefault(portSchema.check(z.minimum(1)), DEFAULT_SERVER_PORT),
    trust_domain: trustDomainNameSchema,
    /** PEM roots that the server's SVID must chain to on the very first connection. */
    trust_bundle_path: z.optional(nonEmpty),
    join_token: z.optional(nonEmpty),
    node_attestor: z.optional(nodeAttestorSchema),
    data_dir: nonEmpty,
    socket_path: z.prefault(nonEmpty, DEFAULT_AGENT_SOCKET_PATH),
    workload_attestors: workloadAttestorsSchema,
    /** Let callers without an identity fetch bundles and validate JWT-SVIDs (SPIRE's key). */
    allow_unauthenticated_verifiers: z.prefault(z.boolean(), false),
    log_level: z.prefault(logLevelSchema, 'info'),
    health_checks: healthChecksSchema,
    telemetry: telemetrySchema,
  })
  .check(
    z.superRefine((config, ctx) => {
      if (config.join_token === undefined && config.node_attestor === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['join_token'],
          message:
            'is required unless node_attestor is set: the agent needs one way to prove its node (join_token or node_attestor.x509pop)',
          input: undefined,
        });
      }
      if (config.join_token !== undefined && config.node_attestor !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['node_attestor'],
          message: 'join_token and node_attestor are both set; configure exactly one node attestation method',
          input: config.node_attestor,
        });
      }
      if (config.workload_attestors.unix === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['workload_attestors'],
          message: 'must configure at least one workload attestor (e.g. "unix: {}")',
          input: config.workload_attestors,
        });
      }
    }),
  );

/** The validated agent configuration. */
export type AgentConfig = z.output<typeof AgentConfigSchema>;

/** Command-line flags of `steeple agent run` that override keys (SPIRE's flag names). */
export interface AgentFlagValues {
  readonly serverAddress?: string;
  readonly serverPort?: string | number;
  readonly trustDomain?: string;
  readonly trustBundle?: string;
  readonly joinToken?: string;
  readonly dataDir?: string;
  readonly socketPath?: string;
  readonly logLevel?: string;
}

/** The overrides for {@link loadAgentConfig} from `steeple agent run` flags. */
export function agentFlagOverrides(flags: AgentFlagValues): FlagOverride[] {
  const port = flags.serverPort === undefined ? undefined : Number(flags.serverPort);
  return [
    { key: 'server_address', flag: 'serverAddress', value: flags.serverAddress },
    { key: 'server_port', flag: 'serverPort', value: Number.isNaN(port) ? flags.serverPort : port },
    { key: 'trust_domain', flag: 'trustDomain', value: flags.trustDomain },
    { key: 'trust_bundle_path', flag: 'trustBundle', value: flags.trustBundle },
    { key: 'join_token', flag: 'joinToken', value: flags.joinToken },
    { key: 'data_dir', flag: 'dataDir', value: flags.dataDir },
    { key: 'socket_path', flag: 'socketPath', value: flags.socketPath },
    { key: 'log_level', flag: 'logLevel', value: flags.logLevel },
  ];
}

/**
 * Reads and validates an agent config file.
 * @throws ConfigError listing every problem with its key path (and line, or flag).
 */
export function loadAgentConfig(file: string, options: LoadYamlConfigOptions = {}): AgentConfig {
  return loadYamlConfig(file, AgentConfigSchema, options);
}

/** Like {@link loadAgentConfig}, for YAML text already in hand. */
export function parseAgentConfig(text: string, options: LoadYamlConfigOptions & { file?: string } = {}): AgentConfig {
  return parseYamlConfig(text, AgentConfigSchema, options);
}
