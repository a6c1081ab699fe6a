/**
 * SvidService: mint an X.509-SVID for a CSR's key, or a JWT-SVID, for any ID in the trust
 * domain (`steeple server x509 mint`, `steeple server jwt mint`). No entry is needed: the local
 * admin is trusted to name the ID.
 * @module
 */
import { X509Certificate } from 'node:crypto';
import type { ServiceImpl } from '@connectrpc/connect';
import type { SvidService } from '../../../gen/steeple/server/v1/svid_pb.js';
import type { AdminContext } from './admin-context.js';
import { quoteValue, requireDnsNames, requireNonNegative, requireWorkloadId } from './field-rules.js';
import { invalidField } from './grpc-status.js';

/** A P-256 CSR is about 250 bytes and an RSA-4096 one under 1 KiB; anything this big is refused unread. */
export const MAX_CSR_BYTES = 16 * 1024;

function toEpochSeconds(d: Date): bigint {
  return BigInt(Math.floor(d.getTime() / 1000));
}

export function svidService(c: AdminContext): Partial<ServiceImpl<typeof SvidService>> {
  return {
    async mintX509Svid(req, ctx) {
      if (req.csr.length === 0) throw invalidField('csr', 'required: a PKCS#10 certificate signing request (DER)');
      if (req.csr.length > MAX_CSR_BYTES) {
        throw invalidField('csr', `is ${req.csr.length} bytes; at most ${MAX_CSR_BYTES} are accepted`);
      }
      const spiffeId = requireWorkloadId('spiffeId', req.spiffeId, c.trustDomain);
      const ttl = requireNonNegative('ttlSeconds', req.ttlSeconds);
      const dnsNames = requireDnsNames('dnsNames', req.dnsNames);
      let publicKey: ReturnType<AdminContext['parseCsr']>;
      try {
        publicKey = c.parseCsr(req.csr);
      } catch (err) {
        throw invalidField('csr', err instanceof Error ? err.message : 'cannot be parsed');
      }
      const ttlSeconds = ttl === 0 ? c.svidDefaults.x509TtlSeconds : ttl;
      const signed = await c.ca.signX509Svid({ publicKey, spiffeId, ttlSeconds, dnsNames });
      const leaf = signed.certificates[0];
      c.audit(
        ctx,
        {
          spiffeId: spiffeId.toString(),
          serialNumber: leaf === undefined ? undefined : new X509Certificate(leaf).serialNumber.toLowerCase(),
          expiresAt: signed.expiresAt.toISOString(),
          dnsNames,
        },
        'minted X509-SVID',
      );
      return {
        svid: {
          spiffeId: spiffeId.toString(),
          certChain: signed.certificates.map((der) => new Uint8Array(der)),
          expiresAt: toEpochSeconds(signed.expiresAt),
        },
      };
    },

    async mintJwtSvid(req, ctx) {
      const spiffeId = requireWorkloadId('spiffeId', req.spiffeId, c.trustDomain);
      if (req.audience.length === 0) throw invalidField('audience', 'at least one audience is required');
      req.audience.forEach((aud, i) => {
        if (aud === '') throw invalidField(`audience[${i}]`, 'must not be empty');
        if (aud.length > 2048)
          throw invalidField(`audience[${i}]`, `${quoteValue(aud)} is longer than 2048 characters`);
      });
      const ttl = requireNonNegative('ttlSeconds', req.ttlSeconds);
      const ttlSeconds = ttl === 0 ? c.svidDefaults.jwtTtlSeconds : ttl;
      const minted = await c.ca.mintJwtSvid({ spiffeId, audience: [...req.audience], ttlSeconds });
      // The token itself is a bearer credential: never logged.
      c.audit(
        ctx,
        { spiffeId: spiffeId.toString(), audience: req.audience, expiresAt: minted.expiresAt.toISOString() },
        'minted JWT-SVID',
      );
      return {
        svid: {
          spiffeId: spiffeId.toString(),
          token: minted.token,
          expiresAt: toEpochSeconds(minted.expiresAt),
          issuedAt: toEpochSeconds(minted.issuedAt),
        },
      };
    },
  };
}
