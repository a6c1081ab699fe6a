/**
 * The X509-SVID rules shared by {@link X509Svid.parse} (our own SVIDs from the Workload
 * API) and {@link verifyX509Svid} (a peer's chain): the leaf rules of X509-SVID §2,
 * §3.1, §4.1, §4.3, §4.4 and §5.2, and the signing-certificate rules of §3.2/§4.1/§4.3.
 * This is the union of what go-spiffe's `ParseRaw` checks and what the spec demands
 * (conformance X-1…X-8, X-12, X-14). Messages name the certificate and the rule.
 * @module
 */
import type { X509Certificate } from 'node:crypto';
import { X509SvidError } from '../errors.js';
import { KU, OID, type X509Fields, x509Fields } from '../internal/x509-fields.js';
import { SpiffeId } from '../spiffeid/spiffe-id.js';

/** A readable, bounded description of a certificate for error messages. */
export function describeCertificate(cert: X509Certificate): string {
  const subject = cert.subject.replace(/\n/g, ', ');
  return subject === ''
    ? 'empty subject'
    : `subject ${JSON.stringify(subject.length > 100 ? `${subject.slice(0, 100)}…` : subject)}`;
}

function invalid(message: string): X509SvidError {
  return new X509SvidError('ERR_X509SVID_INVALID', message);
}

/** The cached fields of `cert`, or an ERR_X509SVID_INVALID naming `label` when the DER is malformed. */
export function fieldsOf(cert: X509Certificate, label: string): X509Fields {
  try {
    return x509Fields(cert);
  } catch (cause) {
    throw new X509SvidError(
      'ERR_X509SVID_INVALID',
      `X.509-SVID ${label}: malformed certificate: ${(cause as Error).message}`,
      { cause },
    );
  }
}

function checkLeaf(cert: X509Certificate): SpiffeId {
  const f = fieldsOf(cert, 'leaf');
  const where = 'X.509-SVID leaf';
  const uris = f.subjectAltName?.uris ?? [];
  if (uris.length !== 1) {
    throw invalid(`${where}: must have exactly one URI SAN, found ${uris.length} (X509-SVID §2, X-1/X-12)`);
  }
  const uri = uris[0] as string;
  const id = SpiffeId.tryParse(uri);
  if (!(id instanceof SpiffeId)) {
    throw new X509SvidError(
      'ERR_X509SVID_INVALID',
      `${where}: URI SAN is not a valid SPIFFE ID: ${id.message} (X509-SVID §5.2, X-12)`,
      { cause: id },
    );
  }
  if (id.isTrustDomainId()) {
    throw invalid(`${where}: SPIFFE ID "${id}" must have a non-root path (X509-SVID §3.1, X-2)`);
  }
  if (f.basicConstraints?.ca) {
    throw invalid(
      `${where}: must not be a CA (basicConstraints cA=true); signing certificates cannot authenticate (X509-SVID §4.1/§5.2, X-3/X-14)`,
    );
  }
  const ku = f.keyUsage;
  if (!ku) throw invalid(`${where}: keyUsage extension is missing (X509-SVID §4.3, X-4)`);
  if (!ku.critical) throw invalid(`${where}: keyUsage extension must be critical (X509-SVID §4.3, X-4)`);
  if (ku.flags & KU.keyCertSign) {
    throw invalid(`${where}: keyUsage must not include keyCertSign (X509-SVID §4.3/§5.2, X-5/X-12)`);
  }
  if (ku.flags & KU.cRLSign) {
    throw invalid(`${where}: keyUsage must not include cRLSign (X509-SVID §4.3/§5.2, X-5/X-12)`);
  }
  if (!(ku.flags & KU.digitalSignature)) {
    throw invalid(`${where}: keyUsage must include digitalSignature (X509-SVID §4.3, X-5)`);
  }
  const eku = f.extKeyUsage;
  if (eku && !(eku.purposes.includes(OID.serverAuth) && eku.purposes.includes(OID.clientAuth))) {
    throw invalid(`${where}: extendedKeyUsage must include both serverAuth and clientAuth (X509-SVID §4.4, X-6)`);
  }
  if (f.subjectIsEmpty && !f.subjectAltName?.critical) {
    throw invalid(`${where}: subject is empty, so the subjectAltName extension must be critical (X509-SVID §3.1, X-7)`);
  }
  return id;
}

// A leaf's verdict depends only on its bytes, so it is computed once per certificate object.
const leafVerdicts = new WeakMap<X509Certificate, SpiffeId | X509SvidError>();

/** Checks the X509-SVID leaf rules and returns the leaf's SPIFFE ID, or throws ERR_X509SVID_INVALID. */
export function leafSpiffeId(cert: X509Certificate): SpiffeId {
  let verdict = leafVerdicts.get(cert);
  if (verdict === undefined) {
    try {
      verdict = checkLeaf(cert);
    } catch (err) {
      if (!(err instanceof X509SvidError)) throw err;
      verdict = err;
    }
    leafVerdicts.set(cert, verdict);
  }
  if (verdict instanceof X509SvidError) {
    throw new X509SvidError(verdict.code, verdict.message, { cause: verdict.cause });
  }
  return verdict;
}

/**
 * Checks the signing-certificate rules for a certificate above the leaf: basicConstraints
 * cA=true and keyUsage with keyCertSign (X509-SVID §3.2/§4.1/§4.3, X-8). `label` names
 * it in errors, e.g. "chain[1]".
 */
export function checkSigningCertificate(cert: X509Certificate, label: string): X509Fields {
  const f = fieldsOf(cert, label);
  const where = `X.509-SVID ${label} (${describeCertificate(cert)})`;
  if (!f.basicConstraints?.ca) {
    throw invalid(`${where}: a signing certificate must be a CA (basicConstraints cA=true) (X509-SVID §3.2/§4.1, X-8)`);
  }
  if (!f.keyUsage || !(f.keyUsage.flags & KU.keyCertSign)) {
    throw invalid(`${where}: a signing certificate must have keyUsage keyCertSign (X509-SVID §3.2/§4.3, X-8)`);
  }
  return f;
}
