import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import tls from 'node:tls';
import { BundleSet } from '../bundle/bundle-set.js';
import type { X509BundleSetSource } from '../bundle/source.js';
import type { X509Bundle } from '../bundle/x509-bundle.js';
import { systemClock } from '../clock.js';
import type { SpiffeError } from '../errors.js';
import { X509Svid, type X509SvidSource } from '../svid/x509-svid.js';
import { createTestCa } from '../testing/test-ca.js';
import { createMtlsUndiciAgent } from '../undici/index.js';
import { authorizeAny, authorizeId, authorizeMemberOf } from './authorizer.js';
import { createMtlsHttpsAgent } from './https-agent.js';
import {
  getPeerId,
  type MtlsConfig,
  mtlsClientOptions,
  mtlsServerOptions,
  serveMtls,
  TICKET_KEY_LIFETIME_MS,
} from './tls-options.js';

const caA = createTestCa({ trustDomain: 'a.org' });
const caB = createTestCa({ trustDomain: 'b.org' });
const caEvil = createTestCa({ trustDomain: 'a.org' }); // same name, not trusted
const bundles = BundleSet.of(caA.x509Bundle(), caB.x509Bundle());

const serverId = 'spiffe://a.org/server';
const clientId = 'spiffe://a.org/client';
const serverSvid = caA.issueX509Svid(serverId);
const clientSvid = caA.issueX509Svid(clientId);

/** A mutable source, as a Workload API source would be. */
class Live implements X509SvidSource, X509BundleSetSource {
  constructor(
    public svid: X509Svid,
    public set: BundleSet,
  ) {}
  getX509Svid() {
    return this.svid;
  }
  getX509BundleForTrustDomain(td: Parameters<BundleSet['getX509BundleForTrustDomain']>[0]) {
    return this.set.getX509BundleForTrustDomain(td);
  }
  getX509Bundles(): readonly X509Bundle[] {
    return this.set.getX509Bundles();
  }
}

const servers: tls.Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

async function startTlsServer(
  config: MtlsConfig,
): Promise<{ port: number; rejects: SpiffeError[]; server: tls.Server }> {
  const rejects: SpiffeError[] = [];
  const options = mtlsServerOptions({ ...config, onReject: (e) => rejects.push(e) });
  const server = serveMtls(
    tls.createServer(options, (socket) => {
      socket.on('error', () => {});
      socket.write(`${getPeerId(socket)}|${(socket.getCertificate() as tls.PeerCertificate).serialNumber}`);
    }),
    options,
  );
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, rejects, server };
}

function connect(port: number, config: MtlsConfig, extra: tls.ConnectionOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...extra, ...mtlsClientOptions(config) });
    socket.on('data', (d) => {
      resolve(d.toString());
      socket.destroy();
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error('closed without data')));
  });
}

