/**
 * The `federation` section of the server config, with SPIRE's key names:
 *
 * ```yaml
 * federation:
 *   bundle_endpoint:                 # serve this trust domain's bundle to peers
 *     address: 0.0.0.0
 *     port: 8443
 *     refresh_hint: 5m               # spiffe_refresh_hint of the served bundle
 *     profile:
 *       https_spiffe: {}             # present the server's SVID (spiffe://<td>/spire/server)
 *       # https_web:
 *       #   serving_cert_file: { cert_file_path: /etc/steeple/web.crt, key_file_path: /etc/steeple/web.key }
 *   federates_with:                  # fetch these trust domains' bundles
 *     partner.example:
 *       bundle_endpoint_url: https://spire.partner.example:8443
 *       bundle_endpoint_profile:
 *         https_spiffe:
 *           endpoint_spiffe_id: spiffe://partner.example/spire/server
 *           trust_domain_bundle_path: /etc/steeple/partner-bundle.json   # first contact only
 *     web.example:
 *       bundle_endpoint_url: https://bundles.web.example/bundle.json
 *       bundle_endpoint_profile: { https_web: {} }
 * ```
 *
 * Embed {@link federationConfigSchema} under `federation:` (optional) and run
 * {@link federationConfigIssues} among the rules between keys (it needs `trust_domain`).
 * @module
 */
import { SpiffeId, TrustDomain } from '@steeple/spiffe';
import * as z from 'zod/mini';
import { durationSchema } from '../../common/config/duration.js';
import { portSchema } from '../../common/config/health-checks-schema.js';

/** Default port of the bundle endpoint (SPIRE uses 443, which needs privileges). */
export const DEFAULT_BUNDLE_ENDPOINT_PORT = 8443;
/** Default `refresh_hint` served with the bundle: 5 minutes (F-7). */
export const DEFAULT_SERVED_REFRESH_HINT_SECONDS = 300;

const nonEmpty = z.string().check(z.minLength(1));

/**
 * The rule of F-3 that a bundle endpoint URL breaks, or undefined when it obeys them all. The
 * text does not repeat the URL (it may carry a password); name it with {@link displayUrl}.
 */
export function bundleEndpointUrlProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'is not a URL';
  }
  if (url.protocol !== 'https:') return 'must use the https scheme (F-3)';
  if (url.username !== '' || url.password !== '') return 'must not contain user information (F-3)';
  if (url.hostname === '') return 'has no host';
  return undefined;
}

/** A URL for messages and logs, without user information. */
export function displayUrl(value: string | URL): string {
  try {
    const url = new URL(value.toString());
    url.username = '';
    url.password = '';
    return JSON.stringify(url.toString());
  } catch {
    return JSON.stringify(String(value).slice(0, 200));
  }
}

const bundleEndpointUrlSchema = z.string().check(
  z.superRefine((value: string, ctx) => {
    const problem = bundleEndpointUrlProblem(value);
    if (problem !== undefined) {
      ctx.addIssue({ code: 'custom', message: `${displayUrl(value)} ${problem}`, input: value });
    }
  }),
);

const spiffeIdSchema = z.pipe(
  z.string(),
  z.transform((input: string, ctx) => {
    const id = SpiffeId.tryParse(input);
    if (id instanceof Error) {
      ctx.issues.push({ code: 'custom', message: `${JSON.stringify(input)} is not a SPIFFE ID: ${id.message}`, input });
      return z.NEVER;
    }
    return id.toString();
  }),
);

/** "Exactly one of these keys", reported on the object itself. */
function exactlyOne(keys: readonly string[]) {
  return (value: Record<string, unknown>, ctx: z.core.$RefinementCtx) => {
    const given = keys.filter((k) => value[k] !== undefined);
    if (given.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message:
          given.length === 0
            ? `choose a profile: ${keys.join(' or ')}`
            : `choose one profile, not ${given.join(' and ')}`,
        input: value,
      });
    }
  };
}

