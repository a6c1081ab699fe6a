// Independent peers agree: OpenSSL's own s_client and s_server hold mTLS conversations
// with the SDK's TLS options on the other side, using SVIDs from the test CA.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import {
  authorizeId,
  getPeerId,
  mtlsClientOptions,
  mtlsServerOptions,
  serveMtls,
  type X509Svid,
} from '@steeple/spiffe';
import { createTestCa } from '@steeple/spiffe/testing';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
const ca = createTestCa({ trustDomain: 'example.org' });
const bundle = ca.x509Bundle();
const serverSvid = ca.issueX509Svid('spiffe://example.org/server');
const clientSvid = ca.issueX509Svid('spiffe://example.org/client');
let dir = '';

function writeSvid(name: string, svid: X509Svid): { cert: string; key: string } {
  const m = svid.marshal();
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  writeFileSync(cert, m.certificates);
  writeFileSync(key, m.privateKey, { mode: 0o600 });
  return { cert, key };
}

async function freePort(): Promise<number> {
  const s = createNetServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  s.close();
  return port;
}

function sClient(
  port: number,
  files: { cert: string; key: string },
  input: string,
): Promise<{ out: string; code: number | null }> {
  return new Promise((resolve) => {
    const p = spawn('openssl', [
      's_client',
      '-connect',
      `127.0.0.1:${port}`,
      '-cert',
      files.cert,
      '-key',
      files.key,
      '-CAfile',
      join(dir, 'root.pem'),
      '-verify_return_error',
      '-quiet',
      '-no_ign_eof',
    ]);
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    p.stderr.on('data', (d) => {
      out += d;
    });
    p.stdin.write(input);
    const timer = setTimeout(() => p.kill(), 5000);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ out, code });
    });
  });
}

describe('OpenSSL peers', { skip: hasOpenssl ? false : 'openssl is not installed' }, () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'steeple-openssl-'));
    writeFileSync(join(dir, 'root.pem'), bundle.marshal());
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('openssl verify accepts the test CA SVIDs', () => {
    const files = writeSvid('client', clientSvid);
    const res = spawnSync('openssl', ['verify', '-CAfile', join(dir, 'root.pem'), '-purpose', 'sslclient', files.cert]);
    assert.equal(res.status, 0, res.stderr.toString());
  });

  it('openssl s_client talks to our mTLS server; the server sees its SPIFFE ID', async () => {
    const options = mtlsServerOptions({ svid: serverSvid, bundles: bundle, authorize: authorizeId(clientSvid.id) });
    const server = serveMtls(
      tls.createServer(options, (socket) => {
        socket.once('data', (d) => socket.end(`peer=${getPeerId(socket)} said=${d.toString().trim()}\n`));
      }),
      options,
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    try {
      const ok = await sClient(port, writeSvid('client', clientSvid), 'ping\n');
      assert.match(ok.out, /peer=spiffe:\/\/example\.org\/client said=ping/);
      const other = await sClient(port, writeSvid('other', ca.issueX509Svid('spiffe://example.org/other')), 'ping\n');
      assert.doesNotMatch(other.out, /peer=/, 'an unauthorized ID gets no reply');
    } finally {
      server.close();
    }
  });

  it('our client talks to openssl s_server that requires a client certificate', async () => {
    const port = await freePort();
    const files = writeSvid('server', serverSvid);
    const srv = spawn('openssl', [
      's_server',
      '-accept',
      String(port),
      '-cert',
      files.cert,
      '-key',
      files.key,
      '-CAfile',
      join(dir, 'root.pem'),
      '-Verify',
      '1',
      '-verify_return_error',
      '-www',
      '-naccept',
      '2',
    ]);
    let srvOut = '';
    srv.stdout.on('data', (d) => {
      srvOut += d;
    });
    try {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`s_server did not start: ${srvOut}`)), 5000);
        srv.stdout.on('data', () => {
          if (srvOut.includes('ACCEPT')) {
            clearTimeout(t);
            resolve();
          }
        });
      });
      const reply = await new Promise<string>((resolve, reject) => {
        const s = tls.connect({
          host: '127.0.0.1',
          port,
          ...mtlsClientOptions({ svid: clientSvid, bundles: bundle, authorize: authorizeId(serverSvid.id) }),
        });
        let body = '';
        s.on('secureConnect', () => s.write('GET / HTTP/1.0\r\n\r\n'));
        s.on('data', (d) => {
          body += d;
        });
        s.on('end', () => resolve(body));
        s.on('error', reject);
      });
      assert.match(reply, /HTTP\/1\.0 200 ok/);
      // the server certificate is valid, but our authorizer wants another ID
      await assert.rejects(
        new Promise((resolve, reject) => {
          const s = tls.connect({
            host: '127.0.0.1',
            port,
            ...mtlsClientOptions({
              svid: clientSvid,
              bundles: bundle,
              authorize: authorizeId('spiffe://example.org/db'),
            }),
          });
          s.on('secureConnect', resolve);
          s.on('error', reject);
        }),
        { code: 'ERR_AUTHORIZATION_DENIED' },
      );
    } finally {
      srv.kill();
    }
  });
});
