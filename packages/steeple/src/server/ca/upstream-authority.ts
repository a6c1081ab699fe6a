/**
 * Upstream authorities sign the server's CA, so the server's CA becomes an intermediate
 * of an existing PKI and the trust bundle holds the upstream root(s) instead of the
 * server's own certificate (SPIRE's UpstreamAuthority plugins). Only `disk` exists: a CA
 * certificate and key in files, re-read on every mint so an operator can replace them.
 * @module
 */
import { createPrivateKey, createPublicKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { type Clock, systemClock, type TrustDomain } from '@steeple/spiffe';
import { CertificateIssuer, type DistinguishedName, x509Fields } from '@steeple/spiffe/issuance';
import { BACKDATE_MS, caCertificateSpec, randomSerialNumber } from './ca-certificate.js';
import { CaError } from './ca-errors.js';

/** What the CA manager asks an upstream authority to sign. */
export interface MintX509CaRequest {
  /** The public key of the server's new CA. */
  readonly publicKey: KeyObject;
  readonly subject: DistinguishedName;
  readonly trustDomain: TrustDomain;
  /** Requested lifetime; the upstream caps it at its own certificates' notAfter. */
  readonly ttlSeconds: number;
}

/** What an upstream authority returns. */
export interface MintedX509Ca {
  /** The server's new CA certificate first, then the upstream intermediates, excluding the root(s). */
  readonly chain: readonly X509Certificate[];
  /** The upstream trust anchors: these, not the server's CA, go into the trust bundle. */
  readonly upstreamRoots: readonly X509Certificate[];
}

/** Signs the server's CA certificates. */
export interface UpstreamAuthority {
  /** `disk`. */
  readonly name: string;
  /** Rejects with {@link CaError} `ERR_UPSTREAM_AUTHORITY_INVALID` when it cannot sign. */
  mintX509Ca(request: MintX509CaRequest): Promise<MintedX509Ca>;
}

/** `upstream_authority: { disk: { … } }`, with SPIRE's key names. */
export interface DiskUpstreamAuthorityConfig {
  /** PEM: the upstream signing CA certificate, optionally followed by its intermediates. */
  readonly cert_file_path: string;
  /** PEM private key of the signing certificate (PKCS#8, SEC1 or PKCS#1). */
  readonly key_file_path: string;
  /**
   * PEM: the upstream root(s). Required when the signing certificate is not self-signed;
   * without it the signing certificate must be a self-signed root and is the bundle.
   */
  readonly bundle_file_path?: string;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
const KEY_CERT_SIGN = 32;

function invalid(message: string, cause?: unknown): CaError {
  return new CaError(
    'ERR_UPSTREAM_AUTHORITY_INVALID',
    `upstream authority (disk): ${message}`,
    cause ? { cause } : undefined,
  );
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (cause) {
    throw invalid(`cannot read ${what} ${path}: ${(cause as Error).message}`, cause);
  }
}

function certificatesIn(text: string, path: string): X509Certificate[] {
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw invalid(`${path} holds no PEM CERTIFICATE block`);
  return blocks.map((pem, i) => {
    try {
      return new X509Certificate(pem);
    } catch (cause) {
      throw invalid(`certificate #${i} in ${path} cannot be parsed`, cause);
    }
  });
}

const spkiOf = (key: KeyObject) => key.export({ format: 'der', type: 'spki' });

/** True when `child` names `parent` as issuer and `parent`'s key verifies `child`'s signature. */
function issuedBy(child: X509Certificate, parent: X509Certificate): boolean {
  return child.checkIssued(parent) && child.verify(parent.publicKey);
}

interface LoadedUpstream {
  readonly issuer: CertificateIssuer;
  /** The signing certificate and the intermediates above it, excluding roots. */
  readonly intermediates: readonly X509Certificate[];
  readonly roots: readonly X509Certificate[];
  /** The earliest notAfter on the way to the root. */
  readonly notAfter: number;
}

/** A CA on disk: `cert_file_path`, `key_file_path`, optional `bundle_file_path`. */
class DiskUpstreamAuthority implements UpstreamAuthority {
  readonly name = 'disk';
  readonly #config: DiskUpstreamAuthorityConfig;
  readonly #clock: Clock;

  constructor(config: DiskUpstreamAuthorityConfig, clock: Clock) {
    this.#config = config;
    this.#clock = clock;
  }

  async #load(): Promise<LoadedUpstream> {
    const { cert_file_path: certPath, key_file_path: keyPath, bundle_file_path: bundlePath } = this.#config;
    const certs = certificatesIn(await readText(certPath, 'certificate file'), certPath);
    let key: KeyObject;
    try {
      key = createPrivateKey(await readText(keyPath, 'key file'));
    } catch (cause) {
      if (cause instanceof CaError) throw cause;
      throw invalid(`${keyPath} does not hold an unencrypted PEM private key`, cause);
    }
    const signing = certs[0] as X509Certificate;
    if (!spkiOf(createPublicKey(key)).equals(spkiOf(signing.publicKey))) {
      throw invalid(`the key in ${keyPath} does not match the first certificate in ${certPath}`);
    }
    const fields = x509Fields(signing);
    if (!fields.basicConstraints?.ca || ((fields.keyUsage?.flags ?? KEY_CERT_SIGN) & KEY_CERT_SIGN) === 0) {
      throw invalid(`the certificate in ${certPath} is not a CA allowed to sign certificates (cA=true, keyCertSign)`);
    }
    let roots: X509Certificate[];
    let intermediates: X509Certificate[];
    /** The certificates from the signing one up to and including its root. */
    let path: X509Certificate[];
    if (bundlePath === undefined) {
      if (!issuedBy(signing, signing)) {
        throw invalid(`${certPath} is not a self-signed root; set bundle_file_path to the upstream root(s)`);
      }
      if (certs.length > 1) throw invalid(`${certPath} holds a chain; set bundle_file_path to the upstream root(s)`);
      roots = [signing];
      intermediates = [];
      path = [signing];
    } else {
      roots = certificatesIn(await readText(bundlePath, 'bundle file'), bundlePath);
      const isRoot = (c: X509Certificate) => roots.some((r) => r.raw.equals(c.raw));
      intermediates = certs.filter((c) => !isRoot(c));
      // Each certificate must be issued by the next; the last must be issued by a root.
      for (let i = 0; i + 1 < intermediates.length; i++) {
        if (!issuedBy(intermediates[i] as X509Certificate, intermediates[i + 1] as X509Certificate)) {
          throw invalid(`certificate #${i} in ${certPath} is not issued by certificate #${i + 1}`);
        }
      }
      const top = intermediates.at(-1);
      if (top) {
        const root = roots.find((r) => issuedBy(top, r));
        if (!root) throw invalid(`the chain in ${certPath} does not lead to a root in ${bundlePath}`);
        path = [...intermediates, root];
      } else {
        path = [signing];
      }
    }
    const now = this.#clock.now().getTime();
    let notAfter = Number.POSITIVE_INFINITY;
    for (const c of path) {
      const f = x509Fields(c);
      if (f.notAfter.getTime() <= now || f.notBefore.getTime() > now) {
        const name = c.subject.replace(/\n/g, ', ');
        throw invalid(
          `certificate "${name}" is not valid now (${f.notBefore.toISOString()} to ${f.notAfter.toISOString()})`,
        );
      }
      notAfter = Math.min(notAfter, f.notAfter.getTime());
    }
    return { issuer: new CertificateIssuer(signing, key), intermediates, roots, notAfter };
  }

  async mintX509Ca(request: MintX509CaRequest): Promise<MintedX509Ca> {
    const upstream = await this.#load();
    const now = this.#clock.now().getTime();
    const notAfter = Math.min(now + request.ttlSeconds * 1000, upstream.notAfter);
    const der = upstream.issuer.issue(
      caCertificateSpec({
        subject: request.subject,
        publicKey: request.publicKey,
        trustDomain: request.trustDomain,
        notBefore: new Date(now - BACKDATE_MS),
        notAfter: new Date(notAfter),
        serialNumber: randomSerialNumber(),
      }),
    );
    return { chain: [new X509Certificate(der), ...upstream.intermediates], upstreamRoots: upstream.roots };
  }
}

/** The `disk` upstream authority. Files are read (and checked) at every mint, not here. */
export function createDiskUpstreamAuthority(
  config: DiskUpstreamAuthorityConfig,
  options: { readonly clock?: Clock } = {},
): UpstreamAuthority {
  if (!config?.cert_file_path || !config.key_file_path) {
    throw invalid('cert_file_path and key_file_path are required');
  }
  return new DiskUpstreamAuthority(config, options.clock ?? systemClock);
}
