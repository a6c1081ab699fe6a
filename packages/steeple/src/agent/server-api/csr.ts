/**
 * Keys and PKCS#10 certificate signing requests (RFC 2986) for the SVIDs the agent asks
 * the server to sign. Keys are EC P-256, generated on the agent and never sent anywhere.
 * The request carries an empty subject and no attributes: the server takes only the public
 * key (after checking the self-signature, the proof of possession) and decides names and
 * lifetime from the registration entry. The DER is written directly: a CSR is five fields.
 * @module
 */
import { generateKeyPair, type KeyObject, sign } from 'node:crypto';
import { promisify } from 'node:util';

const generateKeyPairAsync = promisify(generateKeyPair);

/** ecdsa-with-SHA256 (1.2.840.10045.4.3.2), as a complete AlgorithmIdentifier. */
const ECDSA_WITH_SHA256 = Buffer.from('300a06082a8648ce3d040302', 'hex');

function tlv(tag: number, body: Buffer): Buffer {
  const n = body.length;
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, body]);
}

/** A fresh key pair for one SVID. */
export interface SvidKeyPair {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

/** Generates an EC P-256 key pair (off the main thread). */
export async function generateSvidKey(): Promise<SvidKeyPair> {
  return generateKeyPairAsync('ec', { namedCurve: 'P-256' });
}

/** A DER PKCS#10 request for `keys`, signed with ECDSA-SHA256. */
export function buildCsr(keys: SvidKeyPair): Uint8Array {
  const spki = keys.publicKey.export({ type: 'spki', format: 'der' });
  const info = tlv(
    0x30,
    Buffer.concat([
      Buffer.from([0x02, 0x01, 0x00]), // version v1 (0)
      Buffer.from([0x30, 0x00]), // subject: the empty Name
      spki,
      Buffer.from([0xa0, 0x00]), // attributes [0]: none
    ]),
  );
  const signature = sign('sha256', info, keys.privateKey); // DER ECDSA-Sig-Value
  const bits = tlv(0x03, Buffer.concat([Buffer.from([0x00]), signature]));
  return new Uint8Array(tlv(0x30, Buffer.concat([info, ECDSA_WITH_SHA256, bits])));
}