describe('mTLS with node:tls', () => {
  it('authenticates both sides by SPIFFE ID, without SNI (IP address)', async () => {
    const { port } = await startTlsServer({ svid: serverSvid, bundles, authorize: authorizeId(clientId) });
    const reply = await connect(port, { svid: clientSvid, bundles, authorize: authorizeId(serverId) });
    assert.equal(reply.split('|')[0], clientId);
  });

  it('authenticates with SNI too (servername sent)', async () => {
    const { port } = await startTlsServer({ svid: serverSvid, bundles, authorize: authorizeId(clientId) });
    const reply = await connect(
      port,
      { svid: clientSvid, bundles, authorize: authorizeId(serverId) },
      { servername: 'anything.example' },
    );
    assert.equal(reply.split('|')[0], clientId);
  });

  it('server refuses a client whose ID the authorizer does not allow, and says why', async () => {
    const { port, rejects } = await startTlsServer({ svid: serverSvid, bundles, authorize: authorizeId(clientId) });
    const intruder = caA.issueX509Svid('spiffe://a.org/intruder');
    await assert.rejects(connect(port, { svid: intruder, bundles, authorize: authorizeId(serverId) }));
    assert.equal(rejects[0]?.code, 'ERR_AUTHORIZATION_DENIED');
    assert.match(rejects[0]?.message ?? '', /spiffe:\/\/a\.org\/intruder is not authorized/);
  });

  it('client refuses a server whose ID the authorizer does not allow', async () => {
    const { port } = await startTlsServer({ svid: serverSvid, bundles, authorize: authorizeAny() });
    await assert.rejects(connect(port, { svid: clientSvid, bundles, authorize: authorizeId('spiffe://a.org/other') }), {
      code: 'ERR_AUTHORIZATION_DENIED',
    });
  });

  it('X-13: a CA of trust domain a.org cannot vouch for spiffe://b.org/... even though a.org is trusted', async () => {
    const raw = caA.issueX509SvidRaw('spiffe://b.org/forged');
    const forged = X509Svid.parseRaw(
      Buffer.concat(raw.certificates.map((c) => c.raw)),
      raw.privateKey.export({ format: 'der', type: 'pkcs8' }),
    );
    const { port, rejects } = await startTlsServer({ svid: serverSvid, bundles, authorize: authorizeAny() });
    await assert.rejects(connect(port, { svid: forged, bundles, authorize: authorizeAny() }));
    assert.equal(rejects[0]?.code, 'ERR_X509SVID_UNTRUSTED');
    // and the other way round: a client refuses a server with a forged ID
    const forgedServer = await startTlsServer({ svid: forged, bundles, authorize: authorizeAny() });
    await assert.rejects(connect(forgedServer.port, { svid: clientSvid, bundles, authorize: authorizeAny() }), {
      code: 'ERR_X509SVID_UNTRUSTED',
    });
  });

  it('refuses a client whose chain reaches no trusted anchor (same trust domain name, other CA)', async () => {
    const { port } = await startTlsServer({ svid: serverSvid, bundles, authorize: authorizeAny() });
    const evil = caEvil.issueX509Svid('spiffe://a.org/client');
    await assert.rejects(connect(port, { svid: evil, bundles, authorize: authorizeAny() }));
  });

  it('refuses a client without a certificate', async () => {
    const { port } = await startTlsServer({ svid: serverSvid, bundles, authorize: authorizeAny() });
    await assert.rejects(
      new Promise((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
        s.on('data', resolve);
        s.on('error', reject);
        s.on('close', () => reject(new Error('closed')));
      }),
    );
  });

  it('authorizes across trust domains by full ID (b.org client, a.org server)', async () => {
    const { port } = await startTlsServer({ svid: serverSvid, bundles, authorize: authorizeMemberOf('b.org') });
    const bClient = caB.issueX509Svid('spiffe://b.org/client');
    const reply = await connect(port, { svid: bClient, bundles, authorize: authorizeId(serverId) });
    assert.equal(reply.split('|')[0], 'spiffe://b.org/client');
    await assert.rejects(connect(port, { svid: clientSvid, bundles, authorize: authorizeId(serverId) }));
  });

  it('accepts chains through an intermediate CA', async () => {
    const inter = caA.createIntermediate();
    const viaInter = inter.issueX509Svid('spiffe://a.org/via-intermediate');
    const { port } = await startTlsServer({ svid: viaInter, bundles, authorize: authorizeAny() });
    const reply = await connect(port, {
      svid: inter.issueX509Svid(clientId),
      bundles,
      authorize: authorizeId('spiffe://a.org/via-intermediate'),
    });
    assert.equal(reply.split('|')[0], clientId);
  });

  it('a rotated SVID and a new bundle apply to new connections without a restart; open ones stay up', async () => {
    const live = new Live(caA.issueX509Svid(serverId), BundleSet.of(caA.x509Bundle()));
    const { port } = await startTlsServer({ svid: live, bundles: live, authorize: authorizeAny() });
    const first = await connect(port, { svid: clientSvid, bundles, authorize: authorizeId(serverId) });

    // a long-lived connection opened before the rotation
    const held = tls.connect({
      host: '127.0.0.1',
      port,
      ...mtlsClientOptions({ svid: clientSvid, bundles, authorize: authorizeAny() }),
    });
    held.on('data', () => {});
    await once(held, 'secureConnect');

    const next = caA.issueX509Svid(serverId);
    live.svid = next;
    const second = await connect(port, { svid: clientSvid, bundles, authorize: authorizeId(serverId) });
    assert.notEqual(first.split('|')[1], second.split('|')[1], 'new connections see the new certificate');
    assert.equal(second.split('|')[1], next.leaf.serialNumber);

    // a client from trust domain b.org is refused until b.org's bundle is added
    const bClient = caB.issueX509Svid('spiffe://b.org/client');
    await assert.rejects(connect(port, { svid: bClient, bundles, authorize: authorizeAny() }));
    live.set = BundleSet.of(caA.x509Bundle(), caB.x509Bundle());
    const third = await connect(port, { svid: bClient, bundles, authorize: authorizeAny() });
    assert.equal(third.split('|')[0], 'spiffe://b.org/client');
    assert.equal(held.destroyed, false, 'the connection opened before the rotation is still open');
    held.destroy();
  });

  it('a peer verified before is refused once its trust domain leaves the bundles (no stale cache)', async () => {
    const live = new Live(serverSvid, BundleSet.of(caA.x509Bundle(), caB.x509Bundle()));
    const { port } = await startTlsServer({ svid: live, bundles: live, authorize: authorizeAny() });
    const bClient = caB.issueX509Svid('spiffe://b.org/cached');
    for (let i = 0; i < 2; i++) {
      const reply = await connect(port, { svid: bClient, bundles, authorize: authorizeAny() });
      assert.equal(reply.split('|')[0], 'spiffe://b.org/cached');
    }
    live.set = BundleSet.of(caA.x509Bundle());
    await assert.rejects(connect(port, { svid: bClient, bundles, authorize: authorizeAny() }));
  });

  it('refuses an expired peer SVID', async () => {
    const { port, rejects } = await startTlsServer({ svid: serverSvid, bundles, authorize: authorizeAny() });
    const raw = caA.issueX509SvidRaw(clientId, { broken: { expired: true } });
    const expired = X509Svid.parseRaw(
      Buffer.concat(raw.certificates.map((c) => c.raw)),
      raw.privateKey.export({ format: 'der', type: 'pkcs8' }),
    );
    await assert.rejects(connect(port, { svid: expired, bundles, authorize: authorizeAny() }));
    assert.ok(rejects.length === 0 || rejects[0]?.code === 'ERR_X509SVID_EXPIRED');
  });

  it('getPeerId works on the client side', async () => {
    const { port } = await startTlsServer({ svid: serverSvid, bundles, authorize: authorizeAny() });
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ...mtlsClientOptions({ svid: clientSvid, bundles, authorize: authorizeAny() }),
    });
    socket.on('data', () => {});
    await once(socket, 'secureConnect');
    assert.equal(getPeerId(socket)?.toString(), serverId);
    socket.destroy();
  });
});

