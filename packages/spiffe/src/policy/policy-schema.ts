/**
 * The policy file: authorization policies with Istio's AuthorizationPolicy fields and
 * semantics, SPIFFE IDs as principals. Every value is checked here, so a mistake is
 * reported with its key path and line (`policies[0].rules[1].from[0].source.principals[2]:
 * "spiffe://x/*y" …`) and a file that loads always compiles.
 *
 * ```yaml
 * policies:
 *   - name: deny-admin-from-outside
 *     action: DENY
 *     rules:
 *       - from: [{ source: { notTrustDomains: [example.org] } }]
 *         to: [{ operation: { paths: ["/admin*"] } }]
 *   - name: frontend-reads
 *     action: ALLOW
 *     rules:
 *       - from: [{ source: { principals: ["spiffe://example.org/ns/web/*"] } }]
 *         to: [{ operation: { methods: [GET, HEAD], notPaths: ["/internal/*"] } }]
 *         when: [{ key: "request.headers[x-env]", values: [prod] }]
 * ```
 * @module
 */
import { BlockList, isIP } from 'node:net';
import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';
import { SpiffeId } from '../spiffeid/spiffe-id.js';
import { TrustDomain } from '../spiffeid/trust-domain.js';
import { brokenPatternRule } from './string-match.js';

// zod/mini loads no message locale (its issues would all say "Invalid input"); zod classic
// installs English when its first schema is built. Do the same, unless a locale is already set,
// so that issue messages stay zod's English ones.
if (z.config().localeError === undefined) z.config(en());

export const POLICY_ACTIONS = ['ALLOW', 'DENY', 'AUDIT'] as const;
export type PolicyAction = (typeof POLICY_ACTIONS)[number];

/** `when` keys this proxy understands (Istio's names). */
export const CONDITION_KEYS = [
  'request.headers[<name>]',
  'source.ip',
  'remote.ip',
  'source.principal',
  'source.namespace',
  'source.trustDomain',
  'destination.ip',
  'destination.port',
  'connection.sni',
] as const;

const HEADER_KEY = /^request\.headers\[([!#$%&'*+.^_`|~0-9A-Za-z-]+)\]$/;
const SIMPLE_KEYS: ReadonlySet<string> = new Set(CONDITION_KEYS.filter((k) => !k.includes('<')));

/** Adds `spiffe://` to an Istio-style principal (`example.org/ns/web`) that lacks it. */
export function canonicalPrincipal(pattern: string): string {
  if (pattern === '*' || pattern.startsWith('*') || pattern.startsWith('spiffe://')) return pattern;
  return `spiffe://${pattern}`;
}

const principalPattern = z.string().check(
  z.superRefine((input: string, ctx) => {
    const broken = brokenPatternRule(input);
    if (broken) return ctx.addIssue({ code: 'custom', message: `${JSON.stringify(input)}: ${broken}` });
    if (input.includes('*')) return;
    const id = SpiffeId.tryParse(canonicalPrincipal(input));
    if (id instanceof Error) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(input)}: ${id.rule}` });
  }),
);

const trustDomainName = z.string().check(
  z.superRefine((input: string, ctx) => {
    const td = TrustDomain.tryParse(input);
    if (td instanceof Error) ctx.addIssue({ code: 'custom', message: td.message });
  }),
);

const plainPattern = z.string().check(
  z.superRefine((input: string, ctx) => {
    const broken = brokenPatternRule(input);
    if (broken) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(input)}: ${broken}` });
  }),
);

const pathPattern = plainPattern.check(
  z.superRefine((input: string, ctx) => {
    if (!input.startsWith('/') && !input.startsWith('*')) {
      ctx.addIssue({
        code: 'custom',
        message: `${JSON.stringify(input)}: a path starts with "/" (or "*" for a suffix)`,
      });
    }
  }),
);

const methodName = z
  .string()
  .check(z.regex(/^([A-Z][A-Z-]*|\*)$/, 'must be an upper-case HTTP method such as GET or POST (or "*")'));

/** Checks an address or CIDR block (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`). */
export function brokenIpBlockRule(input: string): string | undefined {
  const [address, prefix, extra] = input.split('/');
  if (extra !== undefined || address === undefined) return 'expected an address or address/prefix';
  const family = isIP(address);
  if (family === 0) return `"${address}" is not an IPv4 or IPv6 address`;
  if (prefix === undefined) return undefined;
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > (family === 4 ? 32 : 128)) {
    return `prefix "/${prefix}" is out of range for IPv${family}`;
  }
  return undefined;
}

const ipBlock = z.string().check(
  z.superRefine((input: string, ctx) => {
    const broken = brokenIpBlockRule(input);
    if (broken) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(input)}: ${broken}` });
  }),
);

const portValue = z.union([z.number(), z.string()]).check(
  z.superRefine((input: number | string, ctx) => {
    const n = typeof input === 'number' ? input : /^\d{1,5}$/.test(input) ? Number(input) : Number.NaN;
    if (!Number.isInteger(n) || n < 1 || n > 65_535) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(input)} is not a port number (1-65535)` });
    }
  }),
);

