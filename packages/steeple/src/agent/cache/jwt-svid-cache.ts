/**
 * JWT-SVIDs minted on demand, one per (entry, audience set), reused until half their
 * lifetime has passed. Concurrent requests for the same token share one server call.
 * @module
 */
import type { Clock } from '@steeple/spiffe';

/** A minted JWT-SVID. Times are epoch seconds. */
export interface CachedJwtSvid {
  readonly spiffeId: string;
  readonly token: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
}

/** Most tokens kept; past this the oldest are dropped (they are cheap to mint again). */
const MAX_TOKENS = 10_000;

/** The cache key: the entry and the audiences, order and duplicates ignored. */
export function jwtCacheKey(entryId: string, audience: readonly string[]): string {
  return `${entryId}\n${[...new Set(audience)].sort().join('\n')}`;
}

export class JwtSvidCache {
  readonly #clock: Clock;
  readonly #tokens = new Map<string, CachedJwtSvid>();
  readonly #inflight = new Map<string, Promise<CachedJwtSvid>>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  get size(): number {
    return this.#tokens.size;
  }

  /** A cached token still before its half life, or a fresh one from `mint`. */
  async get(entryId: string, audience: readonly string[], mint: () => Promise<CachedJwtSvid>): Promise<CachedJwtSvid> {
    const key = jwtCacheKey(entryId, audience);
    const cached = this.#tokens.get(key);
    const now = this.#clock.now().getTime() / 1000;
    if (cached !== undefined && now < cached.issuedAt + (cached.expiresAt - cached.issuedAt) / 2) return cached;
    const running = this.#inflight.get(key);
    if (running !== undefined) return running;
    const minting = mint()
      .then((svid) => {
        this.#tokens.delete(key);
        if (this.#tokens.size >= MAX_TOKENS) this.#tokens.delete(this.#tokens.keys().next().value as string);
        this.#tokens.set(key, svid);
        return svid;
      })
      .finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, minting);
    return minting;
  }

  /** Drops the tokens of entries not in `keep` (removed entries must not be served from cache). */
  retain(keep: (entryId: string) => boolean): void {
    for (const key of this.#tokens.keys()) {
      if (!keep(key.slice(0, key.indexOf('\n')))) this.#tokens.delete(key);
    }
  }
}
