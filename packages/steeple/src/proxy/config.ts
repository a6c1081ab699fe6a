/**
 * The proxy's configuration (`steeple proxy run -config proxy.yaml`): where its identity
 * comes from, the inbound listeners (mTLS termination in front of a local app), the
 * outbound listeners (mTLS origination to an upstream), the policy file, the audit log,
 * health checks and metrics. Unknown keys are errors with a did-you-mean; relative file
 * paths are resolved against the configuration file's directory.
 *
 * ```yaml
 * identity:
 *   files: { cert: /etc/steeple/svid.pem, key: /etc/steeple/svid.key, bundle: /etc/steeple/bundle.pem }
 * inbound:
 *   - { name: web, listen: "0.0.0.0:15006", target: "127.0.0.1:8080", protocol: http, mode: STRICT }
 * outbound:
 *   - { name: billing, listen: "127.0.0.1:15001", upstream: "billing.internal:15006",
 *       protocol: http, upstream_id: "spiffe://example.org/billing" }
 * policy: { file: policy.yaml }
 * audit: { output: file, path: /var/log/steeple/audit.log }
 * ```
 * @module
 */
import { isAbsolute, resolve } from 'node:path';
import { SpiffeId, TrustDomain } from '@steeple/spiffe/core';
import * as z from 'zod/mini';
import { durationSchema } from '../common/config/duration.js';
import { healthChecksSchema } from '../common/config/health-checks-schema.js';
import { type LoadYamlConfigOptions, loadYamlConfig } from '../common/config/load-yaml.js';
import { logLevelSchema } from '../common/config/log-level-schema.js';
import { telemetrySchema } from '../common/config/telemetry-schema.js';
import { type HostPort, parseHostPort } from './net/host-port.js';

/** Istio's PeerAuthentication modes. */
export const PEER_AUTHENTICATION_MODES = ['STRICT', 'PERMISSIVE', 'DISABLE'] as const;
export type PeerAuthenticationMode = (typeof PEER_AUTHENTICATION_MODES)[number];

export const LISTENER_PROTOCOLS = ['tcp', 'http'] as const;
export type ListenerProtocol = (typeof LISTENER_PROTOCOLS)[number];

const nonEmpty = z.string().check(z.minLength(1));
const nameSchema = z
  .string()
  .check(z.regex(/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/, 'must be 1-63 characters of a-z, A-Z, 0-9, ".", "_", "-"'));

function hostPortSchema(what: string, allowPortZero: boolean) {
  return z.pipe(
    z.string(),
    z.transform((input: string, ctx): HostPort => {
      const parsed = parseHostPort(input, { allowPortZero });
      if (typeof parsed === 'string') {
        ctx.issues.push({
          code: 'custom',
          message: `${JSON.stringify(input)} is not a valid ${what}: ${parsed}`,
          input,
        });
        return z.NEVER;
      }
      return parsed;
    }),
  );
}

/** A string turned into a value by `tryParse`; its Error's message becomes the issue. */
function parsedWith<T>(tryParse: (input: string) => T | Error) {
  return z.pipe(
    z.string(),
    z.transform((input: string, ctx): Exclude<T, Error> => {
      const value = tryParse(input);
      if (value instanceof Error) {
        ctx.issues.push({ code: 'custom', message: value.message, input });
        return z.NEVER;
      }
      return value as Exclude<T, Error>;
    }),
  );
}

const spiffeIdSchema = parsedWith((input) => SpiffeId.tryParse(input));
const trustDomainSchema = parsedWith((input) => TrustDomain.tryParse(input));

const filesIdentitySchema = z.strictObject({
  /** PEM: the X.509-SVID leaf first, then intermediates. */
  cert: nonEmpty,
  /** PEM: the SVID's unencrypted PKCS#8 private key. */
  key: nonEmpty,
  /**
   * Trust bundle: PEM certificates (the bundle of the SVID's own trust domain), a SPIFFE
   * bundle (JWKS, own trust domain) or a bundle map `{"trust_domains": {...}}` (federation).
   */
  bundle: nonEmpty,
  /** Files are also re-read this often, in case change notifications are missed. */
  poll_interval: z.prefault(durationSchema({ min: 1 }), '5s'),
});

