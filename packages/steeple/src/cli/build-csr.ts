/**
 * A minimal PKCS#10 certificate signing request for `steeple server x509 mint`: only the public
 * key matters to the server (identity and names travel in the request), and the self-signature
 * proves possession of the private key.
 * @module
 */
import { type KeyObject, sign } from 'node:crypto';
import { CertificationRequest, CertificationRequestInfo } from '@peculiar/asn1-csr';
import { AsnConvert } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, Name, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';

/** ecdsa-with-SHA256 (RFC 5758 §3.2). */
const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';

/**
 * Builds a DER CSR with an empty subject for an EC P-256 key pair, signed with ECDSA-SHA256.
 * @throws TypeError for any other key type.
 */
export function buildCsr(privateKey: KeyObject, publicKey: KeyObject): Uint8Array {
  if (privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new TypeError('buildCsr signs with EC P-256 keys only');
  }
  const info = new CertificationRequestInfo({
    version: 0,
    subject: new Name(),
    subjectPKInfo: AsnConvert.parse(publicKey.export({ type: 'spki', format: 'der' }), SubjectPublicKeyInfo),
  });
  const toBeSigned = Buffer.from(AsnConvert.serialize(info));
  const signature = sign('sha256', toBeSigned, privateKey); // DER-encoded ECDSA-Sig-Value, as X.509 wants
  const csr = new CertificationRequest({
    certificationRequestInfo: info,
    signatureAlgorithm: new AlgorithmIdentifier({ algorithm: ECDSA_WITH_SHA256 }),
    signature: new Uint8Array(signature).buffer,
  });
  return new Uint8Array(AsnConvert.serialize(csr));
}
