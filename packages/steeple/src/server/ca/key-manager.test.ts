import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CaError } from './ca-errors.js';
import { createKeyManager, DiskKeyManager, MemoryKeyManager } from './key-manager.js';

const spki = (k: import('node:crypto').KeyObject) => createPublicKey(k).export({ format: 'der', type: 'spki' });

describe('MemoryKeyManager', () => {
  it('returns the generated key by ID and nothing for unknown IDs', async () => {
    const km = new MemoryKeyManager();
    const key = await km.generateKey('x509-ca-a', 'ec-p256');
    assert.equal(await km.getKey('x509-ca-a'), key);
    assert.equal(await km.getKey('x509-ca-b'), undefined);
  });

  it('generates each key type', async () => {
    const km = new MemoryKeyManager();
    assert.equal((await km.generateKey('a', 'ec-p256')).asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.equal((await km.generateKey('b', 'ec-p384')).asymmetricKeyDetails?.namedCurve, 'secp384r1');
    assert.equal((await km.generateKey('c', 'rsa-2048')).asymmetricKeyDetails?.modulusLength, 2048);
  });

  it('refuses IDs that could name another file', async () => {
    const km = new MemoryKeyManager();
    await assert.rejects(km.generateKey('../etc/passwd', 'ec-p256'), TypeError);
    await assert.rejects(km.getKey(''), TypeError);
  });
});

describe('DiskKeyManager', () => {
  let dataDir: string;
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'steeple-km-'));
  });
  after(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('keeps keys as 0600 PKCS#8 PEM files in a 0700 keys directory', async () => {
    const km = new DiskKeyManager(dataDir);
    await km.generateKey('x509-ca-a', 'ec-p256');
    const dirMode = (await stat(join(dataDir, 'keys'))).mode & 0o777;
    const fileMode = (await stat(km.pathOf('x509-ca-a'))).mode & 0o777;
    assert.equal(dirMode, 0o700);
    assert.equal(fileMode, 0o600);
    assert.match(await readFile(km.pathOf('x509-ca-a'), 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
    assert.deepEqual(await readdir(join(dataDir, 'keys')), ['x509-ca-a.pem'], 'no temporary files left behind');
  });

  it('gives back the same key after a restart (a new instance on the same directory)', async () => {
    const first = new DiskKeyManager(dataDir);
    const key = await first.generateKey('jwt-signer-a', 'ec-p384');
    const restarted = new DiskKeyManager(dataDir);
    const loaded = await restarted.getKey('jwt-signer-a');
    assert.ok(loaded);
    assert.deepEqual(spki(loaded), spki(key));
  });

  it('replaces a key when generating under an existing ID', async () => {
    const km = new DiskKeyManager(dataDir);
    const a = await km.generateKey('slot', 'ec-p256');
    const b = await km.generateKey('slot', 'ec-p256');
    assert.notDeepEqual(spki(a), spki(b));
    assert.deepEqual(spki((await new DiskKeyManager(dataDir).getKey('slot')) as never), spki(b));
  });

  it('returns undefined for a key that was never stored', async () => {
    assert.equal(await new DiskKeyManager(dataDir).getKey('missing'), undefined);
  });

  it('reports an unreadable key file as ERR_CA_STATE_INVALID naming the file', async () => {
    const km = new DiskKeyManager(dataDir);
    await km.generateKey('corrupt', 'ec-p256');
    await writeFile(km.pathOf('corrupt'), 'not a key');
    const err = await new DiskKeyManager(dataDir).getKey('corrupt').catch((e: unknown) => e);
    assert.ok(err instanceof CaError);
    assert.equal(err.code, 'ERR_CA_STATE_INVALID');
    assert.match(err.message, /corrupt\.pem/);
  });
});

describe('createKeyManager', () => {
  it('chooses by the key_manager config name', () => {
    assert.ok(createKeyManager('disk', { dataDir: '/tmp/x' }) instanceof DiskKeyManager);
    assert.ok(createKeyManager('memory', { dataDir: '/tmp/x' }) instanceof MemoryKeyManager);
    assert.throws(() => createKeyManager('vault' as never, { dataDir: '/tmp/x' }), /unknown key manager "vault"/);
  });
});