const list = <T extends z.ZodMiniType>(item: T) => z.optional(z.array(item).check(z.minLength(1)));

const sourceSchema = z.strictObject({
  principals: list(principalPattern),
  notPrincipals: list(principalPattern),
  trustDomains: list(trustDomainName),
  notTrustDomains: list(trustDomainName),
  namespaces: list(plainPattern),
  notNamespaces: list(plainPattern),
  ipBlocks: list(ipBlock),
  notIpBlocks: list(ipBlock),
});

const operationSchema = z.strictObject({
  hosts: list(plainPattern),
  notHosts: list(plainPattern),
  ports: list(portValue),
  notPorts: list(portValue),
  methods: list(methodName),
  notMethods: list(methodName),
  paths: list(pathPattern),
  notPaths: list(pathPattern),
});

const conditionSchema = z
  .strictObject({
    key: z.string(),
    values: list(z.string()),
    notValues: list(z.string()),
  })
  .check(
    z.superRefine((cond, ctx) => {
      const { key } = cond;
      if (!SIMPLE_KEYS.has(key) && !HEADER_KEY.test(key)) {
        ctx.addIssue({
          code: 'custom',
          path: ['key'],
          message: `${JSON.stringify(key)} is not a supported condition key (supported: ${CONDITION_KEYS.join(', ')})`,
        });
        return;
      }
      if (cond.values === undefined && cond.notValues === undefined) {
        ctx.addIssue({ code: 'custom', path: ['values'], message: 'a condition needs "values" or "notValues"' });
      }
      const check = (values: readonly string[] | undefined, field: string) =>
        values?.forEach((v, i) => {
          const broken =
            key === 'source.ip' || key === 'remote.ip' || key === 'destination.ip'
              ? brokenIpBlockRule(v)
              : key === 'destination.port'
                ? /^\d{1,5}$/.test(v) && Number(v) >= 1 && Number(v) <= 65_535
                  ? undefined
                  : 'is not a port number (1-65535)'
                : brokenPatternRule(v);
          if (broken) ctx.addIssue({ code: 'custom', path: [field, i], message: `${JSON.stringify(v)}: ${broken}` });
        });
      check(cond.values, 'values');
      check(cond.notValues, 'notValues');
    }),
  );

const ruleSchema = z.strictObject({
  from: z.optional(z.array(z.strictObject({ source: sourceSchema }))),
  to: z.optional(z.array(z.strictObject({ operation: operationSchema }))),
  when: z.optional(z.array(conditionSchema)),
});

const policySchema = z.strictObject({
  name: z
    .string()
    .check(z.regex(/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,252}$/, 'must be 1-253 characters of a-z, A-Z, 0-9, ".", "_", "-"')),
  action: z.prefault(z.enum(POLICY_ACTIONS), 'ALLOW'),
  /** Evaluate and record the would-be decision without enforcing it (Istio's `istio.io/dry-run`). */
  dryRun: z.prefault(z.boolean(), false),
  /** Inbound listeners the policy applies to, by name; default all. */
  listeners: z.optional(z.array(z.string().check(z.minLength(1))).check(z.minLength(1))),
  /** Absent or empty: the policy matches nothing (an ALLOW policy without rules allows nothing). */
  rules: z.prefault(z.array(ruleSchema), []),
});

export const PolicyFileSchema = z
  .strictObject({
    policies: z.prefault(z.array(policySchema), []),
  })
  .check(
    z.superRefine((file, ctx) => {
      const seen = new Set<string>();
      file.policies.forEach((p, i) => {
        if (seen.has(p.name)) {
          ctx.addIssue({
            code: 'custom',
            path: ['policies', i, 'name'],
            message: `policy "${p.name}" is defined twice`,
          });
        }
        seen.add(p.name);
      });
    }),
  );

export type PolicyFile = z.output<typeof PolicyFileSchema>;
/** A policy document as written (defaults not yet filled in): what `parsePolicyFile` accepts. */
export type PolicyFileInput = z.input<typeof PolicyFileSchema>;
export type PolicyDocument = PolicyFile['policies'][number];
export type RuleDocument = PolicyDocument['rules'][number];
export type SourceDocument = z.output<typeof sourceSchema>;
export type OperationDocument = z.output<typeof operationSchema>;
export type ConditionDocument = z.output<typeof conditionSchema>;

/** The header name of a `request.headers[name]` key, lower-cased, or undefined for other keys. */
export function headerOfConditionKey(key: string): string | undefined {
  return HEADER_KEY.exec(key)?.[1]?.toLowerCase();
}

/** A block list holding the given addresses and CIDR blocks (already validated). */
export function blockListOf(blocks: readonly string[]): BlockList {
  const list = new BlockList();
  for (const block of blocks) {
    const [address, prefix] = block.split('/') as [string, string | undefined];
    const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) list.addAddress(address, type);
    else list.addSubnet(address, Number(prefix), type);
  }
  return list;
}
