import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { SpiffeBundle, SpiffeId, TrustDomain } from '@steeple/spiffe';
import { createTestCa, ManualClock } from '@steeple/spiffe/testing';
import { ConfigError } from '../../common/errors.js';
import { createMetrics } from '../../common/metrics.js';
import { startBundleEndpointServer, tlsMaterialFromSvidSource } from './bundle-endpoint-server.js';
import { bundleOf, pemOf, tempDir, writeTemp } from './federation-test-support.js';

const td = TrustDomain.parse('cluster-b.test');
const serverId = SpiffeId.fromPath(td, '/spire/server');

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  peerCert: X509Certificate | undefined;
}

/** A plain HTTPS request with no client certificate and no server verification (the test inspects it). */
function request(url: string, method = 'GET', options: https.RequestOptions = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, rejectUnauthorized: false, agent: false, ...options }, (res) => {
      const socket = res.socket as tls.TLSSocket;
      const raw = socket.getPeerCertificate().raw;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
          peerCert: raw ? new X509Certificate(raw) : undefined,
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

describe('bundle endpoint server (https_spiffe)', () => {
  const clock = new ManualClock(new Date());
  const ca = createTestCa({ trustDomain: td, clock });
  let svid = ca.issueX509Svid(serverId);
  let bundle = bundleOf(ca, 18_446_744_073_709_551_615n);
  const metrics = createMetrics();
  let endpoint: Awaited<ReturnType<typeof startBundleEndpointServer>>;

  before(async () => {
    endpoint = await startBundleEndpointServer({
      host: '127.0.0.1',
      port: 0,
      refreshHintSeconds: 42,
      bundle: () => bundle,
      tls: { profile: 'https_spiffe', svid: tlsMaterialFromSvidSource({ current: () => svid }) },
      clock,
      metrics,
    });
  });
  after(() => endpoint.close());

  it('answers GET on any path with the latest bundle as JSON, with its exact sequence and the configured refresh hint (F-3, B-3, B-4)', async () => {
    for (const path of ['/', '/bundle.json', '/some/where?x=1']) {
      const res = await request(new URL(path, endpoint.url).toString());
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-type'], 'application/json');
      assert.match(res.body, /"spiffe_sequence":18446744073709551615/, 'the 64-bit sequence is exact on the wire');
      const served = SpiffeBundle.parse(td, res.body);
      assert.equal(served.sequenceNumber, 18_446_744_073_709_551_615n);
      assert.equal(served.refreshHintSeconds, 42);
      assert.ok(served.x509Bundle().equals(bundle.x509Bundle()));
    }
    bundle = bundleOf(ca, 7n, 999);
    const later = SpiffeBundle.parse(td, (await request(endpoint.url)).body);
    assert.equal(later.sequenceNumber, 7n, 'each request gets the bundle current at that moment');
    assert.equal(later.refreshHintSeconds, 42, 'the configured refresh hint replaces the bundle own one');
    assert.match(await metrics.render(), /steeple_federation_bundle_endpoint_requests_total\{code="200"\} [1-9]/);
  });

  it('answers every other method with 405 and Allow: GET (F-3)', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'HEAD']) {
      const res = await request(endpoint.url, method);
      assert.equal(res.status, 405, method);
      assert.equal(res.headers.allow, 'GET');
    }
  });

  it('presents the server SVID and asks for no client certificate (F-3, F-5)', async () => {
    const socket = tls.connect({ host: '127.0.0.1', port: endpoint.port, rejectUnauthorized: false });
    await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    const presented = new X509Certificate(socket.getPeerCertificate().raw);
    assert.ok(presented.raw.equals(svid.leaf.raw));
    socket.destroy();
    // openssl prints "Requested Signature Algorithms" only when the server sends a CertificateRequest.
    const out = await new Promise<string>((resolve) => {
      const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${endpoint.port}`, '-brief'], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let text = '';
      p.stdout.on('data', (d: Buffer) => {
        text += d.toString();
      });
      p.stderr.on('data', (d: Buffer) => {
        text += d.toString();
      });
      p.stdin.end();
      p.on('close', () => resolve(text));
    });
    assert.match(out, /CONNECTION ESTABLISHED/);
    assert.doesNotMatch(out, /Requested Signature Algorithms/, 'no CertificateRequest: no client authentication');
  });

  it('gives new connections the renewed SVID without a restart', async () => {
    const before = await request(endpoint.url);
    svid = ca.issueX509Svid(serverId);
    const afterRenewal = await request(endpoint.url);
    assert.ok(before.peerCert && afterRenewal.peerCert);
    assert.notEqual(before.peerCert.serialNumber, afterRenewal.peerCert.serialNumber);
    assert.ok(afterRenewal.peerCert.raw.equals(svid.leaf.raw));
  });

  it('refuses TLS below 1.2 (F-2)', async () => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port: endpoint.port,
      rejectUnauthorized: false,
      maxVersion: 'TLSv1.1',
      minVersion: 'TLSv1',
    });
    await assert.rejects(
      new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject)),
      /protocol|version|alert/i,
    );
    socket.destroy();
  });
});

describe('bundle endpoint server options', () => {
  const ca = createTestCa({ trustDomain: td });
  const svid = ca.issueX509Svid(serverId);
  const tlsSource = tlsMaterialFromSvidSource({ current: () => svid });

  it('serves only the configured path when one is set (404 elsewhere)', async () => {
    const endpoint = await startBundleEndpointServer({
      host: '127.0.0.1',
      port: 0,
      path: '/bundle.json',
      refreshHintSeconds: 300,
      bundle: () => bundleOf(ca, 1n),
      tls: { profile: 'https_spiffe', svid: tlsSource },
    });
    try {
      assert.equal(endpoint.url.endsWith('/bundle.json'), true);
      assert.equal((await request(endpoint.url)).status, 200);
      assert.equal((await request(new URL('/other', endpoint.url).toString())).status, 404);
    } finally {
      await endpoint.close();
    }
  });

  it('answers 503 while the bundle is not available, and recovers', async () => {
    let ready = false;
    const endpoint = await startBundleEndpointServer({
      host: '127.0.0.1',
      port: 0,
      refreshHintSeconds: 300,
      bundle: async () => {
        if (!ready) throw new Error('CA not started');
        return bundleOf(ca, 1n);
      },
      tls: { profile: 'https_spiffe', svid: tlsSource },
    });
    try {
      assert.equal((await request(endpoint.url)).status, 503);
      ready = true;
      assert.equal((await request(endpoint.url)).status, 200);
    } finally {
      await endpoint.close();
    }
  });
});

describe('bundle endpoint server (https_web)', () => {
  const webCa = createTestCa({ trustDomain: 'web-ca.test' });
  const webCert = (dns: string) => pemOf(webCa.issueX509Svid('spiffe://web-ca.test/endpoint', { dnsNames: [dns] }));
  const bundleCa = createTestCa({ trustDomain: td });
  let dir: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    dir = await tempDir();
  });
  after(() => dir.remove());

  it('serves the configured certificate and loads a renewed one from disk without a restart', async () => {
    const first = webCert('localhost');
    const certFile = await writeTemp(dir.path, 'web.crt', first.cert);
    const keyFile = await writeTemp(dir.path, 'web.key', first.key);
    const clock = new ManualClock(new Date());
    const endpoint = await startBundleEndpointServer({
      host: '127.0.0.1',
      port: 0,
      refreshHintSeconds: 300,
      bundle: () => bundleOf(bundleCa, 3n),
      tls: { profile: 'https_web', certFile, keyFile, fileSyncIntervalMs: 60_000 },
      clock,
    });
    try {
      const a = await request(endpoint.url);
      assert.equal(a.status, 200);
      assert.equal(a.peerCert?.toString(), new X509Certificate(first.cert).toString());
      assert.equal(await endpoint.reloadCertificate(), false, 'unchanged files are not reloaded');

      const second = webCert('localhost');
      await writeTemp(dir.path, 'web.crt', second.cert);
      await writeTemp(dir.path, 'web.key', second.key);
      assert.equal(await endpoint.reloadCertificate(), true);
      const b = await request(endpoint.url);
      assert.equal(b.peerCert?.toString(), new X509Certificate(second.cert).toString());

      // A half-written renewal (new certificate, old key) is refused; the loaded pair stays.
      const third = webCert('localhost');
      await writeTemp(dir.path, 'web.crt', third.cert);
      await assert.rejects(endpoint.reloadCertificate(), (e: unknown) => e instanceof ConfigError);
      clock.advance(60_000); // the periodic check logs and keeps serving
      const c = await request(endpoint.url);
      assert.equal(c.peerCert?.toString(), new X509Certificate(second.cert).toString());
    } finally {
      await endpoint.close();
    }
  });

  it('refuses to start with unreadable or mismatched files, naming the key (ConfigError)', async () => {
    const pair = webCert('localhost');
    const other = webCert('localhost');
    const certFile = await writeTemp(dir.path, 'a.crt', pair.cert);
    const keyFile = await writeTemp(dir.path, 'b.key', other.key);
    const start = (c: string, k: string) =>
      startBundleEndpointServer({
        host: '127.0.0.1',
        port: 0,
        refreshHintSeconds: 300,
        bundle: () => bundleOf(bundleCa, 1n),
        tls: { profile: 'https_web', certFile: c, keyFile: k },
      });
    await assert.rejects(start(`${dir.path}/missing.crt`, keyFile), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /cert_file_path: cannot read .*missing\.crt/);
      return true;
    });
    await assert.rejects(start(certFile, keyFile), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /not a usable certificate and private key pair/);
      return true;
    });
  });
});
