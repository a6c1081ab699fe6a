/**
 * Verification of a peer's X.509-SVID chain (X509-SVID §5): the leaf rules, then RFC
 * 5280 path validation to an authority of the leaf's OWN trust domain and no other.
 * @module
 */
import { X509Certificate } from 'node:crypto';
import type { X509BundleSource } from '../bundle/source.js';
import { X509SvidError } from '../errors.js';
import { certificateFromDer, type NameConstraintsField, OID, type X509Fields } from '../internal/x509-fields.js';
import type { SpiffeId } from '../spiffeid/spiffe-id.js';
import { checkSigningCertificate, describeCertificate, fieldsOf, leafSpiffeId } from './x509-svid-rules.js';

/** Options for {@link verifyX509Svid}. */
export interface VerifyX509SvidOptions {
  /** The time to check validity periods at; default the current time. */
  readonly now?: Date;
}

/** The outcome of a successful {@link verifyX509Svid}. */
export interface VerifiedX509Svid {
  /** The peer's SPIFFE ID, from the leaf's URI SAN. */
  readonly id: SpiffeId;
  /** The path that was validated: leaf, intermediates, and the trust anchor last. */
  readonly verifiedChain: X509Certificate[];
}

/** Extensions whose semantics this verifier applies (or that carry no constraint), so they may be critical. */
const UNDERSTOOD_EXTENSIONS: ReadonlySet<string> = new Set([
  OID.basicConstraints,
  OID.keyUsage,
  OID.extKeyUsage,
  OID.subjectAltName,
  OID.nameConstraints,
  OID.subjectKeyIdentifier,
  OID.authorityKeyIdentifier,
  OID.certificatePolicies,
]);

/** Signature algorithms accepted on verified certificates: no MD5, no SHA-1. */
const SIGNATURE_ALGORITHMS: ReadonlyMap<string, string> = new Map([
  ['1.2.840.10045.4.3.2', 'ecdsa-with-SHA256'],
  ['1.2.840.10045.4.3.3', 'ecdsa-with-SHA384'],
  ['1.2.840.10045.4.3.4', 'ecdsa-with-SHA512'],
  ['1.2.840.113549.1.1.11', 'sha256WithRSAEncryption'],
  ['1.2.840.113549.1.1.12', 'sha384WithRSAEncryption'],
  ['1.2.840.113549.1.1.13', 'sha512WithRSAEncryption'],
  ['1.2.840.113549.1.1.10', 'RSASSA-PSS'],
  ['1.3.101.112', 'Ed25519'],
  ['1.3.101.113', 'Ed448'],
]);

/** Bounds the work an adversarial chain (many look-alike intermediates) can cause. */
const MAX_SIGNATURE_CHECKS = 32;

function invalid(message: string): X509SvidError {
  return new X509SvidError('ERR_X509SVID_INVALID', message);
}

function toCertificate(cert: X509Certificate | Uint8Array, index: number): X509Certificate {
  if (cert instanceof X509Certificate) return cert;
  if (!(cert instanceof Uint8Array)) {
    throw new TypeError('verifyX509Svid: chain entries must be X509Certificate or Uint8Array');
  }
  try {
    return certificateFromDer(cert);
  } catch (cause) {
    throw new X509SvidError(
      'ERR_X509SVID_INVALID',
      `X.509-SVID ${index === 0 ? 'leaf' : `chain[${index}]`}: not a valid DER certificate`,
      { cause },
    );
  }
}

/** Checks what a certificate whose signature is about to be verified must satisfy on its own. */
function checkVerifiable(f: X509Fields, where: string): void {
  for (const ext of f.extensions.values()) {
    if (ext.critical && !UNDERSTOOD_EXTENSIONS.has(ext.oid)) {
      throw invalid(`${where}: unrecognised critical extension ${ext.oid} (RFC 5280 §4.2, X-11)`);
    }
  }
  if (!SIGNATURE_ALGORITHMS.has(f.signatureAlgorithm)) {
    throw invalid(`${where}: signature algorithm ${f.signatureAlgorithm} is not accepted (X-11)`);
  }
  if (!f.signatureAlgorithmsMatch) {
    throw invalid(`${where}: the signature algorithm inside and outside the TBSCertificate differ (RFC 5280 §4.1.1.2)`);
  }
}

function checkValidity(f: X509Fields, where: string, now: number): void {
  if (now > f.notAfter.getTime()) {
    throw new X509SvidError('ERR_X509SVID_EXPIRED', `${where}: expired at ${f.notAfter.toISOString()} (X-11)`);
  }
  if (now < f.notBefore.getTime()) {
    throw new X509SvidError(
      'ERR_X509SVID_EXPIRED',
      `${where}: not valid before ${f.notBefore.toISOString()} (not yet valid) (X-11)`,
    );
  }
}

/** The host of a URI (RFC 3986 authority without userinfo and port), lowercased; undefined when it has none. */
function uriHost(uri: string): string | undefined {
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/.exec(uri);
  if (!m) return undefined;
  const host = (m[1] as string).replace(/^.*@/, '').replace(/:\d*$/, '');
  return host === '' ? undefined : host.toLowerCase();
}

