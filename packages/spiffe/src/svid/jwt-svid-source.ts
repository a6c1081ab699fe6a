import type { SpiffeId } from '../spiffeid/spiffe-id.js';
import type { JwtSvid } from './jwt-svid.js';

/** What to fetch a JWT-SVID for (go-spiffe's `jwtsvid.Params`). */
export interface JwtSvidParams {
  /** The audience the token is meant for (W-9: at least one audience is required). */
  readonly audience: string;
  /** Further audiences; SPIFFE recommends a single audience (J-7), so use sparingly. */
  readonly extraAudiences?: readonly string[];
  /** Which of the workload's identities to fetch for; default the first (default) identity. */
  readonly subject?: SpiffeId;
}

/**
 * Anything that can hand out JWT-SVIDs for the current workload: a live Workload API
 * source, or a fixed test double. Code that needs a token never knows which one it has.
 */
export interface JwtSvidSource {
  fetchJwtSvid(params: JwtSvidParams, signal?: AbortSignal): Promise<JwtSvid>;
}
