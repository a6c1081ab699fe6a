import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { encodeName } from '@steeple/spiffe/issuance';
import { SteepleError } from '../../common/errors.js';
import { CsrError } from './ca-errors.js';
import { createCsr, derElement } from './create-csr.js';
import { MAX_CSR_BYTES, parseCsr } from './csr.js';

const p256 = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const spkiOf = (key: KeyObject) => createPublicKey(key).export({ format: 'der', type: 'spki' });

/** A CSR assembled from parts, signed by `signer` over the info it builds. */
function customCsr(parts: { spki: Buffer; signer: KeyObject; algorithmHex?: string; version?: Buffer }): Buffer {
  const info = derElement(
    0x30,
    parts.version ?? Buffer.from('020100', 'hex'),
    encodeName([{ type: 'O', value: 'x' }]),
    parts.spki,
    derElement(0xa0),
  );
  const alg = Buffer.from(parts.algorithmHex ?? '300a06082a8648ce3d040302', 'hex');
  return derElement(0x30, info, alg, derElement(0x03, Buffer.from([0]), sign('sha256', info, parts.signer)));
}

async function rejects(der: Uint8Array, rule: RegExp): Promise<CsrError> {
  const err = await parseCsr(der).then(
    () => assert.fail('expected the CSR to be refused'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof CsrError, `expected CsrError, got ${String(err)}`);
  assert.ok(err instanceof SteepleError);
  assert.equal(err.code, 'ERR_CSR_INVALID');
  assert.match(err.rule, rule);
  return err;
}

describe('parseCsr', () => {
  for (const [name, make] of [
    ['EC P-256', p256],
    ['EC P-384', () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey],
    ['RSA 2048', () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey],
  ] as const) {
    it(`accepts a ${name} request and returns its key exactly`, async () => {
      const key = make();
      const csr = await parseCsr(createCsr(key, { subject: [{ type: 'CN', value: 'ignored' }] }));
      assert.deepEqual(csr.subjectPublicKeyInfo, spkiOf(key));
      assert.deepEqual(csr.publicKey.export({ format: 'der', type: 'spki' }), spkiOf(key));
      assert.equal(csr.publicKey.type, 'public');
    });
  }

  it('accepts SHA-384 and SHA-512 self-signatures', async () => {
    const key = p256();
    await parseCsr(createCsr(key, { hash: 'sha384' }));
    await parseCsr(createCsr(key, { hash: 'sha512' }));
  });

  it('accepts a request made by openssl req (with extension attributes)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'steeple-csr-'));
    try {
      const key = p256();
      writeFileSync(join(dir, 'key.pem'), key.export({ format: 'pem', type: 'pkcs8' }));
      const der = execFileSync('openssl', [
        'req',
        '-new',
        '-key',
        join(dir, 'key.pem'),
        '-subj',
        '/C=US/O=Agent',
        '-addext',
        'subjectAltName=URI:spiffe://example.org/workload',
        '-outform',
        'DER',
      ]);
      const csr = await parseCsr(der);
      assert.deepEqual(csr.subjectPublicKeyInfo, spkiOf(key));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses garbage', async () => {
    await rejects(Buffer.from('this is not a certificate request'), /not a DER PKCS#10 request/);
  });

  it('refuses an empty request', async () => {
    await rejects(new Uint8Array(0), /empty/);
  });

  it('refuses a truncated request', async () => {
    const der = createCsr(p256());
    await rejects(der.subarray(0, der.length - 5), /not a DER PKCS#10 request: .*(truncated|runs past)/);
  });

  it('refuses trailing bytes after the request', async () => {
    await rejects(Buffer.concat([createCsr(p256()), Buffer.from([0])]), /trailing bytes after the CSR/);
  });

  it('refuses BER lengths (non-minimal)', async () => {
    const der = createCsr(p256());
    // Re-encode the outer length in the long form with a leading zero byte.
    const body = der.subarray(der[1] === 0x81 ? 3 : 2);
    const ber = Buffer.concat([Buffer.from([0x30, 0x82, 0x00, body.length]), body]);
    await rejects(ber, /non-minimal DER length/);
  });

  it('refuses a signature that does not verify (no proof of possession)', async () => {
    const der = Buffer.from(createCsr(p256()));
    der[der.length - 3] = (der[der.length - 3] as number) ^ 0x01;
    await rejects(der, /no proof of possession/);
  });

  it('refuses a request signed by a key other than the one it carries', async () => {
    const claimed = p256();
    await rejects(customCsr({ spki: spkiOf(claimed), signer: p256() }), /no proof of possession/);
  });

  it('refuses an RSA key below 2048 bits, naming its size', async () => {
    const key = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    await rejects(createCsr(key), /RSA key of 1024 bits is too small \(minimum 2048\)/);
  });

  it('refuses more than 16 KiB before parsing anything', async () => {
    const err = await rejects(Buffer.alloc(MAX_CSR_BYTES + 1, 0x30), /larger than 16384 bytes/);
    assert.doesNotMatch(err.message, /MDAw/, 'the message never carries the request bytes');
  });

  it('refuses unsupported key types', async () => {
    const ed = generateKeyPairSync('ed25519').privateKey;
    await rejects(customCsr({ spki: spkiOf(ed), signer: p256() }), /unsupported public key algorithm/);
    const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey;
    await rejects(customCsr({ spki: spkiOf(p521), signer: p521 }), /named curve P-256 or P-384/);
  });

  it('refuses a compressed EC point', async () => {
    const key = p256();
    const compressed = createPublicKey(key).export({ format: 'der', type: 'spki' });
    const point = compressed.subarray(compressed.length - 65);
    const short = Buffer.concat([Buffer.from([2 + ((point[64] as number) & 1)]), point.subarray(1, 33)]);
    const spki = derElement(
      0x30,
      Buffer.from('301306072a8648ce3d020106082a8648ce3d030107', 'hex'),
      derElement(0x03, Buffer.from([0]), short),
    );
    await rejects(customCsr({ spki, signer: key }), /uncompressed point/);
  });

  it('refuses a point that is not on the curve', async () => {
    const key = p256();
    const spki = Buffer.from(spkiOf(key));
    spki[spki.length - 1] = (spki[spki.length - 1] as number) ^ 0x01;
    await rejects(customCsr({ spki, signer: key }), /not a point on the curve/);
  });

  it('refuses a version other than 1', async () => {
    await rejects(createCsr(p256(), { version: 1 }), /version must be 0/);
  });

  it('refuses a signature algorithm that does not fit the key or is unknown', async () => {
    const key = p256();
    await rejects(
      customCsr({ spki: spkiOf(key), signer: key, algorithmHex: '300d06092a864886f70d01010b0500' }),
      /sha256WithRSAEncryption does not fit/,
    );
    await rejects(
      customCsr({ spki: spkiOf(key), signer: key, algorithmHex: '300a06082a8648ce3d040301' }),
      /signature algorithm 1\.2\.840\.10045\.4\.3\.1 is not supported/,
    );
  });

  it('is a TypeError for a non-bytes argument', async () => {
    await assert.rejects(parseCsr('MIIB' as unknown as Uint8Array), TypeError);
  });
});
