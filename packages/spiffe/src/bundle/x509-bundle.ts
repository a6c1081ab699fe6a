import { X509Certificate } from 'node:crypto';
import { BundleError } from '../errors.js';
import { concatBytes, splitDerSequences } from '../internal/der.js';
import { decodePem, encodePem } from '../internal/pem.js';
import { TrustDomain } from '../spiffeid/trust-domain.js';
import type { X509BundleSetSource } from './source.js';

function toCertificate(td: TrustDomain, cert: X509Certificate | Uint8Array, index: number): X509Certificate {
  if (cert instanceof X509Certificate) return cert;
  try {
    return new X509Certificate(cert);
  } catch (cause) {
    throw new BundleError(
      'ERR_BUNDLE_INVALID',
      `X.509 bundle of "${td.name}": authority #${index} is not a valid certificate`,
      {
        cause,
      },
    );
  }
}

/**
 * The X.509 authorities (CA certificates) of one trust domain: the trust anchors for
 * X.509-SVIDs of that trust domain and no other. Immutable.
 */
export class X509Bundle implements X509BundleSetSource {
  readonly #self: readonly X509Bundle[] = [this];
  readonly #authorities: readonly X509Certificate[];
  readonly #raw: ReadonlySet<string>;

  private constructor(
    readonly trustDomain: TrustDomain,
    authorities: readonly X509Certificate[],
  ) {
    this.#authorities = Object.freeze([...authorities]);
    this.#raw = new Set(authorities.map((c) => c.raw.toString('base64')));
  }

  /** A bundle from certificates (node:crypto objects or DER bytes). Duplicates are dropped. */
  static fromAuthorities(td: TrustDomain | string, certs: readonly (X509Certificate | Uint8Array)[]): X509Bundle {
    const trustDomain = TrustDomain.from(td);
    const seen = new Set<string>();
    const unique: X509Certificate[] = [];
    certs.forEach((c, i) => {
      const cert = toCertificate(trustDomain, c, i);
      const key = cert.raw.toString('base64');
      if (!seen.has(key)) {
        seen.add(key);
        unique.push(cert);
      }
    });
    return new X509Bundle(trustDomain, unique);
  }

  /** Parses PEM text holding zero or more CERTIFICATE blocks. */
  static parse(td: TrustDomain | string, pem: string | Uint8Array): X509Bundle {
    const trustDomain = TrustDomain.from(td);
    const text = typeof pem === 'string' ? pem : Buffer.from(pem).toString('utf8');
    let blocks: ReturnType<typeof decodePem>;
    try {
      blocks = decodePem(text);
    } catch (cause) {
      throw new BundleError('ERR_BUNDLE_INVALID', `X.509 bundle of "${trustDomain.name}": ${(cause as Error).message}`);
    }
    const other = blocks.find((b) => b.label !== 'CERTIFICATE');
    if (other) {
      throw new BundleError(
        'ERR_BUNDLE_INVALID',
        `X.509 bundle of "${trustDomain.name}": PEM block "${other.label}" found where only CERTIFICATE blocks are allowed`,
      );
    }
    if (blocks.length === 0 && text.trim() !== '') {
      throw new BundleError(
        'ERR_BUNDLE_INVALID',
        `X.509 bundle of "${trustDomain.name}": no PEM CERTIFICATE block found`,
      );
    }
    return X509Bundle.fromAuthorities(
      trustDomain,
      blocks.map((b) => b.der),
    );
  }

  /** Parses concatenated DER certificates, the Workload API's bundle encoding. */
  static parseRaw(td: TrustDomain | string, der: Uint8Array): X509Bundle {
    const trustDomain = TrustDomain.from(td);
    let parts: Uint8Array[];
    try {
      parts = splitDerSequences(der);
    } catch (cause) {
      throw new BundleError('ERR_BUNDLE_INVALID', `X.509 bundle of "${trustDomain.name}": ${(cause as Error).message}`);
    }
    return X509Bundle.fromAuthorities(trustDomain, parts);
  }

  get authorities(): readonly X509Certificate[] {
    return this.#authorities;
  }

  /** True when `cert` (compared by its DER bytes) is one of this bundle's authorities. */
  hasAuthority(cert: X509Certificate | Uint8Array): boolean {
    const raw = cert instanceof X509Certificate ? cert.raw : Buffer.from(cert);
    return this.#raw.has(raw.toString('base64'));
  }

  isEmpty(): boolean {
    return this.#authorities.length === 0;
  }

  /** A new bundle with the given authority added. */
  withAuthority(cert: X509Certificate | Uint8Array): X509Bundle {
    return X509Bundle.fromAuthorities(this.trustDomain, [...this.#authorities, cert]);
  }

  /** A new bundle without the given authority. */
  withoutAuthority(cert: X509Certificate | Uint8Array): X509Bundle {
    const raw = (cert instanceof X509Certificate ? cert.raw : Buffer.from(cert)).toString('base64');
    return new X509Bundle(
      this.trustDomain,
      this.#authorities.filter((c) => c.raw.toString('base64') !== raw),
    );
  }

  /** PEM text of all authorities. */
  marshal(): string {
    return this.#authorities.map((c) => encodePem('CERTIFICATE', c.raw)).join('');
  }

  /** Concatenated DER of all authorities (the Workload API encoding). */
  marshalRaw(): Uint8Array {
    return concatBytes(this.#authorities.map((c) => c.raw));
  }

  equals(other: X509Bundle): boolean {
    if (!this.trustDomain.equals(other.trustDomain) || this.#authorities.length !== other.#authorities.length)
      return false;
    return this.#authorities.every((c, i) => c.raw.equals((other.#authorities[i] as X509Certificate).raw));
  }

  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle | undefined {
    return this.trustDomain.equals(td) ? this : undefined;
  }

  getX509Bundles(): readonly X509Bundle[] {
    return this.#self;
  }
}
