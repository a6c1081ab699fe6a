import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ensureSecureDir, writeFileAtomic } from './fs-secure.js';

const root = mkdtempSync(join(tmpdir(), 'steeple-fs-'));
after(() => rmSync(root, { recursive: true, force: true }));

const modeOf = (path: string) => statSync(path).mode & 0o777;

describe('writeFileAtomic', () => {
  it('writes a new file with mode 0600 and leaves no temporary file behind', async () => {
    const file = join(root, 'agent-svid.key');
    await writeFileAtomic(file, '-----BEGIN PRIVATE KEY-----\n');
    assert.equal(readFileSync(file, 'utf8'), '-----BEGIN PRIVATE KEY-----\n');
    assert.equal(modeOf(file), 0o600);
    assert.deepEqual(
      readdirSync(root).filter((n) => n.endsWith('.tmp')),
      [],
    );
  });

  it('replaces an existing world-readable file and makes it 0600', async () => {
    const file = join(root, 'bundle.der');
    writeFileSync(file, 'old', { mode: 0o644 });
    chmodSync(file, 0o644);
    await writeFileAtomic(file, new Uint8Array([0x30, 0x82]));
    assert.deepEqual([...readFileSync(file)], [0x30, 0x82]);
    assert.equal(modeOf(file), 0o600);
  });

  it('gives the requested mode whatever the umask', async () => {
    const previous = process.umask(0o277);
    try {
      const file = join(root, 'umask.key');
      await writeFileAtomic(file, 'x');
      assert.equal(modeOf(file), 0o600);
    } finally {
      process.umask(previous);
    }
  });

  it('accepts another mode for files that are not secret', async () => {
    const file = join(root, 'bundle.pem');
    await writeFileAtomic(file, 'pem', { mode: 0o644 });
    assert.equal(modeOf(file), 0o644);
  });

  it('fails, leaving nothing behind, when the directory does not exist', async () => {
    await assert.rejects(writeFileAtomic(join(root, 'missing', 'x.key'), 'x'), { code: 'ENOENT' });
  });
});

describe('ensureSecureDir', () => {
  it('creates the directory and its parents with mode 0700', async () => {
    const dir = join(root, 'data', 'agent');
    await ensureSecureDir(dir);
    assert.ok(statSync(dir).isDirectory());
    assert.equal(modeOf(dir), 0o700);
    assert.equal(modeOf(join(root, 'data')), 0o700);
  });

  it('tightens an existing directory that others can read', async () => {
    const dir = join(root, 'loose');
    mkdirSync(dir);
    chmodSync(dir, 0o755);
    await ensureSecureDir(dir);
    assert.equal(modeOf(dir), 0o700);
  });

  it('refuses a path that is a file', async () => {
    const file = join(root, 'a-file');
    writeFileSync(file, '');
    await assert.rejects(ensureSecureDir(file), /is not a directory/);
  });
});