/**
 * Connects with our client options plus `session` (a session from an earlier connection to
 * resume); resolves with the server's reply, whether the session was resumed, and the
 * session the server offered for next time (if a ticket came).
 */
function connectResuming(
  port: number,
  config: MtlsConfig,
  session?: Buffer,
): Promise<{ reply: string; reused: boolean; session: Buffer | undefined }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, session, ...mtlsClientOptions(config) });
    let reply: string | undefined;
    let next: Buffer | undefined;
    const finish = () => {
      if (reply === undefined) return;
      resolve({ reply, reused: socket.isSessionReused(), session: next });
      socket.destroy();
    };
    socket.on('session', (s: Buffer) => {
      next = s;
      finish();
    });
    socket.on('data', (d) => {
      reply = d.toString();
      // A TLS 1.3 ticket follows the handshake; give it a moment when it has not come yet.
      if (next === undefined) setTimeout(finish, 200);
      else finish();
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error('closed without data')));
  });
}

describe('TLS session resumption (server side)', () => {
  const clientConfig = { svid: clientSvid, bundles, authorize: authorizeId(serverId) };

  it('is off by default: a client offering its session gets a full handshake', async () => {
    const { port } = await startTlsServer({ svid: serverSvid, bundles, authorize: authorizeId(clientId) });
    const first = await connectResuming(port, clientConfig);
    const second = await connectResuming(port, clientConfig, first.session);
    assert.equal(second.reused, false);
    assert.equal(second.reply.split('|')[0], clientId);
  });

  it('with sessionResumption a client resumes, and the server still knows and authorizes its ID', async () => {
    let allowed = true;
    const authorize = (id: Parameters<ReturnType<typeof authorizeAny>>[0]) =>
      allowed ? undefined : authorizeId('spiffe://a.org/nobody')(id, []);
    const { port, rejects } = await startTlsServer({
      svid: serverSvid,
      bundles,
      authorize,
      sessionResumption: true,
    });
    const first = await connectResuming(port, clientConfig);
    assert.equal(first.reused, false);
    assert.ok(first.session, 'the server issued a ticket');
    const second = await connectResuming(port, clientConfig, first.session);
    assert.equal(second.reused, true);
    assert.equal(second.reply.split('|')[0], clientId);
    // the authorizer runs for a resumed session too
    allowed = false;
    await assert.rejects(connectResuming(port, clientConfig, second.session ?? first.session));
    assert.equal(rejects.at(-1)?.code, 'ERR_AUTHORIZATION_DENIED');
  });

  it('after a bundle change, an old session is not resumed: the client is verified against the new bundles', async () => {
    const live = new Live(serverSvid, BundleSet.of(caA.x509Bundle(), caB.x509Bundle()));
    const { port } = await startTlsServer({
      svid: live,
      bundles: live,
      authorize: authorizeAny(),
      sessionResumption: true,
    });
    const bClient = caB.issueX509Svid('spiffe://b.org/resumer');
    const bConfig = { svid: bClient, bundles, authorize: authorizeAny() };
    const first = await connectResuming(port, bConfig);
    const again = await connectResuming(port, bConfig, first.session);
    assert.equal(again.reused, true);
    // b.org leaves the bundles: its session must not let it back in
    live.set = BundleSet.of(caA.x509Bundle());
    await assert.rejects(connectResuming(port, bConfig, again.session ?? first.session));
    // a.org clients go on, with a full handshake first, then resumed again
    const a1 = await connectResuming(port, clientConfig, first.session);
    assert.equal(a1.reused, false);
    assert.equal(a1.reply.split('|')[0], clientId);
    const a2 = await connectResuming(port, clientConfig, a1.session);
    assert.equal(a2.reused, true);
  });

  it('refuses a resumed session whose client certificate has expired since', async () => {
    let now = new Date();
    const clock = { now: () => now, setTimer: systemClock.setTimer };
    const { port, rejects } = await startTlsServer({
      svid: serverSvid,
      bundles,
      authorize: authorizeAny(),
      sessionResumption: true,
      clock,
    });
    const shortLived = caA.issueX509Svid('spiffe://a.org/short', { ttlSeconds: 60 });
    const config = { svid: shortLived, bundles, authorize: authorizeAny() };
    const first = await connectResuming(port, config);
    now = new Date(Date.parse(shortLived.leaf.validTo) + 1000);
    await assert.rejects(connectResuming(port, config, first.session));
    assert.equal(rejects.at(-1)?.code, 'ERR_X509SVID_UNTRUSTED');
    assert.match(rejects.at(-1)?.message ?? '', /resumed TLS session/);
  });

  it('replaces its ticket keys every hour: an older session is not resumed', async () => {
    let now = new Date();
    const clock = { now: () => now, setTimer: systemClock.setTimer };
    const { port } = await startTlsServer({
      svid: caA.issueX509Svid(serverId, { ttlSeconds: 86_400 }),
      bundles,
      authorize: authorizeAny(),
      sessionResumption: true,
      clock,
    });
    const config = { svid: caA.issueX509Svid(clientId, { ttlSeconds: 86_400 }), bundles, authorize: authorizeAny() };
    const first = await connectResuming(port, config);
    now = new Date(now.getTime() + TICKET_KEY_LIFETIME_MS - 60_000);
    const within = await connectResuming(port, config, first.session);
    assert.equal(within.reused, true);
    now = new Date(now.getTime() + 61_000);
    const after = await connectResuming(port, config, first.session);
    assert.equal(after.reused, false);
    assert.equal(after.reply.split('|')[0], clientId);
  });

  it('a server not handed to serveMtls issues no tickets a client can resume', async () => {
    const options = mtlsServerOptions({
      svid: serverSvid,
      bundles,
      authorize: authorizeAny(),
      sessionResumption: true,
    });
    const server = tls.createServer(options, (socket) => {
      socket.on('error', () => {});
      socket.end('hi');
    });
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const first = await connectResuming(port, clientConfig);
    const second = await connectResuming(port, clientConfig, first.session);
    assert.equal(second.reused, false);
  });
});

