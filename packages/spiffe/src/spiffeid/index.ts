export { SpiffeId } from './spiffe-id.js';
export { brokenPathRule } from './path.js';
export { TrustDomain, MAX_ID_BYTES, MAX_TRUST_DOMAIN_BYTES } from './trust-domain.js';
export { type Matcher, matchAny, matchId, matchOneOf, matchMemberOf } from './matcher.js';
