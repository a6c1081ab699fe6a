/**
 * The mTLS proxy end to end, with real sockets: apps behind proxies, SVIDs from a test CA
 * written to files, policy and identity files rewritten while connections are open, and
 * one proxy run as its own process through the CLI.
 */
import assert from 'node:assert/strict';
import * as childProcess from 'node:child_process';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { authorizeId, BundleSet, mtlsClientOptions } from '@steeple/spiffe';
import { createTestCa, startFakeWorkloadApi } from '@steeple/spiffe/testing';
import { createSilentLogger } from '../src/common/logger.js';
import { loadProxyConfig } from '../src/proxy/config.js';
import { type RunningProxy, startProxy } from '../src/proxy/proxy.js';
import {
  type App,
  Conn,
  connectMtls,
  connectPlain,
  eventually,
  type IdentityFiles,
  readAudit,
  rewriteIdentity,
  startEchoApp,
  startHttpApp,
  tempDir,
  writeIdentity,
} from './support/proxy-fixtures.js';

const require_child = () => childProcess;
const ca = createTestCa({ trustDomain: 'example.org' });
const otherCa = createTestCa({ trustDomain: 'other.org' });
const bundles = BundleSet.of(ca.x509Bundle());
const ID_A = 'spiffe://example.org/ns/shop/sa/frontend';
const ID_B = 'spiffe://example.org/ns/shop/sa/backend';
const ID_C = 'spiffe://example.org/ns/shop/sa/intruder';

async function proxyFrom(dir: string, name: string, yaml: string): Promise<RunningProxy> {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, yaml);
  return startProxy({ config: loadProxyConfig(file), logger: createSilentLogger() });
}

function identityYaml(files: IdentityFiles): string {
  return `identity:\n  files: { cert: ${files.cert}, key: ${files.key}, bundle: ${files.bundle}, poll_interval: 1s }\n`;
}

