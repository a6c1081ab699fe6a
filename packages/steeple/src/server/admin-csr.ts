/**
 * A synchronous CSR check for the admin API's `x509 mint`, whose dependency contract
 * (`AdminDeps.parseCsr`) returns the key directly. The Agent API's hot path uses the CA's
 * faster asynchronous `parseCsr` (ca/csr.ts); this one is for the rare operator call, so it
 * trades a little speed (node's generic key import) for being synchronous. The same key
 * rules apply: the SubjectPublicKeyInfo goes through the CA's own check.
 * @module
 */
import { createPublicKey, type KeyObject, verify } from 'node:crypto';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CsrError } from './ca/ca-errors.js';
import { MAX_CSR_BYTES } from './ca/csr.js';
import { parseSubjectPublicKeyInfo } from './ca/subject-public-key.js';

const HASH_BY_SIGNATURE_OID: Readonly<Record<string, 'sha256' | 'sha384' | 'sha512'>> = {
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
};

/**
 * Parses a DER PKCS#10 request, checks its key and verifies its self-signature (proof of
 * possession); returns the public key.
 * @throws CsrError naming the rule broken.
 */
export function parseCsrSync(der: Uint8Array): KeyObject {
  if (der.length === 0) throw new CsrError('empty');
  if (der.length > MAX_CSR_BYTES) throw new CsrError(`larger than ${MAX_CSR_BYTES} bytes (${der.length})`);
  let request: CertificationRequest;
  try {
    request = AsnConvert.parse(der, CertificationRequest);
  } catch (cause) {
    throw new CsrError(`not a DER PKCS#10 request: ${(cause as Error).message}`);
  }
  const info = request.certificationRequestInfoRaw;
  if (info === undefined) throw new CsrError('not a DER PKCS#10 request: no CertificationRequestInfo');
  const spki = Buffer.from(AsnConvert.serialize(request.certificationRequestInfo.subjectPKInfo));
  try {
    parseSubjectPublicKeyInfo(spki);
  } catch (cause) {
    throw new CsrError(cause instanceof RangeError ? cause.message : 'unsupported public key');
  }
  const hash = HASH_BY_SIGNATURE_OID[request.signatureAlgorithm.algorithm];
  if (hash === undefined) {
    throw new CsrError(`signature algorithm ${request.signatureAlgorithm.algorithm} is not supported`);
  }
  const publicKey = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  let valid = false;
  try {
    valid = verify(hash, Buffer.from(info), publicKey, Buffer.from(request.signature));
  } catch {
    valid = false;
  }
  if (!valid) throw new CsrError("the signature does not verify with the request's own key (no proof of possession)");
  return publicKey;
}
