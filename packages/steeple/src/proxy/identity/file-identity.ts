/**
 * The proxy's identity from files, for use without an agent: an X.509-SVID (certificate
 * chain PEM + PKCS#8 key PEM) and a trust bundle, re-read when they change. A new SVID or
 * bundle applies to new connections at once (the TLS layer rebuilds its context when the
 * objects handed out here change); open connections keep going. A file that fails to load
 * (half-written, mismatched key, garbage) leaves the last good identity in force and the
 * reason is logged.
 * @module
 */
import { readFileSync } from 'node:fs';
import {
  BundleSet,
  SpiffeBundle,
  type TrustDomain,
  X509Bundle,
  type X509BundleSetSource,
  X509Svid,
  type X509SvidSource,
} from '@steeple/spiffe/core';
import type { Logger } from '../../common/logger.js';
import type { FilesIdentityConfig } from '../config.js';
import { type FileWatch, watchFiles } from '../files/watch-files.js';

export interface Loaded {
  readonly svid: X509Svid;
  readonly bundles: BundleSet;
  readonly texts: string;
}

/**
 * Parses bundle file text: PEM certificates (the bundle of `ownTrustDomain`), a SPIFFE
 * bundle JSON document (JWKS, `ownTrustDomain`), or a bundle map `{"trust_domains": …}`.
 */
export function parseBundleFile(text: string, ownTrustDomain: TrustDomain): BundleSet {
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{')) {
    const doc = JSON.parse(trimmed) as Record<string, unknown>;
    if (doc !== null && typeof doc === 'object' && 'trust_domains' in doc) return BundleSet.parse(trimmed);
    return BundleSet.of(SpiffeBundle.parse(ownTrustDomain, trimmed));
  }
  const bundle = X509Bundle.parse(ownTrustDomain, text);
  if (bundle.authorities.length === 0) throw new Error('the bundle file holds no certificate');
  return BundleSet.of(bundle);
}

/**
 * Reads and checks the identity files once.
 * @throws an Error naming the file and the rule broken.
 */
export function readIdentityFiles(config: FilesIdentityConfig): Loaded {
  const read = (path: string, what: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new Error(
        `cannot read ${what} file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
  };
  const cert = read(config.cert, 'certificate');
  const key = read(config.key, 'key');
  const bundleText = read(config.bundle, 'bundle');
  let svid: X509Svid;
  try {
    svid = X509Svid.parse(cert, key);
  } catch (err) {
    throw new Error(`${config.cert} / ${config.key}: ${(err as Error).message}`);
  }
  let bundles: BundleSet;
  try {
    bundles = parseBundleFile(bundleText, svid.id.trustDomain);
  } catch (err) {
    throw new Error(`${config.bundle}: ${(err as Error).message}`);
  }
  if (!bundles.has(svid.id.trustDomain)) {
    throw new Error(`${config.bundle}: holds no bundle for the SVID's own trust domain "${svid.id.trustDomain.name}"`);
  }
  return { svid, bundles, texts: `${cert}\0${key}\0${bundleText}` };
}

/** An SVID and bundle source backed by files; satisfies the SDK's source interfaces. */
export class FileIdentity implements X509SvidSource, X509BundleSetSource {
  #current: Loaded;
  #watch: FileWatch | undefined;
  readonly #config: FilesIdentityConfig;
  readonly #logger: Logger;
  readonly #listeners = new Set<() => void>();

  private constructor(config: FilesIdentityConfig, logger: Logger, first: Loaded) {
    this.#config = config;
    this.#logger = logger;
    this.#current = first;
  }

  /**
   * Loads the files (failing if they do not hold a valid identity) and watches them.
   * @throws the parse error naming the file and the rule broken.
   */
  static open(config: FilesIdentityConfig, logger: Logger): FileIdentity {
    const identity = new FileIdentity(config, logger, readIdentityFiles(config));
    identity.#watch = watchFiles([config.cert, config.key, config.bundle], () => identity.reload(), {
      pollIntervalMs: config.poll_interval * 1000,
    });
    logger.info(identity.#describe(), 'identity loaded from files');
    return identity;
  }

  #describe() {
    const leaf = this.#current.svid.certificates[0];
    return {
      spiffeId: this.#current.svid.id.toString(),
      notAfter: leaf?.validTo,
      trustDomains: this.#current.bundles.trustDomains().map((t) => t.name),
    };
  }

  /** Re-reads the files; returns whether a new identity is in force. */
  reload(): boolean {
    let next: Loaded;
    try {
      next = readIdentityFiles(this.#config);
    } catch (err) {
      this.#logger.error({ reason: (err as Error).message }, 'identity files rejected; keeping the last good identity');
      return false;
    }
    if (next.texts === this.#current.texts) return false;
    const prev = this.#current;
    // Keep the objects that did not change, so TLS contexts are rebuilt only when needed.
    const svid = next.svid.certificates[0]?.raw.equals(prev.svid.certificates[0]?.raw ?? Buffer.alloc(0))
      ? prev.svid
      : next.svid;
    const bundles = next.bundles.equals(prev.bundles) ? prev.bundles : next.bundles;
    this.#current = { svid, bundles, texts: next.texts };
    this.#logger.info(this.#describe(), 'identity reloaded from files');
    for (const listener of this.#listeners) listener();
    return true;
  }

  /** Calls `listener` after each change of SVID or bundles. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  getX509Svid(): X509Svid {
    return this.#current.svid;
  }

  getX509BundleForTrustDomain(td: TrustDomain) {
    return this.#current.bundles.getX509BundleForTrustDomain(td);
  }

  getX509Bundles() {
    return this.#current.bundles.getX509Bundles();
  }

  close(): void {
    this.#watch?.close();
  }
}
