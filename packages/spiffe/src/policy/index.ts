/**
 * @steeple/spiffe/policy — authorization policies with Istio's AuthorizationPolicy fields
 * and semantics (ALLOW / DENY / AUDIT, dry-run), SPIFFE IDs as principals. The same
 * evaluator and document format the Steeple proxy uses; give it a plain object (parse YAML
 * or JSON yourself) and evaluate each connection or request.
 *
 * @example
 * import { PolicyEvaluator } from '@steeple/spiffe/policy';
 * const policy = PolicyEvaluator.fromObject({
 *   policies: [{ name: 'web-reads', rules: [{ from: [{ source: { principals: ['spiffe://example.org/web'] } }],
 *                                            to: [{ operation: { methods: ['GET'] } }] }] }],
 * });
 * const decision = policy.evaluate({ kind: 'http', listener: 'default', principal: 'spiffe://example.org/web',
 *   sourceIp: '127.0.0.1', destinationIp: '127.0.0.1', destinationPort: 8443, method: 'GET', path: '/' });
 * decision.allowed; // true; decision.reason: "allowed by policy web-reads"
 * @module
 */

export { PolicyError, type PolicyIssue } from '../errors.js';
export { type Decision, namespaceOfPrincipal, type RequestAttributes, trustDomainOfPrincipal } from './attributes.js';
export { type CompiledPolicy, type CompiledRule, compilePolicy } from './compile-policy.js';
export { formatPolicyPath, parsePolicyFile } from './parse-policy.js';
export { PolicyEvaluator } from './policy-evaluator.js';
export {
  blockListOf,
  brokenIpBlockRule,
  CONDITION_KEYS,
  type ConditionDocument,
  canonicalPrincipal,
  headerOfConditionKey,
  type OperationDocument,
  POLICY_ACTIONS,
  type PolicyAction,
  type PolicyDocument,
  type PolicyFile,
  type PolicyFileInput,
  PolicyFileSchema,
  type RuleDocument,
  type SourceDocument,
} from './policy-schema.js';
export { type NormalizedRequestTarget, normalizeRequestTarget } from './request-path.js';
export { brokenPatternRule, matchAnyPattern } from './string-match.js';
