import type { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, PeerCertificate, TLSSocket } from 'node:tls';
import { certificateFromDer } from '../internal/x509-fields.js';
import type { SpiffeId } from '../spiffeid/spiffe-id.js';

/** Where a verified peer ID is kept on a TLS socket. */
export const kPeerId: unique symbol = Symbol.for('steeple.spiffe.peerId');

type SocketWithPeer = TLSSocket & { [kPeerId]?: SpiffeId };

/** The verified peer ID marked on a socket by the server-side check. */
export function peerIdOnSocket(socket: TLSSocket): SpiffeId | undefined {
  return (socket as SocketWithPeer)[kPeerId];
}

export function setPeerId(socket: TLSSocket, id: SpiffeId): void {
  (socket as SocketWithPeer)[kPeerId] = id;
}

/**
 * The peer's chain as presented (leaf first), from the detailed peer certificate that
 * Node builds. Stops before a self-signed certificate: the anchor comes from our bundle.
 */
export function peerChainFromDetailed(peer: PeerCertificate | DetailedPeerCertificate): X509Certificate[] {
  const chain: X509Certificate[] = [];
  let cur: DetailedPeerCertificate | undefined = peer as DetailedPeerCertificate;
  const seen = new Set<string>();
  while (cur?.raw && cur.raw.length > 0) {
    const fp = cur.fingerprint256;
    if (seen.has(fp)) break;
    seen.add(fp);
    const isSelfIssued = cur.issuerCertificate === cur || cur.issuerCertificate?.fingerprint256 === fp;
    if (isSelfIssued && chain.length > 0) break;
    chain.push(certificateFromDer(cur.raw));
    cur = cur.issuerCertificate;
  }
  return chain;
}
