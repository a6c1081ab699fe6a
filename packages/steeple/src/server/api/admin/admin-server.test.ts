import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Code, ConnectError } from '@connectrpc/connect';
import { createAdminClient } from '../../../common/admin-client.js';
import { createSilentLogger } from '../../../common/logger.js';
import { HealthService } from '../../../gen/steeple/server/v1/health_pb.js';
import { ADMIN_SOCKET_DIR_MODE, ADMIN_SOCKET_MODE, startAdminServer } from './admin-server.js';

/** Routes with only a health check that always answers SERVING. */
const healthOnly = (router: import('@connectrpc/connect').ConnectRouter) => {
  router.service(HealthService, { check: () => ({ status: 1, components: [] }) });
};

/** One raw HTTP/2 gRPC call with a chosen :authority, as a misbehaving client would send it. */
function rawCall(socketPath: string, authority: string): Promise<{ status: number; grpcStatus: string | undefined }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect('http://localhost', { createConnection: () => netConnect(socketPath) });
    session.on('error', reject);
    const req = session.request({
      ':method': 'POST',
      ':path': '/steeple.server.v1.HealthService/Check',
      ':authority': authority,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    let status = 0;
    let grpcStatus: string | undefined;
    req.on('response', (headers) => {
      status = Number(headers[':status']);
      if (headers['grpc-status'] !== undefined) grpcStatus = String(headers['grpc-status']);
    });
    req.on('trailers', (trailers) => {
      if (trailers['grpc-status'] !== undefined) grpcStatus = String(trailers['grpc-status']);
    });
    req.on('error', reject);
    req.on('data', () => {});
    req.on('end', () => {
      session.close();
      resolve({ status, grpcStatus });
    });
    req.end(Buffer.from([0, 0, 0, 0, 0])); // one empty, uncompressed gRPC message
  });
}

describe('startAdminServer', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'steeple-admin-server-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates the socket 0600 in a new 0700 directory, serves on it, and removes it on close', async () => {
    const socketPath = join(dir, 'fresh', 'nested', 'api.sock');
    const server = await startAdminServer({ socketPath, routes: healthOnly, logger: createSilentLogger() });
    try {
      assert.equal(statSync(join(dir, 'fresh', 'nested')).mode & 0o777, ADMIN_SOCKET_DIR_MODE);
      assert.equal(statSync(socketPath).mode & 0o777, ADMIN_SOCKET_MODE);
      assert.ok(statSync(socketPath).isSocket());
      const client = createAdminClient(socketPath);
      try {
        assert.equal((await client.health.check({})).status, 1);
      } finally {
        client.close();
      }
    } finally {
      await server.close();
    }
    assert.throws(() => statSync(socketPath), /ENOENT/);
  });

  it('refuses a caller of another user: the 0600 socket cannot even be connected to', {
    skip: process.getuid?.() === 0 ? false : 'needs root to run a process as another user',
  }, async () => {
    const socketPath = join(dir, 'other-user', 'api.sock');
    const server = await startAdminServer({ socketPath, routes: healthOnly, logger: createSilentLogger() });
    try {
      // even with the directory opened up, the socket's own 0600 mode keeps uid 65534 out
      chmodSync(join(dir, 'other-user'), 0o755);
      chmodSync(dir, 0o755);
      const probe = spawn(
        'setpriv',
        [
          '--reuid=65534',
          '--regid=65534',
          '--clear-groups',
          process.execPath,
          '-e',
          `require('node:net').connect(${JSON.stringify(socketPath)}).on('connect', () => { console.log('connected'); process.exit(0); }).on('error', (e) => { console.log(e.code); process.exit(0); })`,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let out = '';
      probe.stdout.on('data', (d) => {
        out += d;
      });
      await new Promise((r) => probe.on('exit', r));
      assert.equal(out.trim(), 'EACCES');
    } finally {
      await server.close();
    }
  });

  it('survives malformed :authority values (P1) and answers the call normally', async () => {
    const socketPath = join(dir, 'p1', 'api.sock');
    const server = await startAdminServer({ socketPath, routes: healthOnly, logger: createSilentLogger() });
    try {
      for (const authority of [`${encodeURIComponent(socketPath)}`, '%zz', 'a:b:c', '[']) {
        const res = await rawCall(socketPath, authority);
        assert.equal(res.status, 200, `authority ${authority}`);
        assert.equal(res.grpcStatus, '0', `authority ${authority}`);
      }
      const client = createAdminClient(socketPath);
      try {
        assert.equal((await client.health.check({})).status, 1, 'still serving afterwards');
      } finally {
        client.close();
      }
    } finally {
      await server.close();
    }
  });

  it('replaces a stale socket left by a previous run', async () => {
    const socketPath = join(dir, 'stale', 'api.sock');
    mkdirSync(join(dir, 'stale'), { mode: 0o700 });
    // A server killed with SIGKILL leaves its socket file behind.
    const child = spawn(process.execPath, [
      '-e',
      `require('node:net').createServer().listen(${JSON.stringify(socketPath)}, () => console.log('up'))`,
    ]);
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    assert.ok(statSync(socketPath).isSocket());
    const server = await startAdminServer({ socketPath, routes: healthOnly, logger: createSilentLogger() });
    try {
      const client = createAdminClient(socketPath);
      try {
        assert.equal((await client.health.check({})).status, 1);
      } finally {
        client.close();
      }
    } finally {
      await server.close();
    }
  });

  it('refuses to start when another server answers on the socket, and leaves that one running', async () => {
    const socketPath = join(dir, 'live', 'api.sock');
    const first = await startAdminServer({ socketPath, routes: healthOnly, logger: createSilentLogger() });
    try {
      await assert.rejects(
        startAdminServer({ socketPath, routes: healthOnly, logger: createSilentLogger() }),
        /another server is already listening on .*api\.sock/,
      );
      const client = createAdminClient(socketPath);
      try {
        assert.equal((await client.health.check({})).status, 1);
      } finally {
        client.close();
      }
    } finally {
      await first.close();
    }
  });

  it('refuses to replace a file that is not a socket', async () => {
    const socketPath = join(dir, 'file', 'api.sock');
    mkdirSync(join(dir, 'file'));
    writeFileSync(socketPath, 'important data');
    await assert.rejects(
      startAdminServer({ socketPath, routes: healthOnly, logger: createSilentLogger() }),
      /exists and is not a socket; refusing to replace it/,
    );
    assert.ok(statSync(socketPath).isFile());
  });
});

describe('createAdminClient', () => {
  it('says which socket it cannot reach and what to check (ENOENT)', async () => {
    const client = createAdminClient('/nonexistent/steeple/api.sock');
    try {
      await assert.rejects(client.entries.countEntries({}), (err: unknown) => {
        assert.ok(err instanceof ConnectError);
        assert.equal(err.code, Code.Unavailable);
        assert.equal(
          err.rawMessage,
          'cannot reach the Steeple server admin socket at /nonexistent/steeple/api.sock: is "steeple server run" running? (ENOENT)',
        );
        return true;
      });
    } finally {
      client.close();
    }
  });
});
