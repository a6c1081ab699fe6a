/**
 * Checks of single request fields, shared by the admin services. Each returns the parsed value
 * or throws a ConnectError (InvalidArgument) that names the field and the rule broken.
 * @module
 */
import { SpiffeId, SpiffeIdError, TrustDomain } from '@steeple/spiffe';
import { invalidField } from './grpc-status.js';

/** Longest value quoted back in an error message. */
const QUOTE_MAX = 120;

export function quoteValue(value: string): string {
  const shown = value.length > QUOTE_MAX ? `${value.slice(0, QUOTE_MAX)}…(${value.length} chars)` : value;
  return JSON.stringify(shown);
}

/** `spiffe://<td>/spire/server`, SPIRE's ID for the server, parent of node alias entries. */
export function serverIdOf(td: TrustDomain): string {
  return `${td.idString()}/spire/server`;
}

/** A SPIFFE ID in any trust domain. */
export function requireSpiffeId(field: string, value: string): SpiffeId {
  if (value === '') throw invalidField(field, 'required');
  const id = SpiffeId.tryParse(value);
  if (id instanceof SpiffeIdError) throw invalidField(field, id.message);
  return id;
}

/** A SPIFFE ID in the server's trust domain. */
export function requireMemberId(field: string, value: string, td: TrustDomain): SpiffeId {
  const id = requireSpiffeId(field, value);
  if (!id.memberOf(td)) {
    throw invalidField(field, `${quoteValue(value)} is not in the server's trust domain "${td.name}"`);
  }
  return id;
}

/**
 * A SPIFFE ID that can be the subject of an SVID: a member of the trust domain with a path
 * (an SVID never carries the bare trust domain ID, X-2).
 */
export function requireWorkloadId(field: string, value: string, td: TrustDomain): SpiffeId {
  const id = requireMemberId(field, value, td);
  if (id.path === '') throw invalidField(field, `${quoteValue(value)} has no path; an SVID needs one (X509-SVID §2)`);
  return id;
}

/** A trust domain name, given bare (`example.org`) or as its ID (`spiffe://example.org`). */
export function requireTrustDomain(field: string, value: string): TrustDomain {
  if (value === '') throw invalidField(field, 'required');
  const td = TrustDomain.tryParse(value);
  if (td instanceof SpiffeIdError) throw invalidField(field, td.message);
  return td;
}

/** A trust domain other than the server's own. */
export function requireForeignTrustDomain(field: string, value: string, own: TrustDomain): TrustDomain {
  const td = requireTrustDomain(field, value);
  if (td.equals(own)) throw invalidField(field, `"${td.name}" is the server's own trust domain`);
  return td;
}

/** A selector: a non-empty type without ':', and a non-empty value. */
export function requireSelector(field: string, s: { type: string; value: string }): { type: string; value: string } {
  if (s.type === '')
    throw invalidField(field, 'selector type must not be empty (expected type:value, e.g. unix:uid:1000)');
  if (s.type.includes(':')) throw invalidField(field, `selector type ${quoteValue(s.type)} must not contain ":"`);
  if (s.value === '') throw invalidField(field, `selector ${quoteValue(`${s.type}:`)} has an empty value`);
  return { type: s.type, value: s.value };
}

/** A non-empty list of selectors. */
export function requireSelectors(
  field: string,
  list: readonly { type: string; value: string }[],
): { type: string; value: string }[] {
  if (list.length === 0) throw invalidField(field, 'at least one selector is required');
  return list.map((s, i) => requireSelector(`${field}[${i}]`, s));
}

export function requireNonNegative(field: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) throw invalidField(field, `must be 0 or more, got ${value}`);
  return value;
}

/** Epoch seconds from an int64 field; 0 means unset. */
export function requireEpochSeconds(field: string, value: bigint): number {
  if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw invalidField(field, `must be epoch seconds (0 or more), got ${value}`);
  }
  return Number(value);
}

const DNS_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/**
 * Why `name` is not a DNS name for a certificate SAN, or undefined when it is: labels of
 * letters, digits and inner hyphens, 1–63 characters each, 253 in all; a leading `*.`
 * wildcard label is allowed, as SPIRE allows it.
 */
export function dnsNameProblem(name: string): string | undefined {
  if (name === '') return 'must not be empty';
  if (name.length > 253) return 'is longer than 253 characters';
  const labels = name.split('.');
  const start = labels[0] === '*' ? 1 : 0;
  if (start === 1 && labels.length < 2) return 'a wildcard needs a domain after "*."';
  for (let i = start; i < labels.length; i++) {
    const label = labels[i] as string;
    if (label === '') return 'has an empty label (leading, trailing or doubled ".")';
    if (label.includes('*')) return 'may hold "*" only as the whole first label';
    if (!DNS_LABEL.test(label)) {
      return `label ${quoteValue(label)} must be 1-63 letters, digits or inner hyphens`;
    }
  }
  return undefined;
}

export function requireDnsNames(field: string, names: readonly string[]): string[] {
  return names.map((name, i) => {
    const problem = dnsNameProblem(name);
    if (problem !== undefined) throw invalidField(`${field}[${i}]`, `${quoteValue(name)} ${problem}`);
    return name;
  });
}

/** Page size of a list call: 0 (everything) or more. */
export function requirePageSize(field: string, value: number): number {
  if (value < 0) throw invalidField(field, `must be 0 (all) or more, got ${value}`);
  return value;
}
