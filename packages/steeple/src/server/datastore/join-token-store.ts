/**
 * Single-use join tokens. Only the token's SHA-256 is stored: a copy of the database (a
 * backup, a replica) cannot be used to attest. Consumption is one DELETE … RETURNING, so
 * of two servers racing for the same token exactly one gets it.
 * @module
 */
import { createHash } from 'node:crypto';
import { DatastoreError } from './datastore-error.js';
import { type Engine, guarded } from './sql/engine.js';
import type { JoinToken } from './types.js';

function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export class JoinTokenStore {
  readonly #engine: Engine;
  readonly #now: () => number;

  /** @param now current time in epoch seconds */
  constructor(engine: Engine, now: () => number) {
    this.#engine = engine;
    this.#now = now;
  }

  /** Stores a token; ERR_JOIN_TOKEN_EXISTS if the same token is already pending. */
  async create(token: JoinToken): Promise<void> {
    if (token.token.length === 0) throw new TypeError('join token must not be empty');
    if (!Number.isSafeInteger(token.expiresAt))
      throw new RangeError(`expiresAt must be epoch seconds, got ${token.expiresAt}`);
    await guarded(this.#engine, async () => {
      try {
        const row = {
          token_hash: hashToken(token.token),
          spiffe_id: token.spiffeId ?? null,
          expires_at: token.expiresAt,
          created_at: this.#now(),
        };
        await this.#engine.write((tx) => tx.insertInto('join_tokens').values(row).execute());
      } catch (err) {
        // The message must not carry the token itself.
        if (this.#engine.isUniqueViolation(err)) {
          throw new DatastoreError('ERR_JOIN_TOKEN_EXISTS', 'this join token already exists', { cause: err });
        }
        throw err;
      }
    });
  }

  /**
   * Uses the token up: returns it if it existed and had not expired at `now` (epoch
   * seconds), deleting it in the same statement; undefined otherwise. A second consume of
   * the same token returns undefined. An expired token is deleted too.
   */
  async consume(token: string, now: number): Promise<JoinToken | undefined> {
    return guarded(this.#engine, async () => {
      const row = await this.#engine.write((tx) =>
        tx
          .deleteFrom('join_tokens')
          .where('token_hash', '=', hashToken(token))
          .returning(['spiffe_id', 'expires_at'])
          .executeTakeFirst(),
      );
      if (!row) return undefined;
      const expiresAt = Number(row.expires_at);
      if (expiresAt <= now) return undefined;
      return Object.freeze(
        row.spiffe_id === null ? { token, expiresAt } : { token, spiffeId: row.spiffe_id, expiresAt },
      );
    });
  }

  /** Deletes tokens that expired at or before `now`; returns how many. */
  async pruneExpired(now: number): Promise<number> {
    return guarded(this.#engine, async () => {
      const result = await this.#engine.write((tx) =>
        tx.deleteFrom('join_tokens').where('expires_at', '<=', now).executeTakeFirst(),
      );
      return Number(result.numDeletedRows);
    });
  }

  /** Number of tokens not yet used (expired ones included until pruned). */
  async count(): Promise<number> {
    return guarded(this.#engine, async () => {
      const row = await this.#engine.db
        .selectFrom('join_tokens')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow();
      return Number(row.n);
    });
  }
}
