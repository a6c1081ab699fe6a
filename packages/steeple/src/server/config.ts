/**
 * The server's configuration: SPIRE's key names in YAML, unknown keys rejected with a
 * did-you-mean, durations as `"24h"`-style strings, and the rules between keys (an SVID may
 * not outlive the CA that signs it) checked once, here. Nothing downstream reads raw YAML:
 * {@link ServerConfig} is the one runtime shape.
 *
 * ```yaml
 * trust_domain: example.org
 * data_dir: /var/lib/steeple/server
 * bind_port: 8081
 * datastore: { type: postgres, connection_string: "postgres://steeple@db/steeple" }
 * node_attestors: { join_token: {}, x509pop: { ca_bundle_path: /etc/steeple/node-ca.pem } }
 * ```
 * @module
 */
import { join } from 'node:path';
import * as z from 'zod/mini';
import type { FlagOverride } from '../common/config/apply-flag-overrides.js';
import { durationSchema, formatDuration } from '../common/config/duration.js';
import { healthChecksSchema, portSchema } from '../common/config/health-checks-schema.js';
import { type LoadYamlConfigOptions, loadYamlConfig, parseYamlConfig } from '../common/config/load-yaml.js';
import { logLevelSchema } from '../common/config/log-level-schema.js';
import { telemetrySchema } from '../common/config/telemetry-schema.js';
import { trustDomainNameSchema } from '../common/config/trust-domain-schema.js';
import { DEFAULT_SERVER_SOCKET_PATH } from '../common/defaults.js';
import { nodeAttestorsSchema } from './attestation/node-attestors-config.js';
import { federationConfigIssues, federationConfigSchema } from './federation/federation-config.js';

export { DEFAULT_SERVER_SOCKET_PATH };

/** The CA key algorithms the server can use (SPIRE's `ca_key_type` values). */
export const CA_KEY_TYPES = ['ec-p256', 'ec-p384', 'rsa-2048'] as const;
export type CaKeyType = (typeof CA_KEY_TYPES)[number];

/**
 * A CA is replaced when one sixth of its life remains, and no SVID outlives its signer, so an
 * SVID signed just before the switch can live at most ca_ttl / 6 (SPIRE warns likewise).
 */
const CA_TTL_TO_SVID_TTL_RATIO = 6;

const nonEmpty = z.string().check(z.minLength(1));

/** One value or a list of them (SPIRE's ca_subject fields are lists; a lone string is accepted too). */
const nameList = z.pipe(
  z.union([z.string().check(z.minLength(1)), z.array(z.string().check(z.minLength(1)))]),
  z.transform((v: string | string[]) => (Array.isArray(v) ? v : [v])),
);

/** SPIRE's `ca_subject`; unset fields fall back to the CA's default subject (C=US, O=Steeple). */
const caSubjectSchema = z.strictObject({
  country: z.optional(nameList),
  organization: z.optional(nameList),
  organizational_unit: z.optional(nameList),
  province: z.optional(nameList),
  locality: z.optional(nameList),
  common_name: z.optional(z.string().check(z.minLength(1))),
});

const datastoreSchema = z.prefault(
  z.discriminatedUnion('type', [
    z.strictObject({ type: z.literal('sqlite'), path: z.optional(nonEmpty) }),
    z.strictObject({ type: z.literal('postgres'), connection_string: nonEmpty }),
  ]),
  { type: 'sqlite' },
);

const upstreamAuthoritySchema = z.strictObject({
  disk: z.strictObject({
    cert_file_path: nonEmpty,
    key_file_path: nonEmpty,
    bundle_file_path: z.optional(nonEmpty),
  }),
});

