import type { X509Certificate } from 'node:crypto';
import { AuthorizationError } from '../errors.js';
import { type Matcher, matchId, matchMemberOf, matchOneOf } from '../spiffeid/matcher.js';
import type { SpiffeId } from '../spiffeid/spiffe-id.js';
import type { TrustDomain } from '../spiffeid/trust-domain.js';

/**
 * Decides whether a peer whose X.509-SVID has already been verified may talk to us.
 * Returns undefined to allow, or an {@link AuthorizationError} that says why not.
 */
export type Authorizer = (id: SpiffeId, verifiedChain: readonly X509Certificate[]) => AuthorizationError | undefined;

function fromMatcher(matcher: Matcher, describe: string): Authorizer {
  return (id) =>
    matcher(id) ? undefined : new AuthorizationError(`peer ${id} is not authorized: expected ${describe}`);
}

/** Allows any peer with a valid SVID of a trusted trust domain. */
export function authorizeAny(): Authorizer {
  return () => undefined;
}

/** Allows exactly one SPIFFE ID. */
export function authorizeId(id: SpiffeId | string): Authorizer {
  return fromMatcher(matchId(id), String(id));
}

/** Allows any of the given SPIFFE IDs. */
export function authorizeOneOf(...ids: (SpiffeId | string)[]): Authorizer {
  if (ids.length === 0) throw new TypeError('authorizeOneOf needs at least one SPIFFE ID');
  return fromMatcher(matchOneOf(...ids), `one of ${ids.map(String).join(', ')}`);
}

/** Allows any SPIFFE ID of the given trust domain. */
export function authorizeMemberOf(td: TrustDomain | string): Authorizer {
  return fromMatcher(matchMemberOf(td), `a member of trust domain "${String(td)}"`);
}

/**
 * Allows the IDs for which `predicate` returns true. A predicate that throws denies.
 *
 * @example
 * authorizeMatching((id) => id.memberOf('example.org') && id.path.startsWith('/ns/prod/'))
 */
export function authorizeMatching(predicate: (id: SpiffeId) => boolean, describe = 'a matching ID'): Authorizer {
  return (id) => {
    try {
      return predicate(id) ? undefined : new AuthorizationError(`peer ${id} is not authorized: expected ${describe}`);
    } catch (cause) {
      return new AuthorizationError(`peer ${id} is not authorized: the authorizer failed`, { cause });
    }
  };
}
