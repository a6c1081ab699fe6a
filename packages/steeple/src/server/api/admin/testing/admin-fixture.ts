/**
 * Test fixture for the admin API: a real SQLite datastore in a temp dir, a fake CA built on the
 * SDK's test CA, and a real admin server on a temp Unix socket with a client connected to it.
 * @module
 */
import { createPublicKey, type KeyObject, sign, verify, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { CertificationRequest, CertificationRequestInfo } from '@peculiar/asn1-csr';
import { AsnConvert } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, Name, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import { SpiffeBundle, TrustDomain } from '@steeple/spiffe';
import { CertificateIssuer } from '@steeple/spiffe/issuance';
import { createTestCa, createTestJwtAuthority, type TestCa } from '@steeple/spiffe/testing';
import { type AdminClient, createAdminClient } from '../../../../common/admin-client.js';
import { createLogger } from '../../../../common/logger.js';
import { type Datastore, openDatastore } from '../../../datastore/index.js';
import type { AdminCa, AdminDatastore, AdminDeps } from '../admin-deps.js';
import { createAdminRoutes } from '../admin-routes.js';
import { type AdminServer, startAdminServer } from '../admin-server.js';

/** An AdminCa backed by the SDK's test CA and test JWT authority. */
export function createFakeAdminCa(trustDomain: TrustDomain): AdminCa & { readonly x509: TestCa } {
  const x509 = createTestCa({ trustDomain });
  const jwt = createTestJwtAuthority({ trustDomain });
  const issuer = new CertificateIssuer(x509.certificate, x509.privateKey);
  const caNotAfter = new Date(x509.certificate.validTo).getTime();
  const bundle = SpiffeBundle.fromBundles({ x509: x509.x509Bundle(), jwt: jwt.jwtBundle(), sequenceNumber: 1n });
  return {
    x509,
    async signX509Svid({ publicKey, spiffeId, ttlSeconds, dnsNames }) {
      const now = Date.now();
      const notAfter = new Date(Math.min(now + ttlSeconds * 1000, caNotAfter));
      const der = issuer.issue({
        subject: [{ type: 'O', value: 'Steeple Test' }, ...(dnsNames[0] ? [{ type: 'CN', value: dnsNames[0] }] : [])],
        publicKey,
        notBefore: new Date(now - 10_000),
        notAfter,
        basicConstraints: { ca: false },
        keyUsage: { usages: ['digitalSignature', 'keyEncipherment', 'keyAgreement'] },
        extendedKeyUsage: { purposes: ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'] },
        subjectAltName: { uris: [spiffeId.toString()], dnsNames },
      });
      return { certificates: [Buffer.from(der)], expiresAt: new Date(new X509Certificate(der).validTo) };
    },
    async mintJwtSvid({ spiffeId, audience, ttlSeconds }) {
      const iat = Math.floor(Date.now() / 1000);
      const token = jwt.mint(spiffeId, audience, { ttlSeconds });
      return { token, issuedAt: new Date(iat * 1000), expiresAt: new Date((iat + ttlSeconds) * 1000) };
    },
    bundle: () => bundle,
  };
}

/** A PKCS#10 CSR (DER) for an EC P-256 key pair, signed with ECDSA-SHA256, for tests. */
export function csrForTests(privateKey: KeyObject, publicKey: KeyObject): Uint8Array {
  const info = new CertificationRequestInfo({
    version: 0,
    subject: new Name(),
    subjectPKInfo: AsnConvert.parse(publicKey.export({ type: 'spki', format: 'der' }), SubjectPublicKeyInfo),
  });
  const csr = new CertificationRequest({
    certificationRequestInfo: info,
    signatureAlgorithm: new AlgorithmIdentifier({ algorithm: '1.2.840.10045.4.3.2' }),
    signature: new Uint8Array(sign('sha256', Buffer.from(AsnConvert.serialize(info)), privateKey)).buffer,
  });
  return new Uint8Array(AsnConvert.serialize(csr));
}

/** A PKCS#10 parser for tests: checks the self-signature and returns the public key. */
export function parseCsrForTests(der: Uint8Array): KeyObject {
  let csr: CertificationRequest;
  try {
    csr = AsnConvert.parse(der, CertificationRequest);
  } catch {
    throw new Error('not a DER PKCS#10 certificate signing request');
  }
  const spki = Buffer.from(AsnConvert.serialize(csr.certificationRequestInfo.subjectPKInfo));
  const key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  const raw = csr.certificationRequestInfoRaw ?? AsnConvert.serialize(csr.certificationRequestInfo);
  if (!verify('sha256', Buffer.from(raw), key, Buffer.from(csr.signature))) {
    throw new Error('the CSR signature does not verify');
  }
  return key;
}

export interface AdminFixture {
  readonly dir: string;
  readonly socketPath: string;
  readonly trustDomain: TrustDomain;
  readonly datastore: Datastore;
  readonly ca: ReturnType<typeof createFakeAdminCa>;
  readonly client: AdminClient;
  readonly server: AdminServer;
  /** Every log line written so far, parsed. */
  readonly logs: Record<string, unknown>[];
  readonly changes: string[];
  close(): Promise<void>;
}

/** Starts the whole admin stack in a temp dir. */
export async function startAdminFixture(
  overrides: Partial<AdminDeps> = {},
  options: { wrapDatastore?: (ds: Datastore) => AdminDatastore } = {},
): Promise<AdminFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'steeple-admin-'));
  const trustDomain = TrustDomain.parse('example.org');
  const datastore = await openDatastore({ type: 'sqlite', path: join(dir, 'datastore.sqlite3') });
  const ca = createFakeAdminCa(trustDomain);
  const logs: Record<string, unknown>[] = [];
  const changes: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line));
      done();
    },
  });
  const logger = createLogger({ name: 'steeple-server', destination, level: 'debug' });
  const socketPath = join(dir, 'private', 'api.sock');
  const server = await startAdminServer({
    socketPath,
    logger,
    routes: createAdminRoutes({
      trustDomain,
      datastore: options.wrapDatastore ? options.wrapDatastore(datastore) : datastore,
      ca,
      parseCsr: parseCsrForTests,
      svidDefaults: { x509TtlSeconds: 3600, jwtTtlSeconds: 300 },
      logger,
      onChange: (what) => changes.push(what),
      ...overrides,
    }),
  });
  const client = createAdminClient(socketPath);
  return {
    dir,
    socketPath,
    trustDomain,
    datastore,
    ca,
    client,
    server,
    logs,
    changes,
    async close() {
      client.close();
      await server.close();
      await datastore.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