const identitySchema = z
  .prefault(
    z.strictObject({
      files: z.optional(filesIdentitySchema),
      workload_api: z.optional(z.strictObject({ socket_path: z.optional(nonEmpty) })),
    }),
    {},
  )
  .check(
    z.superRefine((value, ctx) => {
      if (value.files !== undefined && value.workload_api !== undefined) {
        ctx.addIssue({ code: 'custom', message: 'set either "files" or "workload_api", not both', path: [] });
      }
    }),
  );

const inboundSchema = z.strictObject({
  /** Names the listener in audit records, metrics and policy selectors. */
  name: nameSchema,
  /** Where callers connect, `host:port` (`0.0.0.0:15006`, `[::]:15006`). */
  listen: hostPortSchema('listen address', true),
  /** The local app, `host:port`, reached in plaintext. */
  target: hostPortSchema('target address', false),
  protocol: z.prefault(z.enum(LISTENER_PROTOCOLS), 'tcp'),
  mode: z.prefault(z.enum(PEER_AUTHENTICATION_MODES), 'STRICT'),
  /** How HTTP/2 callers are forwarded to the app: as HTTP/1.1 (default) or HTTP/2 without TLS. */
  app_protocol: z.prefault(z.enum(['http1', 'h2c']), 'http1'),
  handshake_timeout: z.prefault(durationSchema({ min: 1 }), '10s'),
  /**
   * Let callers resume a TLS session (session tickets): no certificate exchange or
   * public-key work on their next connections. Only for a certificate this proxy verified
   * in a full handshake, still valid and under the bundles in force; re-authorized each time.
   * Off by default: issuing the tickets costs every full handshake ≈ 29 % more CPU with
   * Node 20's OpenSSL 3.0 (docs/proxy.md, "Session resumption").
   */
  session_resumption: z.prefault(z.boolean(), false),
  /** A connection with no traffic either way for this long is closed; 0 never. */
  idle_timeout: z.prefault(durationSchema(), '1h'),
  /** PERMISSIVE: a caller that sends nothing for this long is taken as plaintext (server-speaks-first protocols). */
  protocol_detection_timeout: z.prefault(durationSchema(), '1s'),
});

const outboundSchema = z
  .strictObject({
    name: nameSchema,
    /** Where the local app connects in plaintext, `host:port`; keep it on loopback. */
    listen: hostPortSchema('listen address', true),
    /** The upstream's mTLS endpoint (usually its inbound proxy), `host:port`. */
    upstream: hostPortSchema('upstream address', false),
    protocol: z.prefault(z.enum(LISTENER_PROTOCOLS), 'tcp'),
    /** The upstream must present exactly this SPIFFE ID … */
    upstream_id: z.optional(spiffeIdSchema),
    /** … or any ID of this trust domain. */
    upstream_trust_domain: z.optional(trustDomainSchema),
    /** TLS server name sent to the upstream (SNI); default none. */
    sni: z.optional(nonEmpty),
    connect_timeout: z.prefault(durationSchema({ min: 1 }), '10s'),
    idle_timeout: z.prefault(durationSchema(), '1h'),
    /** HTTP: idle upstream connections kept for reuse. */
    max_idle_connections: z.prefault(z.number().check(z.int(), z.minimum(0), z.maximum(10_000)), 64),
    /** HTTP: an idle pooled upstream connection is closed after this long. */
    pool_idle_timeout: z.prefault(durationSchema({ min: 1 }), '60s'),
  })
  .check(
    z.superRefine((value, ctx) => {
      const n = Number(value.upstream_id !== undefined) + Number(value.upstream_trust_domain !== undefined);
      if (n !== 1) {
        ctx.addIssue({
          code: 'custom',
          message:
            n === 0
              ? 'set "upstream_id" (exact SPIFFE ID) or "upstream_trust_domain" (any member): an upstream must be verified'
              : 'set either "upstream_id" or "upstream_trust_domain", not both',
          path: ['upstream_id'],
        });
      }
    }),
  );

