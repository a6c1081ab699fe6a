import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo, Server } from 'node:net';
import { after, describe, it } from 'node:test';
import tls from 'node:tls';
import { BundleSet } from '../bundle/bundle-set.js';
import type { X509BundleSetSource } from '../bundle/source.js';
import { PolicyError, type SpiffeError } from '../errors.js';
import type { Decision } from '../policy/attributes.js';
import { PolicyEvaluator } from '../policy/policy-evaluator.js';
import type { PolicyFileInput } from '../policy/policy-schema.js';
import type { X509Svid, X509SvidSource } from '../svid/x509-svid.js';
import { startFakeWorkloadApi } from '../testing/fake-workload-api.js';
import { createTestCa } from '../testing/test-ca.js';
import { authorizeId } from '../tls/authorizer.js';
import { createMtlsHttpsAgent } from '../tls/https-agent.js';
import { mtlsClientOptions } from '../tls/tls-options.js';
import { createSpiffeFetch } from '../undici/index.js';
import { X509Source } from '../workload-api/x509-source.js';
import { createSpiffeHttp2SecureServer, createSpiffeHttpsServer, getRequestPeerId } from './spiffe-server.js';

const ca = createTestCa({ trustDomain: 'example.org' });
const bundles = BundleSet.of(ca.x509Bundle());
const serverId = 'spiffe://example.org/orders';
const webId = 'spiffe://example.org/web';
const adminId = 'spiffe://example.org/admin';

type Source = X509SvidSource & X509BundleSetSource;
const staticSource = (svid: X509Svid): Source => ({
  getX509Svid: () => svid,
  getX509BundleForTrustDomain: (td) => bundles.getX509BundleForTrustDomain(td),
  getX509Bundles: () => bundles.getX509Bundles(),
});
const serverSource = staticSource(ca.issueX509Svid(serverId));
const webSource = staticSource(ca.issueX509Svid(webId));

/** Web may read orders; only admin may touch /admin. */
const POLICY: PolicyFileInput = {
  policies: [
    {
      name: 'admin-only',
      action: 'DENY',
      rules: [{ from: [{ source: { notPrincipals: [adminId] } }], to: [{ operation: { paths: ['/admin*'] } }] }],
    },
    {
      name: 'web-reads',
      action: 'ALLOW',
      rules: [
        { from: [{ source: { principals: [webId] } }], to: [{ operation: { methods: ['GET'] } }] },
        { from: [{ source: { principals: [adminId] } }] },
      ],
    },
  ],
};

