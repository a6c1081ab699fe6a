/**
 * Turns validated policy documents into predicates, once per load, so that evaluating
 * a request is a few set look-ups and string comparisons.
 *
 * Istio's rules: fields of a source or operation are ANDed, values of one field ORed;
 * `not*` fields match when the value is none of them; `from`, `to` and `when` of a
 * rule are ANDed and each list is ORed. On TCP traffic, HTTP-only fields (hosts,
 * methods, paths, request headers) make an ALLOW rule match nothing, while DENY and
 * AUDIT rules drop them (the safe direction both ways).
 * @module
 */
import type { BlockList } from 'node:net';
import { type Decision, namespaceOfPrincipal, type RequestAttributes, trustDomainOfPrincipal } from './attributes.js';
import {
  blockListOf,
  type ConditionDocument,
  canonicalPrincipal,
  headerOfConditionKey,
  type OperationDocument,
  type PolicyAction,
  type PolicyDocument,
  type RuleDocument,
  type SourceDocument,
} from './policy-schema.js';
import { matchAnyPattern } from './string-match.js';

type Predicate = (a: RequestAttributes) => boolean;

export interface CompiledRule {
  readonly index: number;
  /** What a match on this rule reports (built once). */
  readonly match: {
    readonly policy: string;
    readonly rule: number;
    readonly deny: string;
    readonly allow: string;
    /**
     * The decisions this rule produces as the deciding DENY or ALLOW rule, built once and
     * frozen: evaluation allocates nothing in the common case, and callers may cache per
     * decision object (metrics label sets, for instance).
     */
    readonly denyDecision: Decision;
    readonly allowDecision: Decision;
  };
  /** Whether the rule names HTTP-only attributes. */
  readonly httpOnly: boolean;
  /** Whether the rule looks at request headers (`when` on `request.headers[…]`). */
  readonly usesHeaders: boolean;
  /** The rule's predicate for HTTP requests. */
  readonly matchHttp: Predicate;
  /** The rule's predicate for TCP connections, with HTTP-only fields left out. */
  readonly matchTcp: Predicate;
}

export interface CompiledPolicy {
  readonly name: string;
  readonly action: PolicyAction;
  readonly dryRun: boolean;
  /** Listener names it applies to; undefined for all. */
  readonly listeners: ReadonlySet<string> | undefined;
  readonly rules: readonly CompiledRule[];
}

const always: Predicate = () => true;

function and(preds: readonly Predicate[]): Predicate {
  if (preds.length === 0) return always;
  if (preds.length === 1) return preds[0] as Predicate;
  return (a) => {
    for (const p of preds) if (!p(a)) return false;
    return true;
  };
}

function or(preds: readonly Predicate[]): Predicate {
  if (preds.length === 1) return preds[0] as Predicate;
  return (a) => {
    for (const p of preds) if (p(a)) return true;
    return false;
  };
}

/** Adds `pred` for `values` and `not(pred)` for `notValues`. */
function field<T>(
  out: Predicate[],
  values: readonly T[] | undefined,
  notValues: readonly T[] | undefined,
  build: (values: readonly T[]) => Predicate,
): void {
  if (values !== undefined) out.push(build(values));
  if (notValues !== undefined) {
    const p = build(notValues);
    out.push((a) => !p(a));
  }
}

function principalMatcher(patterns: readonly string[]): (principal: string) => boolean {
  return matchAnyPattern(patterns.map(canonicalPrincipal));
}

function ipv(address: string): { address: string; type: 'ipv4' | 'ipv6' } {
  if (address.startsWith('::ffff:') && address.includes('.')) return { address: address.slice(7), type: 'ipv4' };
  return { address, type: address.includes(':') ? 'ipv6' : 'ipv4' };
}

function inBlocks(list: BlockList, address: string): boolean {
  if (address === '') return false;
  const { address: a, type } = ipv(address);
  return list.check(a, type);
}

