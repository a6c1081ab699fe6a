/**
 * An X.509-SVID the agent obtained for one entry, with the private key it generated, kept
 * in the Workload API's encodings (concatenated DER chain, PKCS#8 DER key), and the time at
 * which it should be replaced: half its lifetime, moved by up to ±10 % at random so that
 * SVIDs signed together are not all renewed in the same instant (no signing storms).
 * @module
 */
import { type KeyObject, X509Certificate } from 'node:crypto';
import type { X509Svid as ProtoX509Svid } from '../../gen/steeple/types/v1/svid_pb.js';
import type { CachedEntry } from './cached-entry.js';

/** Share of the lifetime after which an SVID is renewed. */
export const ROTATION_FRACTION = 0.5;
/** Largest random shift of the renewal time, as a share of the half life. */
export const ROTATION_JITTER = 0.1;

export interface IssuedX509Svid {
  readonly entryId: string;
  readonly spiffeId: string;
  /** Leaf first, intermediates after, concatenated DER. */
  readonly chainDer: Buffer;
  /** The SVID's private key, PKCS#8 DER. */
  readonly keyDer: Buffer;
  /** Epoch ms. */
  readonly notBefore: number;
  readonly notAfter: number;
  /** When to replace it, epoch ms. */
  readonly rotateAt: number;
  /** The leaf's serial number (hex), for logs and change detection. */
  readonly serial: string;
  /** The entry as it was when this SVID was requested. */
  readonly entry: CachedEntry;
}

/** The renewal time for a certificate valid from `notBefore` to `notAfter` (epoch ms); `random` in [0, 1). */
export function rotationTime(notBefore: number, notAfter: number, random: () => number): number {
  const half = (notAfter - notBefore) * ROTATION_FRACTION;
  const jitter = (random() * 2 - 1) * ROTATION_JITTER * half;
  return Math.round(notBefore + half + jitter);
}

/**
 * Checks a signed SVID against what was asked (the entry's SPIFFE ID in the leaf's URI
 * SAN, our own key certified) and builds the cached form.
 * @throws Error naming the mismatch; such an SVID is never served.
 */
export function issuedFromProto(
  entry: CachedEntry,
  svid: ProtoX509Svid,
  privateKey: KeyObject,
  publicKey: KeyObject,
  random: () => number,
): IssuedX509Svid {
  const first = svid.certChain[0];
  if (first === undefined) throw new Error(`the server returned an empty certificate chain for entry ${entry.id}`);
  const leaf = new X509Certificate(first);
  const uris = (leaf.subjectAltName ?? '')
    .split(', ')
    .filter((n) => n.startsWith('URI:'))
    .map((n) => n.slice(4));
  if (uris.length !== 1 || uris[0] !== entry.spiffeId) {
    throw new Error(`the SVID for entry ${entry.id} names ${uris.join(', ') || 'no URI'} instead of ${entry.spiffeId}`);
  }
  if (!leaf.publicKey.equals(publicKey)) {
    throw new Error(`the SVID for entry ${entry.id} certifies another key than the one requested`);
  }
  const notBefore = Date.parse(leaf.validFrom);
  const notAfter = Date.parse(leaf.validTo);
  return Object.freeze({
    entryId: entry.id,
    spiffeId: entry.spiffeId,
    chainDer: Buffer.concat(svid.certChain.map((c) => Buffer.from(c))),
    keyDer: privateKey.export({ type: 'pkcs8', format: 'der' }),
    notBefore,
    notAfter,
    rotateAt: rotationTime(notBefore, notAfter, random),
    serial: leaf.serialNumber,
    entry,
  });
}