describe('proxy: two apps behind two proxies', () => {
  const dir = tempDir();
  const audit = join(dir, 'audit-b.log');
  const policyFile = join(dir, 'policy.yaml');
  let httpApp: App;
  let echoApp: App;
  let proxyB: RunningProxy;
  let proxyA: RunningProxy;
  const svidA = ca.issueX509Svid(ID_A);
  const svidB = ca.issueX509Svid(ID_B);
  const svidC = ca.issueX509Svid(ID_C);
  /** The policy the reload tests switch to (A allowed, except on /catalog) and leave in force. */
  const frontendOnly = `policies:
  - name: frontend-only
    action: ALLOW
    rules:
      - from: [{ source: { principals: ["${ID_A}"] } }]
        to: [{ operation: { notPaths: ["/catalog"] } }]
`;

  before(async () => {
    httpApp = await startHttpApp();
    echoApp = await startEchoApp();
    writeFileSync(
      policyFile,
      `policies:
  - name: frontend-only
    action: ALLOW
    rules:
      - from: [{ source: { principals: ["${ID_A}"] } }]
  - name: no-admin
    action: DENY
    listeners: [web]
    rules:
      - to: [{ operation: { paths: ["/admin*"] } }]
`,
    );
    proxyB = await proxyFrom(
      dir,
      'b',
      `${identityYaml(writeIdentity(dir, 'b', svidB, bundles))}
inbound:
  - { name: web, listen: "127.0.0.1:0", target: "127.0.0.1:${httpApp.port}", protocol: http, mode: STRICT }
  - { name: echo, listen: "127.0.0.1:0", target: "127.0.0.1:${echoApp.port}", protocol: tcp, mode: STRICT }
policy: { file: ${policyFile}, poll_interval: 1s }
audit: { output: file, path: ${audit}, flush_interval_ms: 5 }
`,
    );
    proxyA = await proxyFrom(
      dir,
      'a',
      `${identityYaml(writeIdentity(dir, 'a', svidA, bundles))}
outbound:
  - { name: to-web, listen: "127.0.0.1:0", upstream: "127.0.0.1:${proxyB.ports.get('web')}", protocol: http, upstream_id: "${ID_B}" }
  - { name: to-echo, listen: "127.0.0.1:0", upstream: "127.0.0.1:${proxyB.ports.get('echo')}", protocol: tcp, upstream_trust_domain: example.org }
  - { name: to-web-wrong-id, listen: "127.0.0.1:0", upstream: "127.0.0.1:${proxyB.ports.get('web')}", protocol: http, upstream_id: "${ID_C}" }
audit: { output: none }
`,
    );
  });

  after(async () => {
    await proxyA?.close();
    await proxyB?.close();
    await httpApp?.close();
    await echoApp?.close();
  });

  it('HTTP: app A → outbound proxy A → inbound proxy B → app B, with the verified caller in x-forwarded-client-cert', async () => {
    const conn = await connectPlain(proxyA.ports.get('to-web') as number);
    // A forged identity header from the caller must never reach the app.
    const res = await conn.request('/orders/./7?x=1', {
      headers: { 'x-forwarded-client-cert': 'URI=spiffe://evil/x' },
    });
    assert.equal(res?.status, 200);
    const seen = JSON.parse(res?.body ?? '{}');
    assert.equal(seen.xfcc, `By=${ID_B};URI=${ID_A}`);
    assert.equal(seen.url, '/orders/7?x=1', 'the app gets the normalised path that policy saw');
    // Keep-alive through both proxies: a second request on the same connection, with a body.
    const second = await conn.request('/orders', { method: 'POST', body: 'hello' });
    assert.equal(second?.status, 200);
    assert.equal(JSON.parse(second?.body ?? '{}').body, 'hello');
    conn.close();
  });

  it('TCP: bytes pass both ways through both proxies', async () => {
    const conn = await connectPlain(proxyA.ports.get('to-echo') as number);
    conn.socket.write('ping\n');
    const echoed = await conn.read((b) => (b.includes('\n') ? b.indexOf('\n') + 1 : undefined));
    assert.equal(echoed?.toString(), 'ping\n');
    conn.close();
  });

  it('outbound refuses an upstream whose SPIFFE ID is not the expected one (502/503 to the app)', async () => {
    const conn = await connectPlain(proxyA.ports.get('to-web-wrong-id') as number);
    const res = await conn.request('/');
    assert.ok(res !== undefined && res.status >= 502 && res.status <= 503, `got ${res?.status}`);
    conn.close();
  });

  it('an unauthorized SPIFFE ID gets HTTP 403 and the decision is audited', async () => {
    const conn = await connectMtls(proxyB.ports.get('web') as number, svidC, bundles, authorizeId(ID_B));
    const res = await conn.request('/orders');
    assert.equal(res?.status, 403);
    assert.match(res?.body ?? '', /access denied/);
    const record = await eventually(() =>
      readAudit(audit).find((r) => r['source_id'] === ID_C && r['type'] === 'request'),
    );
    assert.equal(record['decision'], 'deny');
    assert.equal(record['listener'], 'web');
    assert.equal(record['destination_id'], ID_B);
    assert.equal(record['status'], 403);
    assert.equal(record['path'], '/orders');
    assert.equal(record['method'], 'GET');
    assert.match(String(record['peer_address']), /^127\.0\.0\.1:\d+$/);
    assert.equal(typeof record['time'], 'string');
    assert.equal(typeof record['tls_version'], 'string');
    assert.equal(typeof record['tls_cipher'], 'string');
    conn.close();
  });

  it('a DENY policy wins over ALLOW: the allowed caller gets 403 on /admin', async () => {
    const conn = await connectMtls(proxyB.ports.get('web') as number, svidA, bundles);
    assert.equal((await conn.request('/admin/users'))?.status, 403);
    assert.equal((await conn.request('/orders'))?.status, 200);
    // Path tricks normalise to /admin and are denied too.
    assert.equal((await conn.request('//%61dmin/x'))?.status, 403);
    conn.close();
    const record = await eventually(() => readAudit(audit).find((r) => r['path'] === '/admin/users'));
    assert.equal(record['policy'], 'no-admin');
    assert.equal(record['rule'], 0);
  });

  it('an unauthorized SPIFFE ID on a TCP listener is closed without a byte, and audited', async () => {
    const conn = await connectMtls(proxyB.ports.get('echo') as number, svidC, bundles);
    conn.socket.write('ping\n');
    const got = await conn.read((b) => (b.length > 0 ? b.length : undefined));
    assert.equal(got, undefined, 'the connection is closed');
    const record = await eventually(() =>
      readAudit(audit).find((r) => r['source_id'] === ID_C && r['listener'] === 'echo'),
    );
    assert.equal(record['decision'], 'deny');
    assert.equal(record['reason'], 'denied: no ALLOW policy matched');
  });

  it('a policy file change takes effect without dropping an open connection', async () => {
    const conn = await connectMtls(proxyB.ports.get('web') as number, svidA, bundles);
    assert.equal((await conn.request('/catalog'))?.status, 200);
    writeFileSync(policyFile, frontendOnly);
    // Same connection: the next requests see the new policy once it is loaded.
    const status = await eventually(async () => {
      const s = (await conn.request('/catalog'))?.status;
      return s === 403 ? s : undefined;
    });
    assert.equal(status, 403);
    assert.equal((await conn.request('/orders'))?.status, 200, 'the connection is still open and usable');
    // A broken file keeps the last good policy.
    writeFileSync(policyFile, 'policies:\n  - name: x\n    action: PERMIT\n');
    assert.equal(proxyB.reloadPolicy(), false);
    assert.equal((await conn.request('/orders'))?.status, 200);
    assert.equal((await conn.request('/catalog'))?.status, 403);
    conn.close();
  });

  it('a decision made once per connection (principal-only policy) is made afresh after a policy reload', async () => {
    // The previous test left frontendOnly in force; it is restored at the end for the tests after this one.
    const byPrincipal = (id: string) =>
      `policies:\n  - name: only-one\n    action: ALLOW\n    rules:\n      - from: [{ source: { principals: ["${id}"] } }]\n`;
    writeFileSync(policyFile, byPrincipal(ID_A));
    assert.equal(proxyB.reloadPolicy(), true);
    const conn = await connectMtls(proxyB.ports.get('web') as number, svidA, bundles);
    try {
      for (const path of ['/catalog', '/orders', '/catalog'])
        assert.equal((await conn.request(path))?.status, 200, path);
      writeFileSync(policyFile, byPrincipal(ID_C));
      assert.equal(proxyB.reloadPolicy(), true);
      assert.equal((await conn.request('/orders'))?.status, 403, 'the same connection is decided by the new policy');
      writeFileSync(policyFile, byPrincipal(ID_A));
      assert.equal(proxyB.reloadPolicy(), true);
      assert.equal((await conn.request('/orders'))?.status, 200);
    } finally {
      conn.close();
      writeFileSync(policyFile, frontendOnly);
      assert.equal(proxyB.reloadPolicy(), true);
    }
  });

  it('on one connection, a repeated request is decided again when the policy reads headers, and reuses its decision when not', async () => {
    const byHeader = `policies:
  - name: prod-only
    action: ALLOW
    rules:
      - when: [{ key: "request.headers[x-env]", values: ["prod"] }]
`;
    writeFileSync(policyFile, byHeader);
    assert.equal(proxyB.reloadPolicy(), true);
    const conn = await connectMtls(proxyB.ports.get('web') as number, svidA, bundles);
    try {
      // Same method, path and host each time: only the header changes the decision (a
      // 403 to a request without a body keeps the connection open).
      for (const env of ['prod', 'dev', 'prod', 'dev']) {
        const status = (await conn.request('/orders', { headers: { 'x-env': env } }))?.status;
        assert.equal(status, env === 'prod' ? 200 : 403, env);
      }
      // A policy on paths only: the repeated request line gets the same answer each time,
      // and a different path on the same connection is decided on its own.
      writeFileSync(policyFile, frontendOnly);
      assert.equal(proxyB.reloadPolicy(), true);
      for (const path of ['/orders', '/orders', '/catalog', '/orders', '/catalog']) {
        assert.equal((await conn.request(path))?.status, path === '/catalog' ? 403 : 200, path);
      }
    } finally {
      conn.close();
      writeFileSync(policyFile, frontendOnly);
      proxyB.reloadPolicy(); // false when the body above already left it in force
    }
  });

  it('exposes Prometheus metrics for decisions, connections and handshakes', async () => {
    const text = await proxyB.metrics.render();
    assert.match(
      text,
      /steeple_proxy_authorization_decisions_total\{[^}]*policy="no-admin",action="DENY",decision="deny"\} \d+/,
    );
    assert.match(text, /steeple_proxy_connections_total\{listener="web",direction="inbound",transport="mtls"\} \d+/);
    assert.match(text, /steeple_proxy_request_duration_seconds_bucket/);
    assert.match(text, /steeple_proxy_bytes_total/);
  });
});

