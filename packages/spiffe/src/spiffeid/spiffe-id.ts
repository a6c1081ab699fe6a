import { SpiffeIdError } from '../errors.js';
import { brokenPathRule } from './path.js';
import { brokenTrustDomainRule, MAX_ID_BYTES, SCHEME_PREFIX, TrustDomain } from './trust-domain.js';

function byteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/**
 * A SPIFFE ID, `spiffe://<trust-domain><path>`, parsed and validated against
 * SPIFFE-ID §2. Immutable; compare with {@link SpiffeId.equals}.
 *
 * @example
 * const id = SpiffeId.parse('spiffe://example.org/ns/web');
 * id.trustDomain.name // 'example.org'
 * id.path             // '/ns/web'
 */
export class SpiffeId {
  readonly #text: string;
  private constructor(
    readonly trustDomain: TrustDomain,
    readonly path: string,
  ) {
    this.#text = SCHEME_PREFIX + trustDomain.name + path;
  }

  /** Parses a SPIFFE ID, returning a {@link SpiffeIdError} (naming the input and the rule) instead of throwing. */
  static tryParse(input: string): SpiffeId | SpiffeIdError {
    if (typeof input !== 'string') throw new TypeError('SpiffeId.parse expects a string');
    if (input === '') return new SpiffeIdError(input, 'cannot be empty');
    if (input.length > MAX_ID_BYTES || byteLength(input) > MAX_ID_BYTES) {
      return new SpiffeIdError(input, `longer than ${MAX_ID_BYTES} bytes`);
    }
    if (!input.startsWith(SCHEME_PREFIX)) return new SpiffeIdError(input, 'scheme is missing or invalid');
    const rest = input.slice(SCHEME_PREFIX.length);
    const slash = rest.indexOf('/');
    const name = slash === -1 ? rest : rest.slice(0, slash);
    const path = slash === -1 ? '' : rest.slice(slash);
    const rule = brokenTrustDomainRule(name) ?? brokenPathRule(path);
    if (rule) return new SpiffeIdError(input, rule);
    return new SpiffeId(TrustDomain.parse(name), path);
  }

  /** Parses a SPIFFE ID or throws a {@link SpiffeIdError}. */
  static parse(input: string): SpiffeId {
    const id = SpiffeId.tryParse(input);
    if (id instanceof SpiffeIdError) throw id;
    return id;
  }

  /** Builds an ID from a trust domain and a path such as `/ns/web` (or `''` for the trust domain's own ID). */
  static tryFromPath(td: TrustDomain | string, path: string): SpiffeId | SpiffeIdError {
    const trustDomain = typeof td === 'string' ? TrustDomain.tryParse(td) : td;
    if (trustDomain instanceof SpiffeIdError) return trustDomain;
    const text = SCHEME_PREFIX + trustDomain.name + path;
    const rule =
      brokenPathRule(path) ?? (byteLength(text) > MAX_ID_BYTES ? `longer than ${MAX_ID_BYTES} bytes` : undefined);
    return rule ? new SpiffeIdError(text, rule) : new SpiffeId(trustDomain, path);
  }

  /** Like {@link SpiffeId.tryFromPath} but throws. */
  static fromPath(td: TrustDomain | string, path: string): SpiffeId {
    const id = SpiffeId.tryFromPath(td, path);
    if (id instanceof SpiffeIdError) throw id;
    return id;
  }

  /** Accepts a SpiffeId or a string and returns a SpiffeId (throws on a bad string). */
  static from(id: SpiffeId | string): SpiffeId {
    return typeof id === 'string' ? SpiffeId.parse(id) : id;
  }

  /** True when this ID belongs to the given trust domain. */
  memberOf(td: TrustDomain | string): boolean {
    return this.trustDomain.equals(td);
  }

  /** True for the trust domain's own ID (no path), as a signing authority may carry. */
  isTrustDomainId(): boolean {
    return this.path === '';
  }

  equals(other: SpiffeId | string): boolean {
    return this.#text === (typeof other === 'string' ? other : other.#text);
  }

  toString(): string {
    return this.#text;
  }

  toJSON(): string {
    return this.#text;
  }
}
