/**
 * What the Agent API needs from the rest of the server, as small interfaces: the CA as a
 * signer, and the node attestors by name. The composition root (server.ts) adapts the real
 * CA to {@link AgentApiSigner}; tests pass a test CA.
 * @module
 */
import type { KeyObject } from 'node:crypto';
import type { SpiffeId } from '@steeple/spiffe';

/** An X.509-SVID as the CA issued it. */
export interface IssuedX509Svid {
  /** DER certificates: the leaf first, then intermediates up to (not including) the bundle's root. */
  readonly certChain: readonly Uint8Array[];
  /** The leaf's notAfter, epoch seconds (the CA may cap the asked TTL to its own expiry). */
  readonly expiresAt: number;
}

/** A JWT-SVID as the CA minted it. */
export interface IssuedJwtSvid {
  readonly token: string;
  /** `exp`, epoch seconds. */
  readonly expiresAt: number;
  /** `iat`, epoch seconds. */
  readonly issuedAt: number;
}

/** What the Agent API asks the CA to sign. The SPIFFE ID, names and TTL come from the entry or attestation, never from the CSR. */
export interface X509SvidRequest {
  readonly spiffeId: SpiffeId;
  /** The key to certify (from a CSR whose self-signature was already verified). */
  readonly publicKey: KeyObject;
  /** The same key as SubjectPublicKeyInfo DER, as it goes into the certificate. */
  readonly subjectPublicKeyInfo: Uint8Array;
  readonly ttlSeconds: number;
  /** DNS SANs; the first one is also the subject CN (as SPIRE does). */
  readonly dnsNames?: readonly string[];
}

export interface JwtSvidRequest {
  readonly spiffeId: SpiffeId;
  readonly audience: readonly string[];
  readonly ttlSeconds: number;
}

/** The CA, as far as the Agent API signs with it. */
export interface AgentApiSigner {
  signX509Svid(request: X509SvidRequest): Promise<IssuedX509Svid>;
  mintJwtSvid(request: JwtSvidRequest): Promise<IssuedJwtSvid>;
}
