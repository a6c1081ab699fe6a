/**
 * SDK verification rates beside the raw node:crypto ECDSA P-256 verify rate of the same
 * run: the ratio is the figure (our overhead on top of the signature check).
 */
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { JwtSvid, verifyX509Svid } from '@steeple/spiffe';
import { createTestCa, createTestJwtAuthority } from '@steeple/spiffe/testing';
import { fmt, pct, type Row, rate, rateSync } from './table.js';

export async function benchSdk(): Promise<Row[]> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const data = Buffer.alloc(300, 7);
  const sig = sign('sha256', data, privateKey);
  const raw = rateSync(() => verify('sha256', data, publicKey, sig));

  const ca = createTestCa({ trustDomain: 'example.org' });
  const bundle = ca.x509Bundle();
  const leaf = ca.issueX509Svid('spiffe://example.org/bench');
  const chain = [...leaf.certificates];
  const x509 = rateSync(() => verifyX509Svid(chain, bundle));
  const der = chain.map((c) => new Uint8Array(c.raw));
  const x509Der = rateSync(() => verifyX509Svid(der, bundle));

  const inter = ca.createIntermediate();
  const leaf2 = inter.issueX509Svid('spiffe://example.org/bench2');
  const chain2 = [...leaf2.certificates];
  const x509Inter = rateSync(() => verifyX509Svid(chain2, bundle));

  const jwtAuth = createTestJwtAuthority({ trustDomain: 'example.org', alg: 'ES256' });
  const jwtBundle = jwtAuth.jwtBundle();
  const token = jwtAuth.mint('spiffe://example.org/bench', 'bench-audience', { ttlSeconds: 3600 });
  const jwt = await rate(() => JwtSvid.parseAndValidate(token, jwtBundle, ['bench-audience']));

  return [
    { operation: 'raw node:crypto ECDSA P-256 verify', 'ops/s': fmt(raw), 'signature checks': 1, 'vs raw': '100 %' },
    {
      operation: 'verifyX509Svid, leaf → root (X509Certificate[])',
      'ops/s': fmt(x509),
      'signature checks': 1,
      'vs raw': pct(x509, raw),
    },
    {
      operation: 'verifyX509Svid, leaf → root (DER, parsed each call)',
      'ops/s': fmt(x509Der),
      'signature checks': 1,
      'vs raw': pct(x509Der, raw),
    },
    {
      operation: 'verifyX509Svid, leaf → intermediate → root',
      'ops/s': fmt(x509Inter),
      'signature checks': 2,
      'vs raw': pct(x509Inter * 2, raw),
    },
    {
      operation: 'JwtSvid.parseAndValidate (ES256)',
      'ops/s': fmt(jwt),
      'signature checks': 1,
      'vs raw': pct(jwt, raw),
    },
  ];
}