describe('mTLS with https, http2 and undici', () => {
  async function httpsServer(authorize = authorizeId(clientId)) {
    const options = mtlsServerOptions({ svid: serverSvid, bundles, authorize });
    const server = serveMtls(
      https.createServer(options, (req, res) => res.end(`hello ${getPeerId(req.socket as tls.TLSSocket)}`)),
      options,
    );
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return (server.address() as AddressInfo).port;
  }

  function get(url: string, options: https.RequestOptions): Promise<string> {
    return new Promise((resolve, reject) => {
      https
        .get(url, options, (res) => {
          let body = '';
          res.on('data', (d) => {
            body += d;
          });
          res.on('end', () => resolve(body));
        })
        .on('error', reject);
    });
  }

  it('https.request with mtlsClientOptions', async () => {
    const port = await httpsServer();
    const body = await get(`https://127.0.0.1:${port}/`, {
      ...mtlsClientOptions({ svid: clientSvid, bundles, authorize: authorizeId(serverId) }),
      agent: false,
    });
    assert.equal(body, `hello ${clientId}`);
  });

  it('https with the keep-alive agent helper', async () => {
    const port = await httpsServer();
    const agent = createMtlsHttpsAgent({ svid: clientSvid, bundles, authorize: authorizeId(serverId) });
    assert.equal(await get(`https://127.0.0.1:${port}/`, { agent }), `hello ${clientId}`);
    assert.equal(await get(`https://127.0.0.1:${port}/`, { agent }), `hello ${clientId}`);
    agent.destroy();
  });

  it('https refuses an unauthorized client before the handler runs', async () => {
    const port = await httpsServer();
    const other = caA.issueX509Svid('spiffe://a.org/other');
    await assert.rejects(
      get(`https://127.0.0.1:${port}/`, {
        ...mtlsClientOptions({ svid: other, bundles, authorize: authorizeAny() }),
        agent: false,
      }),
    );
  });

  it('undici Agent helper', async () => {
    const port = await httpsServer();
    const { request } = await import('undici');
    const dispatcher = createMtlsUndiciAgent({ svid: clientSvid, bundles, authorize: authorizeId(serverId) });
    const res = await request(`https://127.0.0.1:${port}/`, { dispatcher });
    assert.equal(await res.body.text(), `hello ${clientId}`);
    const wrong = createMtlsUndiciAgent({ svid: clientSvid, bundles, authorize: authorizeId('spiffe://a.org/nope') });
    await assert.rejects(request(`https://127.0.0.1:${port}/`, { dispatcher: wrong }));
    await dispatcher.close();
    await wrong.close();
  });

  it('http2 secure server and client', async () => {
    const options = mtlsServerOptions({ svid: serverSvid, bundles, authorize: authorizeId(clientId) });
    const server = serveMtls(
      http2.createSecureServer(options, (req, res) => res.end(`h2 hello ${getPeerId(req.socket as tls.TLSSocket)}`)),
      options,
    );
    servers.push(server as unknown as tls.Server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const session = http2.connect(
      `https://127.0.0.1:${port}`,
      mtlsClientOptions({ svid: clientSvid, bundles, authorize: authorizeId(serverId) }),
    );
    const req = session.request({ ':path': '/' });
    let body = '';
    req.on('data', (d) => {
      body += d;
    });
    await once(req, 'end');
    session.close();
    assert.equal(body, `h2 hello ${clientId}`);
  });
});
