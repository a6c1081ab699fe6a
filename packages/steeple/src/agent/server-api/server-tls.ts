/**
 * TLS for the agent's connection to the server's Agent API. The server must present an
 * X.509-SVID for `spiffe://<trust_domain>/spire/server` that chains to the agent's bundle
 * of its own trust domain (the bootstrap bundle before the first attestation, the
 * server-provided one after); host names play no part. The agent presents its own SVID
 * once it has one (AttestAgent is the only call made without).
 * @module
 */
import { X509Certificate } from 'node:crypto';
import type { SecureClientSessionOptions } from 'node:http2';
import type { PeerCertificate } from 'node:tls';
import {
  type Clock,
  type SpiffeBundle,
  SpiffeError,
  systemClock,
  verifyX509Svid,
  type X509Svid,
} from '@steeple/spiffe';

/** What the connection presents and trusts. */
export interface AgentTlsMaterial {
  /** The bundle of the agent's own trust domain. */
  readonly bundle: SpiffeBundle;
  /** The agent SVID, once attested. */
  readonly svid?: X509Svid;
}

/** The SPIFFE ID every Steeple (and SPIRE) server presents. */
export function serverIdFor(trustDomain: string): string {
  return `spiffe://${trustDomain}/spire/server`;
}

/** The peer chain Node hands to checkServerIdentity, leaf first, as certificates. */
function chainOf(cert: PeerCertificate): X509Certificate[] {
  const chain: X509Certificate[] = [];
  const seen = new Set<string>();
  type Detailed = PeerCertificate & { issuerCertificate?: Detailed };
  for (let c: Detailed | undefined = cert as Detailed; c?.raw !== undefined; c = c.issuerCertificate) {
    if (seen.has(c.fingerprint256)) break;
    seen.add(c.fingerprint256);
    chain.push(new X509Certificate(c.raw));
  }
  return chain;
}

/** http2.connect options that verify the server by its SPIFFE ID and present the agent SVID. */
export function agentTlsOptions(material: AgentTlsMaterial, clock: Clock = systemClock): SecureClientSessionOptions {
  const td = material.bundle.trustDomain;
  const expected = serverIdFor(td.name);
  const roots = material.bundle.x509Authorities.map((c) => c.toString());
  if (roots.length === 0) throw new Error(`the bundle of trust domain "${td.name}" holds no X.509 authority`);
  const options: SecureClientSessionOptions = {
    ca: roots,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    checkServerIdentity(_host, cert) {
      try {
        const { id } = verifyX509Svid(chainOf(cert), material.bundle, { now: clock.now() });
        if (id.toString() !== expected) return new Error(`the server presented ${id}, expected ${expected}`);
        return undefined;
      } catch (err) {
        if (err instanceof SpiffeError) return new Error(`the server's SVID is not trusted: ${err.message}`);
        throw err;
      }
    },
  };
  if (material.svid !== undefined) {
    options.key = material.svid.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    options.cert = material.svid.certificates.map((c) => c.toString()).join('');
  }
  return options;
}