function compileSource(s: SourceDocument): Predicate {
  const preds: Predicate[] = [];
  field(preds, s.principals, s.notPrincipals, (v) => {
    const m = principalMatcher(v);
    return (a) => m(a.principal ?? '');
  });
  field(preds, s.trustDomains, s.notTrustDomains, (v) => {
    const tds = new Set(v.map((td) => td.replace(/^spiffe:\/\//, '')));
    return (a) => a.principal !== undefined && tds.has(trustDomainOfPrincipal(a.principal));
  });
  field(preds, s.namespaces, s.notNamespaces, (v) => {
    const m = matchAnyPattern(v);
    return (a) => m(a.principal === undefined ? '' : namespaceOfPrincipal(a.principal));
  });
  field(preds, s.ipBlocks, s.notIpBlocks, (v) => {
    const list = blockListOf(v);
    return (a) => inBlocks(list, a.sourceIp);
  });
  return and(preds);
}

function portNumbers(values: readonly (string | number)[]): ReadonlySet<number> {
  return new Set(values.map(Number));
}

function compileOperation(o: OperationDocument, http: boolean): Predicate {
  const preds: Predicate[] = [];
  field(preds, o.ports, o.notPorts, (v) => {
    const ports = portNumbers(v);
    return (a) => ports.has(a.destinationPort);
  });
  if (http) {
    field(preds, o.methods, o.notMethods, (v) => {
      const any = v.includes('*');
      const methods = new Set(v);
      return (a) => a.method !== undefined && (any || methods.has(a.method));
    });
    field(preds, o.paths, o.notPaths, (v) => {
      const m = matchAnyPattern(v);
      return (a) => m(a.path ?? '');
    });
    field(preds, o.hosts, o.notHosts, (v) => {
      const m = matchAnyPattern(v, true);
      return (a) => {
        const host = a.host ?? '';
        if (m(host)) return true;
        // Istio matches the host with or without its port.
        const colon = host.lastIndexOf(':');
        return colon > 0 && !host.endsWith(']') && m(host.slice(0, colon));
      };
    });
  }
  return and(preds);
}

function compileCondition(c: ConditionDocument, http: boolean): Predicate | undefined {
  const header = headerOfConditionKey(c.key);
  const build = (values: readonly string[]): Predicate => {
    if (header !== undefined) {
      const m = matchAnyPattern(values);
      return (a) => m(a.header?.(header) ?? '');
    }
    switch (c.key) {
      case 'source.ip':
      case 'remote.ip': {
        const list = blockListOf(values);
        return (a) => inBlocks(list, a.sourceIp);
      }
      case 'destination.ip': {
        const list = blockListOf(values);
        return (a) => inBlocks(list, a.destinationIp);
      }
      case 'destination.port': {
        const ports = portNumbers(values);
        return (a) => ports.has(a.destinationPort);
      }
      case 'source.principal': {
        const m = principalMatcher(values);
        return (a) => m(a.principal ?? '');
      }
      case 'source.namespace': {
        const m = matchAnyPattern(values);
        return (a) => m(a.principal === undefined ? '' : namespaceOfPrincipal(a.principal));
      }
      case 'source.trustDomain': {
        const m = matchAnyPattern(values.map((v) => v.replace(/^spiffe:\/\//, '')));
        return (a) => m(a.principal === undefined ? '' : trustDomainOfPrincipal(a.principal));
      }
      case 'connection.sni': {
        const m = matchAnyPattern(values, true);
        return (a) => m(a.sni ?? '');
      }
      default:
        throw new TypeError(`unvalidated condition key ${c.key}`);
    }
  };
  if (header !== undefined && !http) return undefined;
  const preds: Predicate[] = [];
  field(preds, c.values, c.notValues, build);
  return and(preds);
}

function usesHeaders(rule: RuleDocument): boolean {
  return rule.when?.some((c) => headerOfConditionKey(c.key) !== undefined) === true;
}

function isHttpOnly(rule: RuleDocument): boolean {
  const op = rule.to?.some(({ operation: o }) =>
    [o.hosts, o.notHosts, o.methods, o.notMethods, o.paths, o.notPaths].some((v) => v !== undefined),
  );
  const cond = rule.when?.some((c) => headerOfConditionKey(c.key) !== undefined);
  return op === true || cond === true;
}

function compileRule(rule: RuleDocument, index: number, http: boolean): Predicate {
  const parts: Predicate[] = [];
  if (rule.from !== undefined && rule.from.length > 0) parts.push(or(rule.from.map((f) => compileSource(f.source))));
  if (rule.to !== undefined && rule.to.length > 0)
    parts.push(or(rule.to.map((t) => compileOperation(t.operation, http))));
  for (const c of rule.when ?? []) {
    const p = compileCondition(c, http);
    if (p !== undefined) parts.push(p);
  }
  void index;
  return and(parts);
}

/** Compiles one validated policy document. */
export function compilePolicy(doc: PolicyDocument): CompiledPolicy {
  const rules = doc.rules.map((rule, index): CompiledRule => {
    const httpOnly = isHttpOnly(rule);
    const matchHttp = compileRule(rule, index, true);
    const matchTcp = httpOnly && doc.action === 'ALLOW' ? () => false : compileRule(rule, index, false);
    const deny = `denied by policy ${doc.name}`;
    const allow = `allowed by policy ${doc.name}`;
    const match = {
      policy: doc.name,
      rule: index,
      deny,
      allow,
      denyDecision: Object.freeze({ allowed: false, policy: doc.name, rule: index, reason: deny }),
      allowDecision: Object.freeze({ allowed: true, policy: doc.name, rule: index, reason: allow }),
    };
    return { index, match, httpOnly, usesHeaders: usesHeaders(rule), matchHttp, matchTcp };
  });
  return {
    name: doc.name,
    action: doc.action,
    dryRun: doc.dryRun,
    listeners: doc.listeners === undefined ? undefined : new Set(doc.listeners),
    rules,
  };
}