const servedProfileSchema = z.pipe(
  z
    .strictObject({
      https_spiffe: z.optional(z.nullable(z.strictObject({}))),
      https_web: z.optional(
        z.strictObject({
          serving_cert_file: z.strictObject({
            cert_file_path: nonEmpty,
            key_file_path: nonEmpty,
            /** How often the files are checked for a new certificate (SPIRE's key). */
            file_sync_interval: z.prefault(durationSchema({ min: 1 }), '1m'),
          }),
        }),
      ),
    })
    .check(z.superRefine(exactlyOne(['https_spiffe', 'https_web']))),
  z.transform((p) =>
    p.https_web !== undefined
      ? ({ type: 'https_web', ...p.https_web.serving_cert_file } as const)
      : ({ type: 'https_spiffe' } as const),
  ),
);

const bundleEndpointSchema = z.strictObject({
  address: z.prefault(nonEmpty, '0.0.0.0'),
  port: z.prefault(portSchema, DEFAULT_BUNDLE_ENDPOINT_PORT),
  /** Serve only this path (others get 404); any path when unset. */
  path: z.optional(z.string().check(z.startsWith('/', 'must start with "/"'))),
  refresh_hint: z.prefault(durationSchema({ min: 1, max: 7 * 86_400 }), '5m'),
  profile: z.prefault(servedProfileSchema, { https_spiffe: {} }),
});

const peerProfileSchema = z.pipe(
  z
    .strictObject({
      https_spiffe: z.optional(
        z.strictObject({
          endpoint_spiffe_id: spiffeIdSchema,
          /** The trust domain's bundle (SPIFFE JSON or PEM), used only while none is stored (first contact). */
          trust_domain_bundle_path: z.optional(nonEmpty),
        }),
      ),
      https_web: z.optional(z.nullable(z.strictObject({}))),
    })
    .check(z.superRefine(exactlyOne(['https_spiffe', 'https_web']))),
  z.transform((p) =>
    p.https_spiffe !== undefined
      ? ({
          type: 'https_spiffe',
          endpointSpiffeId: p.https_spiffe.endpoint_spiffe_id,
          ...(p.https_spiffe.trust_domain_bundle_path === undefined
            ? {}
            : { trustDomainBundlePath: p.https_spiffe.trust_domain_bundle_path }),
        } as const)
      : ({ type: 'https_web' } as const),
  ),
);

const federatesWithEntrySchema = z.strictObject({
  bundle_endpoint_url: bundleEndpointUrlSchema,
  bundle_endpoint_profile: peerProfileSchema,
});

type FederatesWithEntry = z.output<typeof federatesWithEntrySchema>;

const federatesWithSchema = z.pipe(
  z.record(z.string(), federatesWithEntrySchema),
  z.transform((record, ctx) => {
    const out: Record<string, FederatesWithEntry> = {};
    for (const [key, value] of Object.entries(record)) {
      const td = TrustDomain.tryParse(key);
      if (td instanceof Error) {
        ctx.issues.push({
          code: 'custom',
          path: [key],
          message: `${JSON.stringify(key)} is not a trust domain name: ${td.message}`,
          input: key,
        });
        continue;
      }
      if (out[td.name] !== undefined) {
        ctx.issues.push({
          code: 'custom',
          path: [key],
          message: `trust domain "${td.name}" is listed twice`,
          input: key,
        });
        continue;
      }
      out[td.name] = value;
    }
    return out;
  }),
);

/** `federation`; embed it in the server config schema as `federation: z.optional(federationConfigSchema)`. */
export const federationConfigSchema = z.strictObject({
  bundle_endpoint: z.optional(bundleEndpointSchema),
  federates_with: z.prefault(federatesWithSchema, {}),
});

export type FederationConfig = z.output<typeof federationConfigSchema>;
export type BundleEndpointConfig = z.output<typeof bundleEndpointSchema>;
export type FederatesWithConfig = FederationConfig['federates_with'][string];

/**
 * The rules that need the server's own trust domain: a server does not federate with
 * itself. Returns issues with paths relative to the `federation` key, for a superRefine.
 */
export function federationConfigIssues(
  config: FederationConfig | undefined,
  ownTrustDomain: string,
): { path: (string | number)[]; message: string }[] {
  if (config === undefined) return [];
  const issues: { path: (string | number)[]; message: string }[] = [];
  for (const name of Object.keys(config.federates_with)) {
    if (name === ownTrustDomain) {
      issues.push({
        path: ['federates_with', name],
        message: `"${name}" is this server's own trust domain; federate with other trust domains only`,
      });
    }
  }
  return issues;
}