/** The schema of `server.yaml`; its output is {@link ServerConfig}. */
export const ServerConfigSchema = z.pipe(
  z
    .strictObject({
      trust_domain: trustDomainNameSchema,
      bind_address: z.prefault(nonEmpty, '0.0.0.0'),
      bind_port: z.prefault(portSchema, 8081),
      socket_path: z.prefault(nonEmpty, DEFAULT_SERVER_SOCKET_PATH),
      data_dir: nonEmpty,
      ca_ttl: z.prefault(durationSchema({ min: 60 }), '24h'),
      default_x509_svid_ttl: z.prefault(durationSchema({ min: 1 }), '1h'),
      default_jwt_svid_ttl: z.prefault(durationSchema({ min: 1 }), '5m'),
      /** Lifetime of agent SVIDs (SPIRE's `agent_ttl`); default `default_x509_svid_ttl`. */
      agent_ttl: z.optional(durationSchema({ min: 60 })),
      ca_key_type: z.prefault(z.enum(CA_KEY_TYPES), 'ec-p256'),
      ca_subject: z.optional(caSubjectSchema),
      jwt_issuer: z.optional(nonEmpty),
      log_level: z.prefault(logLevelSchema, 'info'),
      datastore: datastoreSchema,
      key_manager: z.prefault(z.enum(['disk', 'memory']), 'disk'),
      upstream_authority: z.optional(upstreamAuthoritySchema),
      node_attestors: nodeAttestorsSchema,
      federation: z.optional(federationConfigSchema),
      health_checks: healthChecksSchema,
      telemetry: telemetrySchema,
    })
    // Rules between keys only once every key is valid on its own: after a typo such as
    // `join_tokn`, "no node attestor configured" would only add noise.
    .check(
      z.superRefine(
        (c, ctx) => {
          if (c.default_x509_svid_ttl >= c.ca_ttl) {
            ctx.addIssue({
              code: 'custom',
              path: ['default_x509_svid_ttl'],
              message: `${formatDuration(c.default_x509_svid_ttl)} must be shorter than ca_ttl (${formatDuration(c.ca_ttl)}): no SVID may outlive the CA that signs it`,
            });
          }
          if (c.agent_ttl !== undefined && c.agent_ttl >= c.ca_ttl) {
            ctx.addIssue({
              code: 'custom',
              path: ['agent_ttl'],
              message: `${formatDuration(c.agent_ttl)} must be shorter than ca_ttl (${formatDuration(c.ca_ttl)}): no SVID may outlive the CA that signs it`,
            });
          }
          if (c.default_jwt_svid_ttl >= c.ca_ttl) {
            ctx.addIssue({
              code: 'custom',
              path: ['default_jwt_svid_ttl'],
              message: `${formatDuration(c.default_jwt_svid_ttl)} must be shorter than ca_ttl (${formatDuration(c.ca_ttl)}): no JWT-SVID may outlive the key that signs it`,
            });
          }
          for (const issue of federationConfigIssues(c.federation, c.trust_domain)) {
            ctx.addIssue({ code: 'custom', path: ['federation', ...issue.path], message: issue.message });
          }
          const prometheus = c.telemetry.prometheus;
          if (prometheus !== undefined && c.health_checks.listener_enabled && prometheus.port !== 0) {
            if (prometheus.port === c.health_checks.bind_port && prometheus.host === c.health_checks.bind_address) {
              ctx.addIssue({
                code: 'custom',
                path: ['telemetry', 'prometheus', 'port'],
                message: `${prometheus.port} is also health_checks.bind_port; give each listener its own port`,
              });
            }
          }
        },
        { when: (payload) => payload.issues.length === 0 },
      ),
    ),
  z.transform((c) => ({
    ...c,
    datastore:
      c.datastore.type === 'sqlite'
        ? { type: 'sqlite' as const, path: c.datastore.path ?? join(c.data_dir, 'datastore.sqlite3') }
        : c.datastore,
  })),
);

/** The validated, defaulted, frozen server configuration. Durations are whole seconds. */
export type ServerConfig = z.output<typeof ServerConfigSchema>;

/** The flags of `steeple server run` that override keys of the file (SPIRE's names). */
export interface ServerFlagValues {
  readonly trustDomain?: string | undefined;
  readonly bindAddress?: string | undefined;
  readonly serverPort?: string | number | undefined;
  readonly socketPath?: string | undefined;
  readonly dataDir?: string | undefined;
  readonly logLevel?: string | undefined;
}

/** Maps `run` flags onto config keys, so a flag's value goes through the same schema and errors name the flag. */
export function serverFlagOverrides(flags: ServerFlagValues): FlagOverride[] {
  const port = flags.serverPort;
  return [
    { key: 'trust_domain', flag: 'trustDomain', value: flags.trustDomain },
    { key: 'bind_address', flag: 'bindAddress', value: flags.bindAddress },
    // A numeric flag arrives as text; the schema wants a number, and still rejects "abc".
    {
      key: 'bind_port',
      flag: 'serverPort',
      value: typeof port === 'string' && /^\d+$/.test(port) ? Number(port) : port,
    },
    { key: 'socket_path', flag: 'socketPath', value: flags.socketPath },
    { key: 'data_dir', flag: 'dataDir', value: flags.dataDir },
    { key: 'log_level', flag: 'logLevel', value: flags.logLevel },
  ];
}

/**
 * Reads and validates a server configuration file.
 * @throws ConfigError listing every problem with its key (and line, or the flag that set it).
 */
export function loadServerConfig(file: string, options: LoadYamlConfigOptions = {}): ServerConfig {
  return loadYamlConfig(file, ServerConfigSchema, options);
}

/** {@link loadServerConfig} for YAML text in hand (tests, `validate` on stdin). */
export function parseServerConfig(text: string, options: LoadYamlConfigOptions & { file?: string } = {}): ServerConfig {
  return parseYamlConfig(text, ServerConfigSchema, options);
}

/**
 * Advice that does not stop the server (SPIRE logs the same): a CA lifetime shorter than six
 * default SVID lifetimes means SVIDs signed late in a CA's life get shorter TTLs than asked.
 */
export function serverConfigWarnings(config: ServerConfig): string[] {
  const warnings: string[] = [];
  if (config.ca_ttl < CA_TTL_TO_SVID_TTL_RATIO * config.default_x509_svid_ttl) {
    warnings.push(
      `default_x509_svid_ttl (${formatDuration(config.default_x509_svid_ttl)}) is long for ca_ttl ` +
        `(${formatDuration(config.ca_ttl)}): SVIDs signed late in a CA's life are cut short; set ca_ttl to ` +
        `${formatDuration(CA_TTL_TO_SVID_TTL_RATIO * config.default_x509_svid_ttl)} or more`,
    );
  }
  return warnings;
}
