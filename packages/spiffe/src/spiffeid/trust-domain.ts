import { SpiffeIdError } from '../errors.js';
import { brokenPathRule } from './path.js';

export const SCHEME_PREFIX = 'spiffe://';
/** Longest SPIFFE ID, in bytes of the whole URI (SPIFFE-ID §2.3). */
export const MAX_ID_BYTES = 2048;
/** Longest trust domain name, in bytes (SPIFFE-ID §2.1). */
export const MAX_TRUST_DOMAIN_BYTES = 255;

const TD_CHAR = /^[a-z0-9._-]+$/;

/** Returns the rule a trust domain name breaks, or undefined when it is valid. */
export function brokenTrustDomainRule(name: string): string | undefined {
  if (name.length === 0) return 'trust domain is missing';
  if (!TD_CHAR.test(name)) {
    return 'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores';
  }
  if (name.length > MAX_TRUST_DOMAIN_BYTES) return `trust domain is longer than ${MAX_TRUST_DOMAIN_BYTES} bytes`;
  return undefined;
}

/**
 * A SPIFFE trust domain: the authority part of a SPIFFE ID, such as `example.org`.
 * Immutable; compare with {@link TrustDomain.equals}.
 *
 * @example
 * TrustDomain.parse('example.org').idString() // 'spiffe://example.org'
 */
export class TrustDomain {
  private constructor(readonly name: string) {}

  /**
   * Parses a bare trust domain name (`example.org`) or any valid SPIFFE ID
   * (`spiffe://example.org[/path]`), returning the error instead of throwing.
   */
  static tryParse(input: string): TrustDomain | SpiffeIdError {
    if (typeof input !== 'string') throw new TypeError('TrustDomain.parse expects a string');
    if (input.includes(':') || input.includes('/')) {
      if (!input.startsWith(SCHEME_PREFIX)) {
        return new SpiffeIdError(input, 'scheme is missing or invalid', 'trust-domain');
      }
      const rest = input.slice(SCHEME_PREFIX.length);
      const slash = rest.indexOf('/');
      const name = slash === -1 ? rest : rest.slice(0, slash);
      const rule = brokenTrustDomainRule(name) ?? (slash === -1 ? undefined : brokenPathRule(rest.slice(slash)));
      if (rule) return new SpiffeIdError(input, rule, 'trust-domain');
      return new TrustDomain(name);
    }
    const rule = brokenTrustDomainRule(input);
    return rule ? new SpiffeIdError(input, rule, 'trust-domain') : new TrustDomain(input);
  }

  /** Like {@link TrustDomain.tryParse} but throws the {@link SpiffeIdError}. */
  static parse(input: string): TrustDomain {
    const td = TrustDomain.tryParse(input);
    if (td instanceof SpiffeIdError) throw td;
    return td;
  }

  /** Accepts a TrustDomain or a string and returns a TrustDomain. */
  static from(td: TrustDomain | string): TrustDomain {
    return typeof td === 'string' ? TrustDomain.parse(td) : td;
  }

  /** The trust domain's own SPIFFE ID string, `spiffe://<name>`. */
  idString(): string {
    return SCHEME_PREFIX + this.name;
  }

  equals(other: TrustDomain | string): boolean {
    return this.name === (typeof other === 'string' ? other : other.name);
  }

  toString(): string {
    return this.name;
  }

  toJSON(): string {
    return this.name;
  }
}
