import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createUnixAttestor, parseProcStatus } from './unix-attestor.js';
import { createUserDatabase, parseIdFile } from './user-database.js';
import { createWorkloadAttestation } from './workload-attestation.js';

const status = `Name:\tweb\nUid:\t1000\t1001\t1001\t1001\nGid:\t100\t200\t200\t200\nGroups:\t4 27 \n`;

describe('unix workload attestor', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'steeple-unix-'));
    mkdirSync(join(dir, 'proc', '42'), { recursive: true });
    writeFileSync(join(dir, 'proc', '42', 'status'), status);
    writeFileSync(join(dir, 'bin'), 'binary bytes');
    symlinkSync(join(dir, 'bin'), join(dir, 'proc', '42', 'exe'));
    writeFileSync(join(dir, 'passwd'), 'root:x:0:0::/root:/bin/sh\nweb:x:1001:200::/home/web:/bin/sh\n');
    writeFileSync(join(dir, 'group'), 'root:x:0:\nadm:x:4:\nsudo:x:27:web\nwww:x:200:\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const users = () => createUserDatabase({ passwd: join(dir, 'passwd'), group: join(dir, 'group') });
  const peer = { pid: 42, uid: 1001, gid: 200 };

  it('parses the effective ids and supplementary groups of /proc/<pid>/status', () => {
    assert.deepEqual(parseProcStatus(status), { uid: 1001, gid: 200, groups: [4, 27] });
    assert.throws(() => parseProcStatus('Name: x\n'), /no Uid line/);
  });

  it('yields uid, user, gid, group and supplementary selectors', async () => {
    const attestor = createUnixAttestor(
      { discover_workload_path: false, workload_size_limit: 0 },
      { users: users(), procRoot: join(dir, 'proc') },
    );
    const selectors = (await attestor.attest(peer)).map((s) => `${s.type}:${s.value}`);
    assert.deepEqual(selectors, [
      'unix:uid:1001',
      'unix:user:web',
      'unix:gid:200',
      'unix:group:www',
      'unix:supplementary_gid:4',
      'unix:supplementary_group:adm',
      'unix:supplementary_gid:27',
      'unix:supplementary_group:sudo',
    ]);
  });

  it('with discover_workload_path adds the executable path and its SHA-256, within the size limit', async () => {
    const sha = createHash('sha256').update('binary bytes').digest('hex');
    const opts = { users: users(), procRoot: join(dir, 'proc') };
    const found = (
      await createUnixAttestor({ discover_workload_path: true, workload_size_limit: 0 }, opts).attest(peer)
    ).map((s) => `${s.type}:${s.value}`);
    assert.ok(found.includes(`unix:path:${join(dir, 'bin')}`));
    assert.ok(found.includes(`unix:sha256:${sha}`));
    const limited = (
      await createUnixAttestor({ discover_workload_path: true, workload_size_limit: 4 }, opts).attest(peer)
    ).map((s) => s.value);
    assert.ok(limited.some((v) => v.startsWith('path:')));
    assert.ok(!limited.some((v) => v.startsWith('sha256:')), 'no hash beyond the limit');
  });

  it('attests the real test process (its own uid) through /proc', async () => {
    const attestation = createWorkloadAttestation(
      [createUnixAttestor({ discover_workload_path: true, workload_size_limit: 0 })],
      {
        sameProcess: () => true,
      },
    );
    const selectors = (await attestation.attest({ pid: process.pid, uid: 0, gid: 0 })).map(
      (s) => `${s.type}:${s.value}`,
    );
    assert.ok(selectors.includes(`unix:uid:${process.geteuid?.()}`));
    assert.ok(selectors.includes(`unix:path:${realpathSync(process.execPath)}`));
    const sha = createHash('sha256').update(readFileSync(process.execPath)).digest('hex');
    assert.ok(selectors.includes(`unix:sha256:${sha}`));
  });

  it('refuses a caller whose process is gone or was replaced meanwhile', async () => {
    const attestor = createUnixAttestor(
      { discover_workload_path: false, workload_size_limit: 0 },
      { users: users(), procRoot: join(dir, 'proc') },
    );
    await assert.rejects(
      createWorkloadAttestation([attestor], { sameProcess: () => true }).attest({ pid: 43, uid: 0, gid: 0 }),
      (err: Error & { code?: string }) =>
        err.code === 'ERR_WORKLOAD_ATTESTATION_FAILED' && /has exited/.test(err.message),
    );
    await assert.rejects(
      createWorkloadAttestation([attestor], { sameProcess: () => false }).attest(peer),
      /pid was reused/,
    );
  });

  it('reads name files, first name per id wins, comments skipped', () => {
    assert.deepEqual([...parseIdFile('# c\na:x:1:\nb:x:1:\nc:x::\n\n')], [[1, 'a']]);
  });
});