describe('proxy: process metrics only where they can be read', () => {
  it('collects CPU, memory, GC and event-loop metrics only with a health or Prometheus listener', async () => {
    const dir = tempDir();
    const id = writeIdentity(dir, 'p', ca.issueX509Svid(ID_B, { ttlSeconds: 3600 }), bundles);
    const base = `identity: { files: { cert: ${id.cert}, key: ${id.key}, bundle: ${id.bundle} } }
inbound: [{ name: web, listen: "127.0.0.1:0", target: "127.0.0.1:9" }]
`;
    const bare = await proxyFrom(dir, 'bare', base);
    const served = await proxyFrom(dir, 'served', `${base}telemetry: { prometheus: { host: 127.0.0.1, port: 0 } }\n`);
    try {
      // Nobody can scrape the first: no GC observer, no delay histogram, no process gauges.
      assert.doesNotMatch(await bare.metrics.render(), /process_cpu_seconds_total|nodejs_eventloop_lag/);
      const text = await served.metrics.render();
      assert.match(text, /steeple_process_cpu_seconds_total \d/);
      assert.match(text, /steeple_nodejs_eventloop_lag_p99_seconds /);
    } finally {
      await bare.close();
      await served.close();
    }
  });
});

describe('proxy: PeerAuthentication modes', () => {
  const dir = tempDir();
  const audit = join(dir, 'audit.log');
  let httpApp: App;
  let proxy: RunningProxy;
  const svidB = ca.issueX509Svid(ID_B);
  const svidA = ca.issueX509Svid(ID_A);

  before(async () => {
    httpApp = await startHttpApp();
    proxy = await proxyFrom(
      dir,
      'modes',
      `${identityYaml(writeIdentity(dir, 'b', svidB, bundles))}
inbound:
  - { name: strict, listen: "127.0.0.1:0", target: "127.0.0.1:${httpApp.port}", protocol: http, mode: STRICT }
  - { name: permissive, listen: "127.0.0.1:0", target: "127.0.0.1:${httpApp.port}", protocol: http, mode: PERMISSIVE }
  - { name: disabled, listen: "127.0.0.1:0", target: "127.0.0.1:${httpApp.port}", protocol: http, mode: DISABLE }
audit: { output: file, path: ${audit}, flush_interval_ms: 5 }
`,
    );
  });

  after(async () => {
    await proxy?.close();
    await httpApp?.close();
  });

  it('PERMISSIVE accepts plaintext on the mTLS port and marks it unauthenticated', async () => {
    const plain = await connectPlain(proxy.ports.get('permissive') as number);
    const res = await plain.request('/p', {
      headers: { 'x-forwarded-client-cert': 'By=x;URI=spiffe://example.org/forged' },
    });
    assert.equal(res?.status, 200);
    assert.equal(
      JSON.parse(res?.body ?? '{}').xfcc,
      null,
      'no identity header for a plaintext caller, forged one removed',
    );
    plain.close();
    const record = await eventually(() =>
      readAudit(audit).find((r) => r['listener'] === 'permissive' && r['path'] === '/p'),
    );
    assert.equal(record['source_id'], 'unauthenticated');
    assert.equal(record['tls_version'], undefined);
  });

  it('PERMISSIVE also accepts mTLS on the same port and forwards the caller ID', async () => {
    const conn = await connectMtls(proxy.ports.get('permissive') as number, svidA, bundles);
    const res = await conn.request('/m');
    assert.equal(JSON.parse(res?.body ?? '{}').xfcc, `By=${ID_B};URI=${ID_A}`);
    conn.close();
  });

  it('STRICT refuses plaintext: no HTTP answer, the connection is closed', async () => {
    const plain = await connectPlain(proxy.ports.get('strict') as number);
    plain.socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    const res = await plain.readResponse();
    assert.equal(res, undefined);
    const text = await eventually(async () => {
      const t = await proxy.metrics.render();
      return /proxy_handshake_failures_total\{listener="strict",direction="inbound",reason="not_tls"\} [1-9]/.test(t)
        ? t
        : undefined;
    });
    assert.ok(text);
  });

  it('STRICT refuses a client without a certificate', async () => {
    const { connect } = await import('node:tls');
    const socket = connect({ host: '127.0.0.1', port: proxy.ports.get('strict') as number, rejectUnauthorized: false });
    const outcome = await new Promise<string>((resolve) => {
      socket.on('error', (e) => resolve(`error ${(e as Error & { code?: string }).code}`));
      socket.on('close', () => resolve('closed'));
      socket.on('secureConnect', () => socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n'));
      socket.on('data', () => resolve('answered'));
    });
    assert.notEqual(outcome, 'answered');
  });

  it('DISABLE passes plaintext through unauthenticated', async () => {
    const plain = await connectPlain(proxy.ports.get('disabled') as number);
    assert.equal((await plain.request('/d'))?.status, 200);
    plain.close();
  });
});

describe('proxy: trust domains and rotation', () => {
  const dir = tempDir();
  let echoApp: App;
  let proxy: RunningProxy;
  let federated: RunningProxy;
  let files: IdentityFiles;
  const svidB = ca.issueX509Svid(ID_B);

  before(async () => {
    echoApp = await startEchoApp();
    files = writeIdentity(dir, 'b', svidB, bundles);
    proxy = await proxyFrom(
      dir,
      'rot',
      `${identityYaml(files)}
inbound:
  - { name: echo, listen: "127.0.0.1:0", target: "127.0.0.1:${echoApp.port}", protocol: tcp, mode: STRICT }
audit: { output: none }
`,
    );
    // A proxy that trusts both trust domains (federation): the bundle file is a bundle map.
    const fedDir = tempDir();
    const fedFiles = writeIdentity(fedDir, 'b', svidB, bundles);
    writeFileSync(fedFiles.bundle, BundleSet.of(ca.x509Bundle(), otherCa.x509Bundle()).marshal());
    federated = await proxyFrom(
      fedDir,
      'fed',
      `${identityYaml(fedFiles)}
inbound:
  - { name: echo, listen: "127.0.0.1:0", target: "127.0.0.1:${echoApp.port}", protocol: tcp, mode: STRICT }
audit: { output: none }
`,
    );
  });

  after(async () => {
    await proxy?.close();
    await federated?.close();
    await echoApp?.close();
  });

  async function echoes(port: number, svid = ca.issueX509Svid(ID_A), trust = bundles): Promise<boolean> {
    let conn: Awaited<ReturnType<typeof connectMtls>>;
    try {
      conn = await connectMtls(port, svid, trust);
    } catch {
      return false;
    }
    conn.socket.write('x\n');
    const got = await conn.read((b) => (b.includes('\n') ? b.indexOf('\n') + 1 : undefined)).catch(() => undefined);
    conn.close();
    return got?.toString() === 'x\n';
  }

  it('refuses a client whose certificate chains to another trust domain’s CA (X-13)', async () => {
    const port = proxy.ports.get('echo') as number;
    assert.equal(await echoes(port), true, 'a client of our trust domain is served');
    // other.org is not trusted at all: OpenSSL refuses the chain.
    const foreign = otherCa.issueX509Svid('spiffe://other.org/ns/x/sa/y');
    assert.equal(await echoes(port, foreign, BundleSet.of(ca.x509Bundle(), otherCa.x509Bundle())), false);
  });

  it('refuses an example.org ID signed by the trusted other.org CA (a CA never vouches for another trust domain)', async () => {
    const port = federated.ports.get('echo') as number;
    assert.equal(await echoes(port, otherCa.issueX509Svid('spiffe://other.org/ns/x/sa/y')), true, 'federated IDs work');
    const forged = otherCa.issueX509SvidRaw(ID_A);
    const { X509Svid } = await import('@steeple/spiffe');
    const svid = X509Svid.fromCertificates(forged.certificates, forged.privateKey);
    assert.equal(await echoes(port, svid), false);
  });

  it('an SVID rotation keeps an open connection and new connections get the new certificate', async () => {
    const port = proxy.ports.get('echo') as number;
    const longLived = await connectMtls(port, ca.issueX509Svid(ID_A), bundles);
    const serialBefore = (longLived.socket as tls.TLSSocket).getPeerCertificate().serialNumber;
    longLived.socket.write('1\n');
    assert.equal((await longLived.read((b) => (b.includes('\n') ? 2 : undefined)))?.toString(), '1\n');

    // A half-written file (garbage) keeps the last good identity…
    writeFileSync(files.cert, '-----BEGIN CERTIFICATE-----\nnot base64\n');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(await echoes(port), true);

    // …and the new SVID applies to new connections as soon as it is on disk.
    const next = ca.issueX509Svid(ID_B);
    rewriteIdentity(files, next, bundles);
    const serialAfter = await eventually(async () => {
      const c = await connectMtls(port, ca.issueX509Svid(ID_A), bundles);
      const serial = (c.socket as tls.TLSSocket).getPeerCertificate().serialNumber;
      c.close();
      return serial !== serialBefore ? serial : undefined;
    });
    assert.equal(serialAfter.toLowerCase(), next.leaf.serialNumber.toLowerCase());

    longLived.socket.write('2\n');
    assert.equal((await longLived.read((b) => (b.includes('\n') ? 2 : undefined)))?.toString(), '2\n', 'still open');
    longLived.close();
  });
});

describe('proxy: TLS session resumption', () => {
  const dir = tempDir();
  const audit = join(dir, 'audit.log');
  let httpApp: App;
  let proxy: RunningProxy;
  let files: IdentityFiles;
  const svidB = ca.issueX509Svid(ID_B);

  before(async () => {
    httpApp = await startHttpApp();
    files = writeIdentity(dir, 'b', svidB, bundles);
    const policy = join(dir, 'policy.yaml');
    writeFileSync(
      policy,
      `policies:
  - name: frontend-only
    action: ALLOW
    rules:
      - from: [{ source: { principals: ["${ID_A}"] } }]
`,
    );
    proxy = await proxyFrom(
      dir,
      'resume',
      `${identityYaml(files)}
inbound:
  - { name: web, listen: "127.0.0.1:0", target: "127.0.0.1:${httpApp.port}", protocol: http, mode: STRICT, session_resumption: true }
  - { name: web-full, listen: "127.0.0.1:0", target: "127.0.0.1:${httpApp.port}", protocol: http, mode: STRICT }
policy: { file: ${policy} }
audit: { output: file, path: ${audit}, flush_interval_ms: 5 }
`,
    );
  });

  after(async () => {
    await proxy?.close();
    await httpApp?.close();
  });

  /** An mTLS connection offering `session`; with the session the proxy hands out for next time. */
  async function open(port: number, svid = ca.issueX509Svid(ID_A), session?: Buffer) {
    const socket = tls.connect({
      ...mtlsClientOptions({ svid, bundles, authorize: authorizeId(ID_B) }),
      host: '127.0.0.1',
      port,
      session,
    });
    let next: Buffer | undefined;
    socket.on('session', (s: Buffer) => {
      next = s;
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', () => resolve());
      socket.once('error', reject);
    });
    const reused = socket.isSessionReused();
    const localPort = socket.localPort;
    const conn = new Conn(socket);
    const res = await conn.request('/orders');
    // A TLS 1.3 ticket comes after the handshake; wait a moment for it when none came yet.
    if (!reused) await eventually(() => next, 1000).catch(() => undefined);
    conn.close();
    return { res, reused, session: next, port: localPort };
  }

  it('a caller resumes its session: served as the same verified ID, audited as resumed', async () => {
    const port = proxy.ports.get('web') as number;
    const svid = ca.issueX509Svid(ID_A);
    const first = await open(port, svid);
    assert.equal(first.res?.status, 200);
    assert.equal(first.reused, false);
    assert.ok(first.session, 'the proxy issued a session ticket');
    const second = await open(port, svid, first.session);
    assert.equal(second.reused, true);
    assert.equal(second.res?.status, 200);
    assert.equal(JSON.parse(second.res?.body ?? '{}').xfcc, `By=${ID_B};URI=${ID_A}`);
    const records = await eventually(() => {
      const all = readAudit(audit).filter((r) => r['type'] === 'request' && r['source_id'] === ID_A);
      return all.length >= 2 ? all : undefined;
    });
    const resumed = records.find((r) => r['peer_address'] === `127.0.0.1:${second.port}`);
    assert.equal(resumed?.['tls_resumed'], true);
    const full = records.find((r) => r['peer_address'] === `127.0.0.1:${first.port}`);
    assert.equal(full?.['tls_resumed'], undefined, 'a full handshake is not marked');
  });

  it('policy still decides every request on a resumed session', async () => {
    const port = proxy.ports.get('web') as number;
    const intruder = ca.issueX509Svid(ID_C);
    const first = await open(port, intruder);
    assert.equal(first.res?.status, 403);
    const second = await open(port, intruder, first.session);
    assert.equal(second.reused, true);
    assert.equal(second.res?.status, 403);
  });

  it('after the proxy gets a new bundle, an old session is not resumed (full handshake against it)', async () => {
    const port = proxy.ports.get('web') as number;
    const svid = ca.issueX509Svid(ID_A);
    const first = await open(port, svid);
    // other.org joins the bundles (a bundle map in the bundle file, as with federation)
    writeFileSync(files.bundle, BundleSet.of(ca.x509Bundle(), otherCa.x509Bundle()).marshal());
    const second = await eventually(async () => {
      const r = await open(port, svid, first.session);
      return r.reused ? undefined : r;
    });
    assert.equal(second.res?.status, 200);
    const third = await open(port, svid, second.session);
    assert.equal(third.reused, true, 'resumption works again under the new bundles');
  });

  it('without session_resumption (the default) every connection is a full handshake', async () => {
    const port = proxy.ports.get('web-full') as number;
    const svid = ca.issueX509Svid(ID_A);
    const first = await open(port, svid);
    const second = await open(port, svid, first.session);
    assert.equal(second.res?.status, 200);
    assert.equal(second.reused, false);
  });
});

describe('proxy: identity from the Workload API', () => {
  it('serves with the SVID the Workload API streams, and rotates when it pushes a new one', async () => {
    const first = ca.issueX509Svid(ID_B);
    const api = await startFakeWorkloadApi({ svids: [first], bundles });
    const echoApp = await startEchoApp();
    const dir = tempDir();
    const proxy = await proxyFrom(
      dir,
      'wl',
      `identity: { workload_api: { socket_path: ${api.address} } }
inbound:
  - { name: echo, listen: "127.0.0.1:0", target: "127.0.0.1:${echoApp.port}", protocol: tcp }
audit: { output: none }
`,
    );
    try {
      const port = proxy.ports.get('echo') as number;
      const open = await connectMtls(port, ca.issueX509Svid(ID_A), bundles, authorizeId(ID_B));
      assert.equal(
        (open.socket as tls.TLSSocket).getPeerCertificate().serialNumber.toLowerCase(),
        first.leaf.serialNumber.toLowerCase(),
      );
      const next = ca.issueX509Svid(ID_B);
      api.setX509Svids([next], bundles);
      await eventually(async () => {
        const c = await connectMtls(port, ca.issueX509Svid(ID_A), bundles, authorizeId(ID_B));
        const serial = (c.socket as tls.TLSSocket).getPeerCertificate().serialNumber.toLowerCase();
        c.close();
        return serial === next.leaf.serialNumber.toLowerCase() ? serial : undefined;
      });
      open.socket.write('still\n');
      const got = await open.read((b) => (b.includes('\n') ? b.indexOf('\n') + 1 : undefined));
      assert.equal(got?.toString(), 'still\n', 'the connection opened before the rotation keeps working');
      open.close();
    } finally {
      await proxy.close();
      await api.close();
      await echoApp.close();
    }
  });
});

describe('proxy: HTTP/2 callers', () => {
  it('authorizes and forwards h2 streams to an HTTP/1.1 app and to an h2c app', async () => {
    const http2 = await import('node:http2');
    const { mtlsClientOptions } = await import('@steeple/spiffe');
    const app1 = await startHttpApp();
    const app2 = http2.createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ xfcc: req.headers['x-forwarded-client-cert'] ?? null, version: req.httpVersion }));
    });
    await new Promise<void>((r) => app2.listen(0, '127.0.0.1', r));
    const dir = tempDir();
    const policy = join(dir, 'policy.yaml');
    writeFileSync(
      policy,
      'policies:\n  - name: no-admin\n    action: DENY\n    rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }]\n',
    );
    const proxy = await proxyFrom(
      dir,
      'h2',
      `${identityYaml(writeIdentity(dir, 'b', ca.issueX509Svid(ID_B), bundles))}
inbound:
  - { name: h1app, listen: "127.0.0.1:0", target: "127.0.0.1:${app1.port}", protocol: http }
  - { name: h2app, listen: "127.0.0.1:0", target: "127.0.0.1:${(app2.address() as { port: number }).port}", protocol: http, app_protocol: h2c }
policy: { file: ${policy} }
audit: { output: none }
`,
    );
    const get = (port: number, path: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const session = http2.connect(`https://127.0.0.1:${port}`, {
          ...mtlsClientOptions({ svid: ca.issueX509Svid(ID_A), bundles, authorize: authorizeId(ID_B) }),
        });
        session.on('error', reject);
        const req = session.request({ ':path': path, 'x-forwarded-client-cert': 'forged' });
        let body = '';
        let status = 0;
        req.on('response', (h) => {
          status = Number(h[':status']);
        });
        req.on('data', (d) => {
          body += d;
        });
        req.on('end', () => {
          session.close();
          resolve({ status, body });
        });
        req.on('error', reject);
        req.end();
      });
    try {
      const viaH1 = await get(proxy.ports.get('h1app') as number, '/x/../h2');
      assert.equal(viaH1.status, 200);
      const seen = JSON.parse(viaH1.body);
      assert.equal(seen.xfcc, `By=${ID_B};URI=${ID_A}`);
      assert.equal(seen.url, '/h2');
      const viaH2c = await get(proxy.ports.get('h2app') as number, '/grpc.Service/Method');
      assert.equal(viaH2c.status, 200);
      assert.deepEqual(JSON.parse(viaH2c.body), { xfcc: `By=${ID_B};URI=${ID_A}`, version: '2.0' });
      const denied = await get(proxy.ports.get('h2app') as number, '/admin');
      assert.equal(denied.status, 403);
    } finally {
      await proxy.close();
      await app1.close();
      app2.close();
    }
  });

  it('negotiates ALPN on HTTP listeners: h2 first, then http/1.1, none without the extension; an unknown list is refused', async () => {
    const tlsModule = await import('node:tls');
    const { mtlsClientOptions } = await import('@steeple/spiffe');
    const app = await startHttpApp();
    const dir = tempDir();
    const proxy = await proxyFrom(
      dir,
      'alpn',
      `${identityYaml(writeIdentity(dir, 'b', ca.issueX509Svid(ID_B), bundles))}
inbound:
  - { name: web, listen: "127.0.0.1:0", target: "127.0.0.1:${app.port}", protocol: http }
audit: { output: none }
`,
    );
    const port = proxy.ports.get('web') as number;
    const negotiate = (protocols: string[] | undefined) =>
      new Promise<string | false | Error>((resolve) => {
        const socket = tlsModule.connect({
          host: '127.0.0.1',
          port,
          ...mtlsClientOptions({ svid: ca.issueX509Svid(ID_A), bundles, authorize: authorizeId(ID_B) }),
          ...(protocols === undefined ? {} : { ALPNProtocols: protocols }),
        });
        socket.once('secureConnect', () => {
          resolve(socket.alpnProtocol ?? false);
          socket.destroy();
        });
        socket.once('error', resolve);
      });
    try {
      assert.equal(await negotiate(['http/1.1', 'h2']), 'h2');
      assert.equal(await negotiate(['http/1.1']), 'http/1.1');
      assert.equal(await negotiate(undefined), false);
      const refused = await negotiate(['spdy/3']);
      assert.ok(refused instanceof Error, `refused, got ${String(refused)}`);
      assert.match(refused.message, /no application protocol/i);
    } finally {
      await proxy.close();
      await app.close();
    }
  });
});

