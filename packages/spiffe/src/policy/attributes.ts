/**
 * What a policy decision looks at: the caller (verified SPIFFE ID or none), the addresses,
 * and for HTTP the request line and headers.
 * @module
 */

export interface RequestAttributes {
  /** `tcp`: a connection on a TCP listener; `http`: one request on an HTTP listener. */
  readonly kind: 'tcp' | 'http';
  /** The inbound listener's name. */
  readonly listener: string;
  /** The caller's verified SPIFFE ID, or undefined for plaintext (unauthenticated) callers. */
  readonly principal: string | undefined;
  readonly sourceIp: string;
  readonly destinationIp: string;
  readonly destinationPort: number;
  /** TLS server name the caller asked for, if any. */
  readonly sni?: string | undefined;
  /** HTTP method (upper case). */
  readonly method?: string;
  /** Normalised path without the query string. */
  readonly path?: string;
  /** Host header or :authority, as sent. */
  readonly host?: string;
  /** A request header's value (several joined with ","), by lower-case name. */
  readonly header?: (lowerCaseName: string) => string | undefined;
}

/** The outcome of evaluating the policies for one connection or request. */
export interface Decision {
  readonly allowed: boolean;
  /** The policy that decided (the matching DENY or ALLOW policy), if one did. */
  readonly policy?: string;
  /** The index of the matching rule in that policy. */
  readonly rule?: number;
  /** A short reason, safe to show the caller: "denied by policy deny-admin". */
  readonly reason: string;
  /** The first matching AUDIT policy, if any. */
  readonly audit?: { readonly policy: string; readonly rule: number };
  /** The decision that dry-run policies would have made, when any dry-run policy applies. */
  readonly dryRun?: {
    readonly allowed: boolean;
    readonly policy?: string;
    readonly rule?: number;
    readonly reason: string;
  };
}

/** The principal's trust domain name (`spiffe://td/...` → `td`). */
export function trustDomainOfPrincipal(principal: string): string {
  const rest = principal.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  return slash < 0 ? rest : rest.slice(0, slash);
}

/** The namespace of a Kubernetes-shaped SPIFFE ID (`spiffe://td/ns/<name>/…`, as Istio reads it), or "". */
export function namespaceOfPrincipal(principal: string): string {
  const at = principal.indexOf('/', 'spiffe://'.length);
  if (at < 0 || !principal.startsWith('/ns/', at)) return '';
  const start = at + 4;
  const end = principal.indexOf('/', start);
  return end < 0 ? principal.slice(start) : principal.slice(start, end);
}
