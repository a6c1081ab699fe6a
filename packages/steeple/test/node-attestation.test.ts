// Node attestation end to end, in process: the agent's clients (agent/node-attestation)
// against the server's attestors (server/attestation). Server and agent code never import
// each other; both take the wire format from common/attestation.
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, type KeyObject, type X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TrustDomain } from '@steeple/spiffe';
import { createTestCa, ManualClock, type TestKeyType } from '@steeple/spiffe/testing';
import {
  createJoinTokenClient,
  createX509PopClient,
  type NodeAttestorClient,
} from '../src/agent/node-attestation/index.js';
import { encodeX509PopPayload, splitX509PopCertificates } from '../src/common/attestation/x509pop-format.js';
import {
  AttestationError,
  attestNode,
  createNodeAttestors,
  type NodeAttestorCatalog,
} from '../src/server/attestation/index.js';
import { type Datastore, openDatastore } from '../src/server/datastore/index.js';

const td = TrustDomain.parse('example.org');
const clock = new ManualClock(new Date('2030-01-01T00:00:00Z'));
const ctx = () => ({ trustDomain: td, now: clock.now() });

/** What the Agent API's AttestAgent stream does, minus the network: params, challenges, result. */
async function attest(catalog: NodeAttestorCatalog, client: NodeAttestorClient, datastore?: Datastore) {
  const challenges: number[] = [];
  const result = await attestNode(
    catalog,
    { type: client.name, payload: await client.payload() },
    async (challenge) => {
      challenges.push(challenge.length);
      return client.answer(challenge);
    },
    ctx(),
    datastore ? { agents: datastore.agents } : {},
  );
  return { result, challenges };
}