describe('proxy: interoperability (curl, openssl s_client, nginx)', () => {
  // The proxy runs in this process: the clients must run asynchronously, or they would wait for it forever.
  const { spawnSync } = require_child();
  const runClient = (cmd: string, args: string[], input?: string) =>
    new Promise<string>((resolve, reject) => {
      const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => {
        out += d;
      });
      child.stderr.on('data', (d) => {
        err += d;
      });
      const timer = setTimeout(() => child.kill(), 10_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        if (code === 0 || out !== '') resolve(out);
        else reject(new Error(`${cmd} exited ${code}: ${err}`));
      });
      child.stdin.end(input ?? '');
    });
  const dir = tempDir();
  const serverSvid = ca.issueX509Svid(ID_B, { dnsNames: ['localhost'] });
  const clientSvid = ca.issueX509Svid(ID_A);
  const client = writeIdentity(dir, 'client', clientSvid, bundles);
  let app: App;
  let proxy: RunningProxy;
  const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

  before(async () => {
    app = await startHttpApp();
    proxy = await proxyFrom(
      dir,
      'interop',
      `${identityYaml(writeIdentity(dir, 'server', serverSvid, bundles))}
inbound:
  - { name: web, listen: "127.0.0.1:0", target: "127.0.0.1:${app.port}", protocol: http }
audit: { output: none }
`,
    );
  });

  after(async () => {
    await proxy?.close();
    await app?.close();
  });

  it('curl with a client certificate reaches an inbound listener', {
    skip: !has('curl') && 'curl is not installed',
  }, async () => {
    const port = proxy.ports.get('web') as number;
    const out = await runClient('curl', [
      '-sS',
      '--cert',
      client.cert,
      '--key',
      client.key,
      '--cacert',
      client.bundle,
      '--resolve',
      `localhost:${port}:127.0.0.1`,
      `https://localhost:${port}/from-curl`,
    ]);
    assert.equal(JSON.parse(out).xfcc, `By=${ID_B};URI=${ID_A}`);
  });

  it('openssl s_client with a client certificate reaches an inbound listener', {
    skip: !has('openssl') && 'openssl is not installed',
  }, async () => {
    const port = proxy.ports.get('web') as number;
    const text = await runClient(
      'openssl',
      [
        's_client',
        '-connect',
        `127.0.0.1:${port}`,
        '-cert',
        client.cert,
        '-key',
        client.key,
        '-CAfile',
        client.bundle,
        '-verify_return_error',
        '-quiet',
      ],
      'GET /from-openssl HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n',
    );
    assert.match(text, /^HTTP\/1.1 200 OK/);
    assert.match(text, new RegExp(`"xfcc":"By=${ID_B};URI=${ID_A}"`));
  });

  it('an outbound listener reaches nginx configured for mTLS (ssl_verify_client on)', {
    skip: !has('nginx') && 'nginx is not installed',
  }, async () => {
    const server = writeIdentity(dir, 'nginx', ca.issueX509Svid(ID_B), bundles);
    const { createServer } = await import('node:net');
    const nginxPort = await new Promise<number>((r) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => r(p));
      });
    });
    const conf = join(dir, 'nginx.conf');
    writeFileSync(
      conf,
      `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  server {
    listen 127.0.0.1:${nginxPort} ssl;
    ssl_certificate ${server.cert};
    ssl_certificate_key ${server.key};
    ssl_client_certificate ${server.bundle};
    ssl_verify_client on;
    location / { return 200 "verify=$ssl_client_verify path=$uri\n"; }
  }
}
`,
    );
    const nginx = spawn('nginx', ['-c', conf, '-e', join(dir, 'nginx-error.log')], { stdio: 'ignore' });
    const outbound = await proxyFrom(
      dir,
      'to-nginx',
      `${identityYaml(client)}
outbound:
  - { name: to-nginx, listen: "127.0.0.1:0", upstream: "127.0.0.1:${nginxPort}", protocol: http, upstream_id: "${ID_B}" }
audit: { output: none }
`,
    );
    try {
      const res = await eventually(async () => {
        const conn = await connectPlain(outbound.ports.get('to-nginx') as number);
        const r = await conn.request('/through-steeple').catch(() => undefined);
        conn.close();
        return r?.status === 200 ? r : undefined;
      }, 10_000);
      assert.equal(res.body, 'verify=SUCCESS path=/through-steeple\n');
    } finally {
      await outbound.close();
      nginx.kill('SIGQUIT');
      await new Promise((r) => nginx.on('close', r));
    }
  });
});

