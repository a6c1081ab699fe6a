import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject, verify, type X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { TrustDomain } from '@steeple/spiffe';
import { createTestCa, ManualClock, type TestKeyType } from '@steeple/spiffe/testing';
import { x509PopSchemeFor, x509PopSignedMessage } from '../../common/attestation/x509pop-format.js';
import { ConfigError } from '../../common/errors.js';
import { NodeAttestationClientError } from './node-attestor-client.js';
import { createX509PopClient, x509PopClientConfigSchema } from './x509pop-client.js';

const td = TrustDomain.parse('example.org');
const clock = new ManualClock(new Date('2030-01-01T00:00:00Z'));
const root = createTestCa({ trustDomain: 'nodes.corp', clock });
const intermediate = root.createIntermediate();

function identity(keyType: TestKeyType = 'ec-p256') {
  const { certificates, privateKey } = intermediate.issueX509SvidRaw('spiffe://nodes.corp/node-1', {
    dnsNames: ['node-1.corp'],
    keyType,
  });
  return { leaf: certificates[0] as X509Certificate, chain: certificates, key: privateKey };
}

/** An in-memory file system for the client's readFile. */
function files(entries: Record<string, string>) {
  return (path: string) => {
    const text = entries[path];
    if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
    return text;
  };
}

const pkcs8 = (key: KeyObject) => key.export({ type: 'pkcs8', format: 'pem' }) as string;
const config = { private_key_path: '/k.pem', certificate_path: '/c.pem' };

function configProblem(fn: () => unknown, path: string, message: RegExp) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.deepEqual(
      err.issues.map((i) => i.path),
      [path],
    );
    assert.match(err.message, message);
    return true;
  });
}

describe('x509pop client', () => {
  it('sends the chain as concatenated DER, leaf first, intermediates from both files appended', async () => {
    const { leaf, key } = identity();
    const client = createX509PopClient(
      { ...config, intermediates_path: '/i.pem' },
      {
        trustDomain: td,
        readFile: files({
          '/k.pem': pkcs8(key),
          '/c.pem': leaf.toString() + intermediate.certificate.toString(),
          '/i.pem': root.certificate.toString(),
        }),
      },
    );
    assert.equal(client.name, 'x509pop');
    assert.deepEqual(
      Buffer.from(await client.payload()),
      Buffer.concat([leaf.raw, intermediate.certificate.raw, root.certificate.raw]),
    );
  });

  for (const keyType of ['ec-p256', 'ec-p384', 'rsa-2048'] as TestKeyType[]) {
    it(`answers a nonce with a ${keyType} signature over the documented message`, async () => {
      const { leaf, key } = identity(keyType);
      const client = createX509PopClient(config, {
        trustDomain: td,
        readFile: files({ '/k.pem': pkcs8(key), '/c.pem': leaf.toString() }),
      });
      await client.payload();
      const nonce = new Uint8Array(32).fill(9);
      const signature = await client.answer(nonce);
      const scheme = x509PopSchemeFor(leaf.publicKey);
      if (typeof scheme === 'string') throw new Error(scheme);
      const message = x509PopSignedMessage('example.org', nonce);
      assert.ok(verify(scheme.hash, message, { ...scheme, key: leaf.publicKey }, signature));
    });
  }

  it('reads PKCS#1 and SEC1 keys as SPIRE does', async () => {
    const rsa = identity('rsa-2048');
    const ec = identity('ec-p256');
    for (const [id, pem] of [
      [rsa, rsa.key.export({ type: 'pkcs1', format: 'pem' }) as string],
      [ec, ec.key.export({ type: 'sec1', format: 'pem' }) as string],
    ] as const) {
      const client = createX509PopClient(config, {
        trustDomain: td,
        readFile: files({ '/k.pem': pem, '/c.pem': id.leaf.toString() }),
      });
      assert.equal((await client.answer(new Uint8Array(32))).length > 0, true);
    }
  });

  it('reads the files again for each attestation, so a renewed certificate is sent', async () => {
    const first = identity();
    const second = identity();
    const disk: Record<string, string> = { '/k.pem': pkcs8(first.key), '/c.pem': first.leaf.toString() };
    const client = createX509PopClient(config, { trustDomain: td, readFile: files(disk) });
    assert.deepEqual(Buffer.from(await client.payload()), first.leaf.raw);
    disk['/k.pem'] = pkcs8(second.key);
    disk['/c.pem'] = second.leaf.toString();
    assert.deepEqual(Buffer.from(await client.payload()), second.leaf.raw);
    const nonce = new Uint8Array(32);
    const scheme = x509PopSchemeFor(second.leaf.publicKey);
    if (typeof scheme === 'string') throw new Error(scheme);
    const signature = await client.answer(nonce);
    assert.ok(
      verify(
        scheme.hash,
        x509PopSignedMessage('example.org', nonce),
        { ...scheme, key: second.leaf.publicKey },
        signature,
      ),
    );
  });

  it('refuses a challenge that is not a 32-byte nonce (it never signs what a server chose freely)', async () => {
    const { leaf, key } = identity();
    const client = createX509PopClient(config, {
      trustDomain: td,
      readFile: files({ '/k.pem': pkcs8(key), '/c.pem': leaf.toString() }),
    });
    for (const challenge of [new Uint8Array(0), new Uint8Array(31), new Uint8Array(64)]) {
      await assert.rejects(client.answer(challenge), (err: unknown) => {
        assert.ok(err instanceof NodeAttestationClientError);
        assert.match(err.reason, /expects a 32-byte nonce/);
        return true;
      });
    }
  });

  it('refuses unreadable or unusable files at creation, naming the key and never the key material', () => {
    const { leaf, key } = identity();
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const opts = (entries: Record<string, string>) => ({ trustDomain: td, readFile: files(entries) });
    configProblem(
      () => createX509PopClient(config, opts({ '/k.pem': pkcs8(key) })),
      'x509pop.certificate_path',
      /cannot read "\/c\.pem" \(ENOENT\)/,
    );
    configProblem(
      () => createX509PopClient(config, opts({ '/k.pem': pkcs8(key), '/c.pem': pkcs8(key) })),
      'x509pop.certificate_path',
      /holds no PEM CERTIFICATE block/,
    );
    const garbageKey = '-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n';
    assert.throws(
      () => createX509PopClient(config, opts({ '/k.pem': garbageKey, '/c.pem': leaf.toString() })),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.issues[0]?.path, 'x509pop.private_key_path');
        assert.match(err.message, /holds no usable unencrypted PEM private key/);
        assert.ok(!err.message.includes('c2VjcmV0'));
        return true;
      },
    );
    configProblem(
      () => createX509PopClient(config, opts({ '/k.pem': pkcs8(other), '/c.pem': leaf.toString() })),
      'x509pop.private_key_path',
      /does not belong to the first certificate of "\/c\.pem"/,
    );
  });

  it('has a strict config schema with SPIRE’s key names', () => {
    assert.ok(x509PopClientConfigSchema.safeParse({ ...config, intermediates_path: '/i.pem' }).success);
    assert.ok(!x509PopClientConfigSchema.safeParse({ ...config, private_key: '/k.pem' }).success);
    assert.ok(!x509PopClientConfigSchema.safeParse({ certificate_path: '/c.pem' }).success);
  });
});