describe('node attestation: agent clients against server attestors', () => {
  let dir: string;
  let ds: Datastore;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'steeple-node-attestation-'));
    ds = await openDatastore({ type: 'sqlite', path: join(dir, 'datastore.sqlite3') }, { clock });
  });
  after(async () => {
    await ds.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('join_token: the agent is admitted once with its token, and refused the second time', async () => {
    const token = 'c0ffee00-1234-4abc-9def-0123456789ab';
    await ds.joinTokens.create({ token, expiresAt: Math.floor(clock.now().getTime() / 1000) + 600 });
    const catalog = createNodeAttestors({ join_token: {} }, { joinTokens: ds.joinTokens });
    const client = createJoinTokenClient(token);

    const { result, challenges } = await attest(catalog, client, ds);
    assert.equal(result.agentId.toString(), `spiffe://example.org/spire/agent/join_token/${token}`);
    assert.equal(result.canReattest, false);
    assert.deepEqual(challenges, [], 'join_token sends no challenge');

    await assert.rejects(attest(catalog, client, ds), (err: unknown) => {
      assert.ok(err instanceof AttestationError);
      assert.equal(err.reason, 'join token not found or already used');
      assert.ok(!err.message.includes(token));
      return true;
    });
  });

  for (const keyType of ['ec-p256', 'ec-p384', 'rsa-2048', 'ed25519'] as const) {
    it(`x509pop with a ${keyType} node key: PEM files on disk on both sides, re-attestation allowed`, async () => {
      const root = createTestCa({ trustDomain: 'nodes.corp', clock });
      const intermediate = root.createIntermediate();
      const key: KeyObject | undefined = keyType === 'ed25519' ? generateKeyPairSync('ed25519').privateKey : undefined;
      const { certificates, privateKey } = intermediate.issueX509SvidRaw('spiffe://nodes.corp/node-7', {
        dnsNames: ['node-7.corp'],
        ...(key ? { privateKey: key } : { keyType: keyType as TestKeyType }),
      });
      const leaf = certificates[0] as X509Certificate;
      const sub = mkdtempSync(join(dir, 'x509pop-'));
      const paths = {
        bundle: join(sub, 'agent-ca.pem'),
        key: join(sub, 'node.key'),
        cert: join(sub, 'node.pem'),
        chain: join(sub, 'chain.pem'),
      };
      writeFileSync(paths.bundle, root.certificate.toString());
      writeFileSync(paths.key, privateKey.export({ type: 'pkcs8', format: 'pem' }));
      writeFileSync(paths.cert, leaf.toString());
      writeFileSync(paths.chain, intermediate.certificate.toString());

      const catalog = createNodeAttestors({ x509pop: { ca_bundle_path: paths.bundle } });
      const client = createX509PopClient(
        { private_key_path: paths.key, certificate_path: paths.cert, intermediates_path: paths.chain },
        { trustDomain: td },
      );

      const fingerprint = createHash('sha1').update(leaf.raw).digest('hex');
      for (let attempt = 0; attempt < 2; attempt++) {
        const { result, challenges } = await attest(catalog, client, ds);
        assert.equal(result.agentId.toString(), `spiffe://example.org/spire/agent/x509pop/${fingerprint}`);
        assert.equal(result.canReattest, true);
        assert.deepEqual(challenges, [32], 'one 32-byte nonce');
        assert.ok(result.selectors.some((s) => s.type === 'x509pop' && s.value === 'subject:cn:node-7.corp'));
      }
    });
  }

  it('x509pop: an agent configured for another trust domain is refused', async () => {
    const root = createTestCa({ trustDomain: 'nodes.corp', clock });
    const { certificates, privateKey } = root.issueX509SvidRaw('spiffe://nodes.corp/node-8');
    const sub = mkdtempSync(join(dir, 'x509pop-'));
    writeFileSync(join(sub, 'ca.pem'), root.certificate.toString());
    writeFileSync(join(sub, 'node.key'), privateKey.export({ type: 'sec1', format: 'pem' }));
    writeFileSync(join(sub, 'node.pem'), (certificates[0] as X509Certificate).toString());
    const catalog = createNodeAttestors({ x509pop: { ca_bundle_path: join(sub, 'ca.pem') } });
    const client = createX509PopClient(
      { private_key_path: join(sub, 'node.key'), certificate_path: join(sub, 'node.pem') },
      { trustDomain: TrustDomain.parse('elsewhere.org') },
    );
    await assert.rejects(attest(catalog, client), { code: 'ERR_ATTESTATION_FAILED', reason: /not a signature/ });
  });

  it('a banned x509pop agent is refused until evicted', async () => {
    const root = createTestCa({ trustDomain: 'nodes.corp', clock });
    const { certificates, privateKey } = root.issueX509SvidRaw('spiffe://nodes.corp/node-9');
    const sub = mkdtempSync(join(dir, 'x509pop-'));
    writeFileSync(join(sub, 'ca.pem'), root.certificate.toString());
    writeFileSync(join(sub, 'node.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(sub, 'node.pem'), (certificates[0] as X509Certificate).toString());
    const catalog = createNodeAttestors({ x509pop: { ca_bundle_path: join(sub, 'ca.pem') } });
    const client = createX509PopClient(
      { private_key_path: join(sub, 'node.key'), certificate_path: join(sub, 'node.pem') },
      { trustDomain: td },
    );
    const { result } = await attest(catalog, client, ds);
    const agentId = result.agentId.toString();
    await ds.agents.create({ spiffeId: agentId, attestationType: 'x509pop', serialNumber: '1', expiresAt: 2e9 });
    await ds.agents.ban(agentId);
    await assert.rejects(attest(catalog, client, ds), { code: 'ERR_ATTESTATION_FAILED', reason: /banned/ });
    await ds.agents.delete(agentId);
    await attest(catalog, client, ds);
  });
});

describe('the x509pop payload format', () => {
  it('the server splits the agent’s payload back into the same certificates', () => {
    const root = createTestCa({ trustDomain: 'nodes.corp', clock });
    const { certificates } = root.createIntermediate().createIntermediate().issueX509SvidRaw('spiffe://nodes.corp/n');
    const parts = splitX509PopCertificates(encodeX509PopPayload(certificates));
    assert.deepEqual(
      parts.map((p) => Buffer.from(p)),
      certificates.map((c) => c.raw),
    );
  });
});
