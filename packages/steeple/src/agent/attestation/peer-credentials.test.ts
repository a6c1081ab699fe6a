import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isSameProcess, processStartTime, readPeerCredentials, releasePeerCredentials } from './peer-credentials.js';
import type { PeerCredentials } from './workload-attestor.js';

/** Accepts one connection on a Unix socket made by `dial` and reads its peer credentials. */
async function credentialsOf(path: string, dial: () => void): Promise<PeerCredentials> {
  return new Promise((resolve, reject) => {
    const server = createServer((socket: Socket) => {
      try {
        resolve(readPeerCredentials(socket));
      } catch (err) {
        reject(err);
      }
      socket.destroy();
      server.close();
    });
    server.listen(path, dial);
  });
}

describe('peer credentials (SO_PEERCRED / SO_PEERPIDFD via koffi)', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'steeple-peercred-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads this process’s own pid, uid and gid from a connection it made', async () => {
    const path = join(dir, 'self.sock');
    let client: Socket | undefined;
    const peer = await credentialsOf(path, () => {
      client = connect(path);
    });
    client?.destroy();
    assert.equal(peer.pid, process.pid);
    assert.equal(peer.uid, process.getuid?.());
    assert.equal(peer.gid, process.getgid?.());
    assert.ok(peer.pidfd !== undefined || peer.startTime !== undefined, 'a pidfd or a start time guards against reuse');
    assert.equal(isSameProcess(peer), true);
    releasePeerCredentials(peer);
  });

  it('notices that the connecting process is gone (pid reuse guard)', async () => {
    const path = join(dir, 'child.sock');
    let child: ReturnType<typeof spawn> | undefined;
    const peer = await credentialsOf(path, () => {
      child = spawn(
        process.execPath,
        [
          '-e',
          `require('net').connect(${JSON.stringify(path)}).on('connect', () => setTimeout(() => process.exit(0), 50))`,
        ],
        {
          stdio: 'ignore',
        },
      );
    });
    assert.equal(peer.pid, child?.pid);
    await new Promise((resolve) => child?.once('exit', resolve));
    // Reaped by Node: the pid no longer names that process.
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(isSameProcess(peer), false);
    releasePeerCredentials(peer);
  });

  it('reads the start time of a live process and nothing for a dead pid', () => {
    assert.match(processStartTime(process.pid) ?? '', /^\d+$/);
    assert.equal(processStartTime(2 ** 22 + 7), undefined);
  });
});
