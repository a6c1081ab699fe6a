export { type Matcher, matchAny, matchId, matchMemberOf, matchOneOf } from './matcher.js';
export { brokenPathRule } from './path.js';
export { SpiffeId } from './spiffe-id.js';
export { MAX_ID_BYTES, MAX_TRUST_DOMAIN_BYTES, TrustDomain } from './trust-domain.js';