describe('proxy: as a process through the CLI', () => {
  const root = resolve(import.meta.dirname, '../../..');
  const script = resolve(import.meta.dirname, 'support/proxy-main.ts');
  const run = (args: string[]) =>
    spawn(process.execPath, ['--conditions=steeple-source', '--import', 'tsx', script, ...args], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });

  it('proxy check names the broken field and exits 1; a good file passes', async () => {
    const dir = tempDir();
    const files = writeIdentity(dir, 'b', ca.issueX509Svid(ID_B), bundles);
    writeFileSync(
      join(dir, 'policy.yaml'),
      'policies:\n  - name: p\n    action: ALLOW\n    rules:\n      - from: [{ source: { princippals: [x] } }]\n',
    );
    writeFileSync(
      join(dir, 'proxy.yaml'),
      `${identityYaml(files)}inbound:\n  - { name: web, listen: "127.0.0.1:0", target: "127.0.0.1:1", mode: STRICTER }\npolicy: { file: policy.yaml }\n`,
    );
    const bad = run(['proxy', 'check', '-config', join(dir, 'proxy.yaml')]);
    let err = '';
    bad.stderr.on('data', (d) => {
      err += d;
    });
    const code = await new Promise<number | null>((r) => bad.on('close', r));
    assert.equal(code, 1);
    assert.match(err, /inbound\[0\]\.mode: "STRICTER" is not one of "STRICT", "PERMISSIVE", "DISABLE"/);

    writeFileSync(
      join(dir, 'proxy.yaml'),
      `${identityYaml(files)}inbound:\n  - { name: web, listen: "127.0.0.1:0", target: "127.0.0.1:1" }\npolicy: { file: policy.yaml }\n`,
    );
    const badPolicy = run(['proxy', 'check', '-config', join(dir, 'proxy.yaml')]);
    err = '';
    badPolicy.stderr.on('data', (d) => {
      err += d;
    });
    assert.equal(await new Promise((r) => badPolicy.on('close', r)), 1);
    assert.match(
      err,
      /policies\[0\]\.rules\[0\]\.from\[0\]\.source\.princippals: unknown key \(did you mean "principals"\?\)/,
    );

    writeFileSync(join(dir, 'policy.yaml'), 'policies: []\n');
    const good = run(['proxy', 'check', '-config', join(dir, 'proxy.yaml')]);
    let out = '';
    good.stdout.on('data', (d) => {
      out += d;
    });
    assert.equal(await new Promise((r) => good.on('close', r)), 0);
    assert.match(out, /configuration OK/);
  });

  it('proxy run serves mTLS, answers /ready and stops on SIGTERM', async () => {
    const dir = tempDir();
    const app = await startHttpApp();
    const files = writeIdentity(dir, 'b', ca.issueX509Svid(ID_B), bundles);
    const { createServer } = await import('node:net');
    const freePort = () =>
      new Promise<number>((r) => {
        const s = createServer().listen(0, '127.0.0.1', () => {
          const p = (s.address() as { port: number }).port;
          s.close(() => r(p));
        });
      });
    const port = await freePort();
    const healthPort = await freePort();
    writeFileSync(
      join(dir, 'proxy.yaml'),
      `${identityYaml(files)}inbound:\n  - { name: web, listen: "127.0.0.1:${port}", target: "127.0.0.1:${app.port}", protocol: http }
health_checks: { listener_enabled: true, bind_address: 127.0.0.1, bind_port: ${healthPort} }
audit: { output: stdout, flush_interval_ms: 5 }
log_level: warn
`,
    );
    const child = run(['proxy', 'run', '-config', join(dir, 'proxy.yaml')]);
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    try {
      const ready = await eventually(
        () =>
          new Promise<number | undefined>((r) => {
            http
              .get(`http://127.0.0.1:${healthPort}/ready`, (res) => {
                res.resume();
                r(res.statusCode);
              })
              .on('error', () => r(undefined));
          }),
        20_000,
      );
      assert.equal(ready, 200);
      const conn = await connectMtls(port, ca.issueX509Svid(ID_A), bundles, authorizeId(ID_B));
      const res = await conn.request('/hello');
      assert.equal(JSON.parse(res?.body ?? '{}').xfcc, `By=${ID_B};URI=${ID_A}`);
      conn.close();
      const line = await eventually(() => out.split('\n').find((l) => l.includes('"/hello"')));
      const record = JSON.parse(line);
      assert.equal(record.source_id, ID_A);
      assert.equal(record.decision, 'allow');
      assert.equal(record.status, 200);
    } finally {
      child.kill('SIGTERM');
      const code = await new Promise((r) => child.on('close', r));
      assert.equal(code, 0);
      await app.close();
    }
  });

  it('proxy run exits 1 naming audit.path when the audit log cannot be opened (nothing left running)', async () => {
    const dir = tempDir();
    const files = writeIdentity(dir, 'b', ca.issueX509Svid(ID_B), bundles);
    writeFileSync(join(dir, 'policy.yaml'), 'policies: []\n');
    writeFileSync(
      join(dir, 'proxy.yaml'),
      `${identityYaml(files)}inbound:\n  - { name: web, listen: "127.0.0.1:0", target: "127.0.0.1:1", protocol: http }
policy: { file: policy.yaml }
audit: { output: file, path: ${join(dir, 'no-such-dir', 'audit.log')} }
`,
    );
    const child = run(['proxy', 'run', '-config', join(dir, 'proxy.yaml')]);
    let err = '';
    child.stderr.on('data', (d) => {
      err += d;
    });
    const code = await new Promise<number | null>((r) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        r(null);
      }, 30_000);
      child.on('close', (c) => {
        clearTimeout(timer);
        r(c);
      });
    });
    assert.equal(code, 1, `the proxy exits by itself with 1 (stderr: ${err})`);
    assert.match(err, /audit\.path: cannot open the audit log ".*no-such-dir\/audit\.log": ENOENT/);
  });
});
