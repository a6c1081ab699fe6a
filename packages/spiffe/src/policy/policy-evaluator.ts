/**
 * Evaluates authorization policies with Istio's order: a matching DENY policy denies;
 * then, if any ALLOW policy applies, the request must match one; with no ALLOW policy
 * the request is allowed. AUDIT policies never change the decision, they mark the
 * record. Dry-run policies are evaluated the same way beside the enforced ones, and only
 * their would-be decision is reported.
 * @module
 */
import type { Decision, RequestAttributes } from './attributes.js';
import { type CompiledPolicy, type CompiledRule, compilePolicy } from './compile-policy.js';
import { parsePolicyFile } from './parse-policy.js';
import type { PolicyFile } from './policy-schema.js';

type Match = CompiledRule['match'];

/** The policies that apply to one listener and kind of traffic, split by action. */
interface ListenerPolicies {
  readonly deny: readonly CompiledPolicy[];
  readonly allow: readonly CompiledPolicy[];
  readonly audit: readonly CompiledPolicy[];
  /** Enforced plus dry-run policies, when dry-run policies apply; else undefined. */
  readonly shadow: ListenerPolicies | undefined;
  /** No applicable rule looks at the method, path, host or request headers. */
  readonly connectionScoped: boolean;
  /** No applicable rule looks at request headers. */
  readonly headerFree: boolean;
}

function firstMatch(policies: readonly CompiledPolicy[], a: RequestAttributes): Match | undefined {
  const http = a.kind === 'http';
  for (const p of policies) {
    for (const r of p.rules) {
      if (http ? r.matchHttp(a) : r.matchTcp(a)) return r.match;
    }
  }
  return undefined;
}

const ALLOW_NO_POLICY: Decision = Object.freeze({ allowed: true, reason: 'allowed: no ALLOW policy applies' });
const DENY_NO_MATCH: Decision = Object.freeze({ allowed: false, reason: 'denied: no ALLOW policy matched' });

function decide(set: ListenerPolicies, a: RequestAttributes): Decision {
  const denied = set.deny.length > 0 ? firstMatch(set.deny, a) : undefined;
  if (denied) return denied.denyDecision;
  if (set.allow.length === 0) return ALLOW_NO_POLICY;
  const allowed = firstMatch(set.allow, a);
  if (allowed) return allowed.allowDecision;
  return DENY_NO_MATCH;
}

/** An immutable set of compiled policies; build a new one to change policy. */
export class PolicyEvaluator {
  readonly policies: readonly CompiledPolicy[];
  readonly #byListener = new Map<string, ListenerPolicies>();

  constructor(policies: readonly CompiledPolicy[]) {
    this.policies = policies;
  }

  /** An evaluator for a validated policy file. */
  static fromFile(file: PolicyFile): PolicyEvaluator {
    return new PolicyEvaluator(file.policies.map(compilePolicy));
  }

  /**
   * An evaluator for a policy document given as a plain object (`{ policies: [...] }`, the
   * shape of the proxy's policy file; parse YAML or JSON yourself).
   * @throws PolicyError (`ERR_POLICY_INVALID`) naming every broken field by its key path.
   */
  static fromObject(raw: unknown): PolicyEvaluator {
    return PolicyEvaluator.fromFile(parsePolicyFile(raw));
  }

  /** Allows everything (no policies). */
  static allowAll(): PolicyEvaluator {
    return new PolicyEvaluator([]);
  }

  evaluate(a: RequestAttributes): Decision {
    const set = this.#forListener(a.listener);
    let decision = decide(set, a);
    const audit = set.audit.length > 0 ? firstMatch(set.audit, a) : undefined;
    if (audit)
      decision = {
        allowed: decision.allowed,
        policy: decision.policy,
        rule: decision.rule,
        reason: decision.reason,
        audit: { policy: audit.policy, rule: audit.rule },
      };
    if (set.shadow !== undefined) {
      const shadow = decide(set.shadow, a);
      const dryRun = {
        allowed: shadow.allowed,
        reason: shadow.reason,
        ...(shadow.policy === undefined ? {} : { policy: shadow.policy, rule: shadow.rule as number }),
      };
      decision = {
        allowed: decision.allowed,
        policy: decision.policy,
        rule: decision.rule,
        reason: decision.reason,
        audit: decision.audit,
        dryRun,
      };
    }
    return decision;
  }

  /**
   * Whether every decision for HTTP requests on `listener` depends on the connection alone
   * (caller, addresses, ports, SNI): true when no policy that applies there — enforced,
   * dry-run or AUDIT — has a rule on methods, paths, hosts or request headers. A server
   * may then evaluate once per connection and reuse the decision for its requests, for as
   * long as it uses this evaluator.
   */
  connectionScoped(listener: string): boolean {
    return this.#forListener(listener).connectionScoped;
  }

  /**
   * Whether every decision for HTTP requests on `listener` depends on the connection and
   * the request's method, path and host alone: true when no policy that applies there —
   * enforced, dry-run or AUDIT — has a condition on request headers. A server may then
   * reuse a decision for a later request on the same connection with the same method,
   * path and host, for as long as it uses this evaluator.
   */
  requestLineScoped(listener: string): boolean {
    return this.#forListener(listener).headerFree;
  }

  #forListener(listener: string): ListenerPolicies {
    let set = this.#byListener.get(listener);
    if (set === undefined) {
      const applies = this.policies.filter((p) => p.listeners === undefined || p.listeners.has(listener));
      const connectionScoped = applies.every((p) => p.rules.every((r) => !r.httpOnly));
      const headerFree = applies.every((p) => p.rules.every((r) => !r.usesHeaders));
      const split = (ps: readonly CompiledPolicy[], shadow: ListenerPolicies | undefined): ListenerPolicies => ({
        deny: ps.filter((p) => p.action === 'DENY'),
        allow: ps.filter((p) => p.action === 'ALLOW'),
        audit: ps.filter((p) => p.action === 'AUDIT'),
        shadow,
        connectionScoped,
        headerFree,
      });
      const enforced = applies.filter((p) => !p.dryRun);
      const shadow = applies.length > enforced.length ? split(applies, undefined) : undefined;
      set = split(enforced, shadow);
      this.#byListener.set(listener, set);
    }
    return set;
  }
}