function uriHostMatches(host: string, constraint: string): boolean {
  const c = constraint.toLowerCase();
  return c.startsWith('.') ? host.endsWith(c) : host === c;
}

function dnsMatches(name: string, constraint: string): boolean {
  const n = name.toLowerCase();
  const c = constraint.toLowerCase();
  if (c === '') return true;
  if (c.startsWith('.')) return n.endsWith(c);
  return n === c || n.endsWith(`.${c}`);
}

/**
 * RFC 5280 §4.2.1.10 for the name forms SVIDs carry (URI, DNS). Other forms are refused
 * rather than ignored, so a constraint we cannot evaluate never widens trust.
 */
function checkNameConstraints(nc: NameConstraintsField, below: readonly X509Fields[], where: string): void {
  const all = [...nc.permitted, ...nc.excluded];
  const other = all.find((s) => s.form === 'other');
  if (other) throw invalid(`${where}: name constraints of form ${other.value} are not supported (X509-SVID §4.2, X-9)`);
  const permittedUris = nc.permitted.filter((s) => s.form === 'uri').map((s) => s.value);
  const permittedDns = nc.permitted.filter((s) => s.form === 'dns').map((s) => s.value);
  const excludedUris = nc.excluded.filter((s) => s.form === 'uri').map((s) => s.value);
  const excludedDns = nc.excluded.filter((s) => s.form === 'dns').map((s) => s.value);
  for (const f of below) {
    for (const uri of f.subjectAltName?.uris ?? []) {
      const host = uriHost(uri);
      const ok =
        host !== undefined &&
        !excludedUris.some((c) => uriHostMatches(host, c)) &&
        (permittedUris.length === 0 || permittedUris.some((c) => uriHostMatches(host, c)));
      const bad = host === undefined ? excludedUris.length > 0 || permittedUris.length > 0 : !ok;
      if (bad) {
        throw invalid(`${where}: name constraints do not permit URI ${JSON.stringify(uri)} (X509-SVID §4.2, X-9)`);
      }
    }
    for (const dns of f.subjectAltName?.dnsNames ?? []) {
      const ok =
        !excludedDns.some((c) => dnsMatches(dns, c)) &&
        (permittedDns.length === 0 || permittedDns.some((c) => dnsMatches(dns, c)));
      if (!ok) {
        throw invalid(`${where}: name constraints do not permit DNS name ${JSON.stringify(dns)} (X509-SVID §4.2, X-9)`);
      }
    }
  }
}

/**
 * Verifies a peer's X.509-SVID chain and returns its SPIFFE ID.
 *
 * - The leaf must satisfy the X509-SVID leaf rules (X-1…X-7, X-12, X-14): exactly one
 *   URI SAN holding a SPIFFE ID with a path, not a CA, keyUsage critical with
 *   digitalSignature and without keyCertSign/cRLSign, EKU (if any) with serverAuth and
 *   clientAuth. Every further certificate must be a CA with keyCertSign (X-8).
 * - Trust anchors are ONLY the authorities that `bundleSource` returns for the leaf's
 *   own trust domain (X-13): a CA of trust domain A never vouches for an ID in B, even
 *   if A's bundle is the only one around. No bundle ⇒ ERR_X509SVID_UNTRUSTED.
 * - RFC 5280 path validation (X-11) from the leaf through the supplied intermediates
 *   (any order) to an authority: signatures, the validity of every certificate
 *   including the anchor at `now`, CA flags and keyCertSign, pathLenConstraint,
 *   URI/DNS name constraints, unknown critical extensions. A bundle may hold an
 *   intermediate, which then anchors the path directly.
 *
 * Parsed fields are cached per certificate object (and DER input is mapped to cached
 * objects by its bytes), so repeated verification costs about one signature check per
 * certificate in the path.
 *
 * @returns the ID and the validated path (leaf … anchor).
 * @throws {X509SvidError} ERR_X509SVID_INVALID (a rule is broken), ERR_X509SVID_UNTRUSTED
 *   (no bundle, or no valid path to it), ERR_X509SVID_EXPIRED (a certificate on the path
 *   is outside its validity period at `now`).
 *
 * @example
 * const { id } = verifyX509Svid(peerChain, bundleSet);
 */
