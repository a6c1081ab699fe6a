/**
 * Plain X.509 path validation (RFC 5280 §6, the parts that matter for proving a node's
 * certificate): from the leaf, through the certificates the agent supplied, to one of
 * the configured trust anchors. These are ordinary PKI certificates, not SVIDs, so the
 * SPIFFE verifier does not apply. OpenSSL (node:crypto) checks names, key identifiers,
 * the issuer's keyCertSign and each signature; this module adds validity at `now`,
 * basicConstraints cA and pathLenConstraint, and refuses unknown critical extensions.
 *
 * Name constraints are accepted but not evaluated: nothing x509pop derives (fingerprint,
 * serial number, subject CN) is a name they constrain — Go, and so SPIRE, ignores the CN
 * for them too.
 * @module
 */
import type { X509Certificate } from 'node:crypto';
import { OID, x509Fields } from '@steeple/spiffe/issuance';

/** A chain from the leaf to a trust anchor, both included. */
export interface VerifiedChain {
  readonly leaf: X509Certificate;
  /** `[leaf, …intermediates, anchor]`; just `[leaf]` when the leaf is itself an anchor. */
  readonly path: readonly X509Certificate[];
}

/** Path validation failed; `message` is safe to show (it names certificates by position and subject CN only). */
export class CertificateChainError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CertificateChainError';
  }
}

const MAX_PATH_LENGTH = 8;
/**
 * Most issuer candidates one validation may consider. Certificates that share a name and
 * key all "issue" each other, so a hostile payload of 16 of them would otherwise make the
 * search visit billions of paths; honest chains need a handful of steps.
 */
const MAX_CANDIDATE_STEPS = 512;

/** Extensions whose criticality this validation honours (or, for name constraints, knowingly accepts). */
const UNDERSTOOD_CRITICAL = new Set<string>([
  OID.basicConstraints,
  OID.keyUsage,
  OID.extKeyUsage,
  OID.subjectAltName,
  OID.nameConstraints,
  OID.certificatePolicies,
]);

function label(index: number | 'anchor'): string {
  return index === 'anchor'
    ? 'CA certificate in ca_bundle_path'
    : index === 0
      ? 'certificate'
      : `certificate #${index}`;
}

/** Why `cert` cannot be used at `now`, or undefined. */
function unusableReason(cert: X509Certificate, what: string, now: Date): string | undefined {
  const fields = x509Fields(cert);
  if (now.getTime() < fields.notBefore.getTime())
    return `${what} is not valid before ${fields.notBefore.toISOString()}`;
  if (now.getTime() > fields.notAfter.getTime()) return `${what} expired at ${fields.notAfter.toISOString()}`;
  for (const ext of fields.extensions.values()) {
    if (ext.critical && !UNDERSTOOD_CRITICAL.has(ext.oid))
      return `${what} has an unknown critical extension ${ext.oid}`;
  }
  return undefined;
}

function checkIssuedBy(child: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return child.checkIssued(issuer) && child.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/**
 * Finds a valid path from `certificates[0]` (the leaf) through any of the other
 * `certificates` to one of `anchors`, everything valid at `now`.
 * @throws CertificateChainError naming the first rule the best candidate path broke.
 */
export function verifyCertificateChain(
  certificates: readonly X509Certificate[],
  anchors: readonly X509Certificate[],
  now: Date,
): VerifiedChain {
  const leaf = certificates[0];
  if (leaf === undefined) throw new CertificateChainError('no certificate');
  const leafProblem = unusableReason(leaf, 'certificate', now);
  if (leafProblem) throw new CertificateChainError(leafProblem);
  const anchorBytes = new Set(anchors.map((a) => a.raw.toString('base64')));
  if (anchorBytes.has(leaf.raw.toString('base64'))) return Object.freeze({ leaf, path: Object.freeze([leaf]) });

  const intermediates = certificates.slice(1).filter((c) => !anchorBytes.has(c.raw.toString('base64')));
  // Each (child, issuer) pair is checked once: a signature verification costs ≈ 60 µs.
  const issuedMemo = new Map<X509Certificate, Map<X509Certificate, boolean>>();
  const issuedBy = (child: X509Certificate, issuer: X509Certificate): boolean => {
    let row = issuedMemo.get(child);
    if (!row) {
      row = new Map();
      issuedMemo.set(child, row);
    }
    let ok = row.get(issuer);
    if (ok === undefined) {
      ok = checkIssuedBy(child, issuer);
      row.set(issuer, ok);
    }
    return ok;
  };
  let steps = 0;
  let deepest: { depth: number; reason: string } | undefined;
  const fail = (depth: number, reason: string) => {
    if (deepest === undefined || depth > deepest.depth) deepest = { depth, reason };
  };

  // Depth-first over candidate issuers, anchors first: a path ends at the first anchor.
  const extend = (path: X509Certificate[]): X509Certificate[] | undefined => {
    const child = path[path.length - 1] as X509Certificate;
    if (path.length > MAX_PATH_LENGTH) {
      fail(path.length, `certificate chain is longer than ${MAX_PATH_LENGTH}`);
      return undefined;
    }
    const candidates: [X509Certificate, number | 'anchor'][] = [
      ...anchors.map((a): [X509Certificate, 'anchor'] => [a, 'anchor']),
      ...intermediates
        .map((c): [X509Certificate, number] => [c, certificates.indexOf(c)])
        .filter(([c]) => !path.includes(c)),
    ];
    for (const [candidate, index] of candidates) {
      if (++steps > MAX_CANDIDATE_STEPS)
        throw new CertificateChainError('certificate chain is too complex to validate');
      if (!issuedBy(child, candidate)) continue;
      const what = label(index);
      const problem = unusableReason(candidate, what, now) ?? caReason(candidate, what, path.length - 1);
      if (problem) {
        fail(path.length, problem);
        continue;
      }
      if (index === 'anchor') return [...path, candidate];
      const found = extend([...path, candidate]);
      if (found) return found;
    }
    fail(path.length - 1, 'certificate chain does not lead to a CA in ca_bundle_path');
    return undefined;
  };

  const path = extend([leaf]);
  if (!path)
    throw new CertificateChainError(deepest?.reason ?? 'certificate chain does not lead to a CA in ca_bundle_path');
  return Object.freeze({ leaf, path: Object.freeze(path) });
}

/** Why `cert` may not sign a certificate with `below` intermediates under it, or undefined. */
function caReason(cert: X509Certificate, what: string, below: number): string | undefined {
  const bc = x509Fields(cert).basicConstraints;
  if (!bc?.ca) return `${what} is not a CA (basicConstraints cA is not true)`;
  if (bc.pathLength !== undefined && below > bc.pathLength) {
    return `${what} allows ${bc.pathLength} intermediate CA(s) below it (pathLenConstraint), the chain has ${below}`;
  }
  return undefined;
}