const auditSchema = z
  .prefault(
    z.strictObject({
      /** `stdout`, `file` (with size-based rotation) or `none`. */
      output: z.prefault(z.enum(['stdout', 'file', 'none']), 'stdout'),
      path: z.optional(nonEmpty),
      /** Rotate when the file would grow past this many bytes (default 100 MiB). */
      max_size_bytes: z.prefault(z.number().check(z.int(), z.minimum(4096)), 100 * 1024 * 1024),
      /** Rotated files kept: `audit.log.1` … `audit.log.N`. */
      max_files: z.prefault(z.number().check(z.int(), z.minimum(1), z.maximum(1000)), 5),
      /** `all` records every connection and request; `matched` only denials and AUDIT policy matches. */
      records: z.prefault(z.enum(['all', 'matched']), 'all'),
      /** Records are written in batches at least this often (milliseconds). */
      flush_interval_ms: z.prefault(z.number().check(z.int(), z.minimum(1), z.maximum(10_000)), 100),
    }),
    {},
  )
  .check(
    z.superRefine((value, ctx) => {
      if (value.output === 'file' && value.path === undefined) {
        ctx.addIssue({ code: 'custom', message: 'is required when output is "file"', path: ['path'] });
      }
    }),
  );

export const ProxyConfigSchema = z
  .strictObject({
    log_level: z.prefault(logLevelSchema, 'info'),
    identity: identitySchema,
    inbound: z.prefault(z.array(inboundSchema), []),
    outbound: z.prefault(z.array(outboundSchema), []),
    policy: z.prefault(
      z.strictObject({
        /** Authorization policies (YAML); reloaded when the file changes. Without it every verified caller is allowed. */
        file: z.optional(nonEmpty),
        poll_interval: z.prefault(durationSchema({ min: 1 }), '5s'),
      }),
      {},
    ),
    audit: auditSchema,
    health_checks: healthChecksSchema,
    telemetry: telemetrySchema,
  })
  .check(
    z.superRefine((value, ctx) => {
      if (value.inbound.length + value.outbound.length === 0) {
        ctx.addIssue({
          code: 'custom',
          message: 'configure at least one inbound or outbound listener',
          path: ['inbound'],
        });
      }
      const seen = new Map<string, string>();
      const check = (name: string, path: (string | number)[]) => {
        const first = seen.get(name);
        if (first !== undefined) {
          ctx.addIssue({ code: 'custom', message: `listener name "${name}" is already used by ${first}`, path });
        } else {
          seen.set(name, path.slice(0, 2).join('.'));
        }
      };
      value.inbound.forEach((l, i) => {
        check(l.name, ['inbound', i, 'name']);
      });
      value.outbound.forEach((l, i) => {
        check(l.name, ['outbound', i, 'name']);
      });
    }),
  );

export type ProxyConfig = z.output<typeof ProxyConfigSchema>;
export type InboundConfig = ProxyConfig['inbound'][number];
export type OutboundConfig = ProxyConfig['outbound'][number];
export type AuditConfig = ProxyConfig['audit'];
export type FilesIdentityConfig = z.output<typeof filesIdentitySchema>;

/**
 * Loads and validates a proxy configuration file; relative paths inside it (identity files,
 * policy file, audit path) are resolved against the file's directory.
 * @throws ConfigError listing every problem with its key path and line.
 */
export function loadProxyConfig(file: string, options: LoadYamlConfigOptions = {}): ProxyConfig {
  const config = loadYamlConfig(file, ProxyConfigSchema, options);
  return resolvePaths(config, resolve(file, '..'));
}

function resolvePaths(config: ProxyConfig, base: string): ProxyConfig {
  const at = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const files = config.identity.files;
  return Object.freeze({
    ...config,
    identity: Object.freeze({
      ...config.identity,
      ...(files === undefined
        ? {}
        : { files: Object.freeze({ ...files, cert: at(files.cert), key: at(files.key), bundle: at(files.bundle) }) }),
    }),
    policy: Object.freeze({ ...config.policy, ...(config.policy.file ? { file: at(config.policy.file) } : {}) }),
    audit: Object.freeze({ ...config.audit, ...(config.audit.path ? { path: at(config.audit.path) } : {}) }),
  });
}