const cleanups: (() => unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function listen<S extends Server>(server: S): Promise<number> {
  cleanups.push(() => new Promise((r) => server.close(r)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

function fetchAs(source: Source, authorize = authorizeId(serverId)) {
  const f = createSpiffeFetch({ source, authorize });
  cleanups.push(() => f.close());
  return f;
}

describe('createSpiffeHttpsServer + createSpiffeFetch', { timeout: 20_000 }, () => {
  it('serves an allowed call; the handler sees the verified caller and the normalised path', async () => {
    const seen: string[] = [];
    const server = createSpiffeHttpsServer({ source: serverSource, policy: POLICY }, (req, res) => {
      seen.push(`${getRequestPeerId(req)} ${req.url}`);
      res.end(`hello ${getRequestPeerId(req)}`);
    });
    const port = await listen(server);
    const res = await fetchAs(webSource)(`https://127.0.0.1:${port}/orders//7/./items?x=1`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), `hello ${webId}`);
    assert.deepEqual(seen, [`${webId} /orders/7/items?x=1`]);
  });

  it('with sessionResumption, a caller resumes its TLS session and the handler still sees its verified ID', async () => {
    const server = createSpiffeHttpsServer({ source: serverSource, sessionResumption: true }, (req, res) => {
      res.end(`hello ${getRequestPeerId(req)}`);
    });
    const port = await listen(server);
    const call = (session?: Buffer) =>
      new Promise<{ body: string; reused: boolean; session: Buffer | undefined }>((resolve, reject) => {
        const socket = tls.connect({
          ...mtlsClientOptions({ svid: webSource.getX509Svid(), bundles, authorize: authorizeId(serverId) }),
          host: '127.0.0.1',
          port,
          session,
        });
        let next: Buffer | undefined;
        let body = '';
        socket.on('session', (s: Buffer) => {
          next = s;
        });
        socket.on('secureConnect', () => {
          const reused = socket.isSessionReused();
          socket.write('GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
          socket.on('data', (d) => {
            body += d;
          });
          socket.on('end', () => resolve({ body, reused, session: next }));
        });
        socket.on('error', reject);
      });
    const first = await call();
    assert.equal(first.reused, false);
    assert.ok(first.session);
    const second = await call(first.session);
    assert.equal(second.reused, true);
    assert.match(second.body, new RegExp(`hello ${webId}$`));
  });

  it('answers 403 with the reason when the policy denies, before the handler runs', async () => {
    const decisions: Decision[] = [];
    let handled = 0;
    const server = createSpiffeHttpsServer(
      { source: serverSource, policy: POLICY, onDecision: (d) => decisions.push(d) },
      (_req, res) => {
        handled++;
        res.end('ok');
      },
    );
    const port = await listen(server);
    const webFetch = fetchAs(webSource);
    for (const path of ['/admin/users', '/./admin', '/%61dmin', '//admin']) {
      const res = await webFetch(`https://127.0.0.1:${port}${path}`);
      assert.equal(res.status, 403, path);
      assert.equal(await res.text(), 'RBAC: access denied: denied by policy admin-only\n');
    }
    const post = await webFetch(`https://127.0.0.1:${port}/orders`, { method: 'POST', body: 'x' });
    assert.equal(post.status, 403);
    assert.equal(await post.text(), 'RBAC: access denied: denied: no ALLOW policy matched\n');
    assert.equal(handled, 0);
    const admin = await fetchAs(staticSource(ca.issueX509Svid(adminId)))(`https://127.0.0.1:${port}/admin/users`);
    assert.equal(admin.status, 200);
    assert.equal(handled, 1);
    assert.deepEqual(
      decisions.map((d) => d.allowed),
      [false, false, false, false, false, true],
    );
  });

  it('checks upgrade requests (WebSocket) as well, before the upgrade listener', async () => {
    const server = createSpiffeHttpsServer({ source: serverSource, policy: POLICY });
    const upgraded: string[] = [];
    server.on('upgrade', (req, socket) => {
      upgraded.push(req.url ?? '');
      socket.end('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: test\r\n\r\n');
    });
    const port = await listen(server);
    const agent = createMtlsHttpsAgent({ svid: webSource, bundles: webSource, authorize: authorizeId(serverId) });
    cleanups.push(() => agent.destroy());
    const upgrade = (path: string) =>
      new Promise<number>((resolve, reject) => {
        const req = https.request({
          host: '127.0.0.1',
          port,
          path,
          agent,
          headers: { connection: 'upgrade', upgrade: 'test' },
        });
        req.on('upgrade', (res, socket) => {
          socket.destroy();
          resolve(res.statusCode ?? 0);
        });
        req.on('response', (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    assert.equal(await upgrade('/orders/./live'), 101);
    assert.equal(await upgrade('/admin/live'), 403);
    assert.deepEqual(upgraded, ['/orders/live']);
  });

  it('refuses a caller the authorizer rejects during the TLS handshake (no HTTP at all)', async () => {
    const rejects: SpiffeError[] = [];
    let handled = 0;
    const server = createSpiffeHttpsServer(
      { source: serverSource, authorize: authorizeId(webId), onReject: (e) => rejects.push(e) },
      (_req, res) => {
        handled++;
        res.end('ok');
      },
    );
    const port = await listen(server);
    const intruder = fetchAs(staticSource(ca.issueX509Svid('spiffe://example.org/intruder')));
    await assert.rejects(intruder(`https://127.0.0.1:${port}/`), TypeError);
    assert.equal(rejects[0]?.code, 'ERR_AUTHORIZATION_DENIED');
    assert.equal(handled, 0);
    // and the client side: a server whose ID our authorizer does not allow fails the call with the cause
    const picky = fetchAs(webSource, authorizeId('spiffe://example.org/someone-else'));
    await assert.rejects(picky(`https://127.0.0.1:${port}/`), (err: Error) => {
      assert.equal((err.cause as SpiffeError | undefined)?.code, 'ERR_AUTHORIZATION_DENIED');
      return true;
    });
  });

  it('by default admits members of its own trust domain only', async () => {
    const other = createTestCa({ trustDomain: 'other.org' });
    const both = BundleSet.of(ca.x509Bundle(), other.x509Bundle());
    const source = (svid: X509Svid): Source => ({
      getX509Svid: () => svid,
      getX509BundleForTrustDomain: (td) => both.getX509BundleForTrustDomain(td),
      getX509Bundles: () => both.getX509Bundles(),
    });
    const server = createSpiffeHttpsServer({ source: source(ca.issueX509Svid(serverId)) }, (_req, res) =>
      res.end('ok'),
    );
    const port = await listen(server);
    const member = await fetchAs(source(ca.issueX509Svid(webId)))(`https://127.0.0.1:${port}/`);
    assert.equal(await member.text(), 'ok');
    const outsider = fetchAs(source(other.issueX509Svid('spiffe://other.org/web')));
    await assert.rejects(outsider(`https://127.0.0.1:${port}/`));
  });

  it('takes a policy as an evaluator or a function (swapped at run time), and refuses a broken one', async () => {
    let current = PolicyEvaluator.allowAll();
    const server = createSpiffeHttpsServer({ source: serverSource, policy: () => current }, (_req, res) =>
      res.end('ok'),
    );
    const port = await listen(server);
    const webFetch = fetchAs(webSource);
    assert.equal((await webFetch(`https://127.0.0.1:${port}/admin`)).status, 200);
    current = PolicyEvaluator.fromObject(POLICY);
    assert.equal((await webFetch(`https://127.0.0.1:${port}/admin`)).status, 403, 'the new policy applies at once');
    assert.throws(
      () =>
        createSpiffeHttpsServer({
          source: serverSource,
          policy: { policies: [{ name: 'p', action: 'PERMIT' as 'ALLOW' }] },
        }),
      (err: unknown) => err instanceof PolicyError && /policies\[0\]\.action: "PERMIT" is not one of/.test(err.message),
    );
  });

  it('rotates its certificate without a restart when the Workload API pushes a new SVID', async () => {
    const first = ca.issueX509Svid(serverId);
    const api = await startFakeWorkloadApi({ svids: [first], bundles });
    cleanups.push(() => api.close());
    const source = await X509Source.create({ address: api.address });
    cleanups.push(() => source.close());
    const server = createSpiffeHttpsServer({ source, policy: POLICY }, (req, res) =>
      res.end(`${getRequestPeerId(req)}`),
    );
    const port = await listen(server);
    /** The serial number of the server certificate a new connection sees. */
    const serverSerial = async () => {
      const serials: string[] = [];
      // a fresh client (fresh connection) that records the leaf the server presented
      const recording = createSpiffeFetch({
        source: webSource,
        authorize: (id, chain) => {
          serials.push(chain[0]?.serialNumber ?? '');
          return authorizeId(serverId)(id, chain);
        },
      });
      const res = await recording(`https://127.0.0.1:${port}/orders`);
      assert.equal(await res.text(), webId);
      await recording.close();
      return serials[0];
    };
    assert.equal(await serverSerial(), first.leaf.serialNumber);
    const rotated = ca.issueX509Svid(serverId);
    const updated = new Promise<void>((resolve) => {
      const off = source.onUpdate(() => {
        off();
        resolve();
      });
    });
    api.setX509Svids([rotated], bundles);
    await updated;
    assert.equal(await serverSerial(), rotated.leaf.serialNumber, 'a new connection sees the new certificate');
  });
});

describe('createSpiffeHttp2SecureServer', { timeout: 20_000 }, () => {
  async function h2(port: number, source: Source, path: string): Promise<{ status: number; body: string }> {
    const session = http2.connect(
      `https://127.0.0.1:${port}`,
      mtlsClientOptions({ svid: source, bundles: source, authorize: authorizeId(serverId) }),
    );
    try {
      const req = session.request({ ':path': path });
      const closed = new Promise<never>((_, reject) => {
        const fail = (err?: Error) => reject(err ?? new Error('session closed before a response'));
        session.once('error', fail).once('close', fail);
        req.once('close', () => fail(new Error(`stream closed before a response (code ${req.rstCode})`)));
      });
      closed.catch(() => {}); // settles late (at close) after a response: not an error then
      const [headers] = (await Promise.race([once(req, 'response'), closed])) as [http2.IncomingHttpHeaders];
      let body = '';
      req.setEncoding('utf8');
      for await (const chunk of req) body += chunk;
      return { status: Number(headers[':status']), body };
    } finally {
      session.close();
    }
  }

  it('serves allowed requests and answers 403 with the reason to denied ones', async () => {
    const server = createSpiffeHttp2SecureServer({ source: serverSource, policy: POLICY }, (req, res) =>
      res.end(`h2 ${getRequestPeerId(req)} ${req.url}`),
    );
    const port = await listen(server);
    assert.deepEqual(await h2(port, webSource, '/orders/./7'), { status: 200, body: `h2 ${webId} /orders/7` });
    assert.deepEqual(await h2(port, webSource, '/%61dmin'), {
      status: 403,
      body: 'RBAC: access denied: denied by policy admin-only\n',
    });
  });

  it('checks streams too, for servers that use the stream API', async () => {
    const server = createSpiffeHttp2SecureServer({ source: serverSource, policy: POLICY });
    server.on('stream', (stream) => {
      stream.respond({ ':status': 200 });
      stream.end(`stream ${getRequestPeerId(stream)}`);
    });
    const port = await listen(server);
    assert.deepEqual(await h2(port, webSource, '/orders'), { status: 200, body: `stream ${webId}` });
    assert.equal((await h2(port, webSource, '/admin')).status, 403);
  });

  it('refuses a caller the authorizer rejects during the handshake', async () => {
    const rejects: SpiffeError[] = [];
    const server = createSpiffeHttp2SecureServer(
      { source: serverSource, authorize: authorizeId(adminId), onReject: (e) => rejects.push(e) },
      (_req, res) => res.end('ok'),
    );
    const port = await listen(server);
    await assert.rejects(h2(port, webSource, '/'));
    assert.equal(rejects[0]?.code, 'ERR_AUTHORIZATION_DENIED');
  });
});