export function verifyX509Svid(
  chain: readonly (X509Certificate | Uint8Array)[],
  bundleSource: X509BundleSource,
  opts: VerifyX509SvidOptions = {},
): VerifiedX509Svid {
  if (chain.length === 0) throw invalid('X.509-SVID: the certificate chain is empty');
  const certs = chain.map(toCertificate);
  const leaf = certs[0] as X509Certificate;
  const id = leafSpiffeId(leaf);
  const supplied: X509Fields[] = [];
  for (let i = 1; i < certs.length; i++)
    supplied[i] = checkSigningCertificate(certs[i] as X509Certificate, `chain[${i}]`);

  const td = id.trustDomain;
  const bundle = bundleSource.getX509BundleForTrustDomain(td);
  if (!bundle?.trustDomain.equals(td)) {
    throw new X509SvidError(
      'ERR_X509SVID_UNTRUSTED',
      `X.509-SVID ${id}: no X.509 bundle for trust domain "${td.name}" (X-13)`,
    );
  }
  const anchors = bundle.authorities;
  if (anchors.length === 0) {
    throw new X509SvidError(
      'ERR_X509SVID_UNTRUSTED',
      `X.509-SVID ${id}: the X.509 bundle of "${td.name}" is empty (B-2)`,
    );
  }

  const now = (opts.now ?? new Date()).getTime();
  if (Number.isNaN(now)) throw new TypeError('verifyX509Svid: opts.now is an invalid Date');
  const leafFields = fieldsOf(leaf, 'leaf');
  checkVerifiable(leafFields, 'X.509-SVID leaf');
  checkValidity(leafFields, 'X.509-SVID leaf', now);

  // Depth-first path building. `path` holds the certificates validated so far (leaf
  // first); the first rule failure is remembered so that a rejected path reports why.
  const path: X509Certificate[] = [leaf];
  const pathFields: X509Fields[] = [leafFields];
  const used = new Set<number>();
  let firstError: X509SvidError | undefined;
  let signatureChecks = 0;
  let gaveUp: X509SvidError | undefined;

  const labelOf = (depth: number, cert: X509Certificate) =>
    depth === 0 ? 'X.509-SVID leaf' : `X.509-SVID chain[${certs.indexOf(cert)}] (${describeCertificate(cert)})`;

  /** Validates `issuer` as the issuer of the last certificate on the path; throws the rule it breaks. */
  const acceptIssuer = (issuer: X509Certificate, f: X509Fields, where: string): void => {
    const subject = path[path.length - 1] as X509Certificate;
    if (++signatureChecks > MAX_SIGNATURE_CHECKS) {
      gaveUp = new X509SvidError(
        'ERR_X509SVID_UNTRUSTED',
        `X.509-SVID ${id}: gave up after ${MAX_SIGNATURE_CHECKS} candidate issuers`,
      );
      throw gaveUp;
    }
    if (!subject.verify(issuer.publicKey)) {
      throw new X509SvidError(
        'ERR_X509SVID_UNTRUSTED',
        `${labelOf(path.length - 1, subject)}: signature does not verify with the key of ${where} (X-11)`,
      );
    }
    checkValidity(f, where, now);
    // pathLenConstraint counts the non-self-issued intermediates below this CA.
    let intermediates = 0;
    for (let i = 1; i < pathFields.length; i++) if (!(pathFields[i] as X509Fields).selfIssued) intermediates++;
    const pathLength = f.basicConstraints?.pathLength;
    if (pathLength !== undefined && intermediates > pathLength) {
      throw invalid(
        `${where}: pathLenConstraint ${pathLength} allows ${pathLength} intermediate(s) below it, found ${intermediates} (X-11)`,
      );
    }
    if (f.nameConstraints) {
      const below = pathFields.filter((pf, i) => i === 0 || !pf.selfIssued);
      checkNameConstraints(f.nameConstraints, below, where);
    }
  };

  const attempt = (fn: () => X509Certificate[] | undefined): X509Certificate[] | undefined => {
    try {
      return fn();
    } catch (err) {
      if (!(err instanceof X509SvidError) || err === gaveUp) throw err;
      firstError ??= err;
      return undefined;
    }
  };

  const search = (): X509Certificate[] | undefined => {
    const current = path[path.length - 1] as X509Certificate;
    for (const anchor of anchors) {
      if (!current.checkIssued(anchor)) continue;
      const found = attempt(() => {
        const where = `X.509-SVID trust anchor of "${td.name}" (${describeCertificate(anchor)})`;
        const f = fieldsOf(anchor, `trust anchor of "${td.name}"`);
        if (!f.basicConstraints?.ca) {
          throw invalid(`${where}: is not a CA certificate (basicConstraints cA=true) (X-11)`);
        }
        acceptIssuer(anchor, f, where);
        return [...path, anchor];
      });
      if (found) return found;
    }
    for (let i = 1; i < certs.length; i++) {
      const candidate = certs[i] as X509Certificate;
      if (used.has(i) || !current.checkIssued(candidate) || bundle.hasAuthority(candidate)) continue;
      const found = attempt(() => {
        const f = supplied[i] as X509Fields;
        const where = `X.509-SVID chain[${i}] (${describeCertificate(candidate)})`;
        acceptIssuer(candidate, f, where);
        checkVerifiable(f, where);
        path.push(candidate);
        pathFields.push(f);
        used.add(i);
        try {
          return search();
        } finally {
          path.pop();
          pathFields.pop();
          used.delete(i);
        }
      });
      if (found) return found;
    }
    return undefined;
  };

  const verifiedChain = search();
  if (!verifiedChain) {
    throw (
      firstError ??
      new X509SvidError(
        'ERR_X509SVID_UNTRUSTED',
        `X.509-SVID ${id}: the chain does not lead to an authority of trust domain "${td.name}" (X-11/X-13)`,
      )
    );
  }
  return { id, verifiedChain };
}
