import type { SpiffeId } from './spiffe-id.js';
import { SpiffeId as Id } from './spiffe-id.js';
import { TrustDomain } from './trust-domain.js';

/** A predicate over SPIFFE IDs; authorizers are built from matchers. */
export type Matcher = (id: SpiffeId) => boolean;

export const matchAny: Matcher = () => true;

export function matchId(expected: SpiffeId | string): Matcher {
  const want = Id.from(expected);
  return (id) => id.equals(want);
}

export function matchOneOf(...expected: (SpiffeId | string)[]): Matcher {
  const wanted = new Set(expected.map((e) => Id.from(e).toString()));
  return (id) => wanted.has(id.toString());
}

export function matchMemberOf(td: TrustDomain | string): Matcher {
  const want = TrustDomain.from(td);
  return (id) => id.memberOf(want);
}
