import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SpiffeBundle, SpiffeId, TrustDomain, X509Bundle } from '@steeple/spiffe';
import { createTestCa, ManualClock } from '@steeple/spiffe/testing';
import { type EndpointAuthentication, type FetchBundleOptions, fetchBundle } from './bundle-endpoint-client.js';
import { FederationError, type FederationErrorCode, type FederationFailureReason } from './federation-error.js';
import { bundleOf, pemOf, startRawEndpoint, startTestPeer, type TestPeer } from './federation-test-support.js';

const clock = new ManualClock(new Date());
const tdB = TrustDomain.parse('cluster-b.test');

function spiffe(peer: TestPeer, bundle: X509Bundle = peer.ca.x509Bundle()): EndpointAuthentication {
  return { profile: 'https_spiffe', endpointSpiffeId: peer.serverId, endpointBundle: bundle };
}

async function refused(
  options: FetchBundleOptions,
  code: FederationErrorCode,
  reason: FederationFailureReason,
  message?: RegExp,
): Promise<FederationError> {
  let caught: unknown;
  try {
    await fetchBundle({ clock, ...options });
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof FederationError, `expected a FederationError, got ${String(caught)}`);
  assert.equal(caught.reason, reason, caught.message);
  assert.equal(caught.code, code, caught.message);
  if (message) assert.match(caught.message, message);
  return caught;
}

describe('fetchBundle: https_spiffe (F-5)', () => {
  let peer: TestPeer;
  before(async () => {
    peer = await startTestPeer('cluster-b.test', { clock, refreshHintSeconds: 120 });
  });
  after(() => peer.close());

  it('fetches the bundle of the trust domain from an endpoint whose SVID verifies against its bundle', async () => {
    const got = await fetchBundle({ url: peer.url, trustDomain: tdB, authentication: spiffe(peer), clock });
    assert.ok(got.bundle.x509Bundle().equals(peer.ca.x509Bundle()));
    assert.equal(got.bundle.sequenceNumber, 1n);
    assert.equal(got.bundle.refreshHintSeconds, 120);
    assert.equal(got.endpointId?.toString(), 'spiffe://cluster-b.test/spire/server');
    assert.equal(got.url, peer.url);
    assert.deepEqual(got.redirects, []);
    assert.ok(got.bytes > 0);
  });

  it('refuses an endpoint whose SVID carries another SPIFFE ID than the configured one', async () => {
    await refused(
      {
        url: peer.url,
        trustDomain: tdB,
        authentication: {
          profile: 'https_spiffe',
          endpointSpiffeId: SpiffeId.parse('spiffe://cluster-b.test/bundle-server'),
          endpointBundle: peer.ca.x509Bundle(),
        },
      },
      'ERR_FEDERATION_ENDPOINT_UNTRUSTED',
      'wrong-endpoint-id',
      /presented the SVID of spiffe:\/\/cluster-b\.test\/spire\/server, not the configured endpoint SPIFFE ID spiffe:\/\/cluster-b\.test\/bundle-server/,
    );
  });

  it("refuses an endpoint certificate signed by another trust domain's CA, and sends it nothing", async () => {
    const impostorCa = createTestCa({ trustDomain: 'evil.test', clock });
    // Claims the right ID, but its CA is not in cluster-b.test's bundle.
    const forged = createTestCa({ trustDomain: tdB, clock }).issueX509Svid(peer.serverId);
    for (const svid of [forged, impostorCa.issueX509Svid('spiffe://evil.test/spire/server')]) {
      const raw = await startRawEndpoint(pemOf(svid), (_req, res) => res.end(peer.bundle.marshal()));
      try {
        const err = await refused(
          { url: raw.url, trustDomain: tdB, authentication: spiffe(peer) },
          'ERR_FEDERATION_ENDPOINT_UNTRUSTED',
          'endpoint-svid-invalid',
          /not a valid X\.509-SVID of trust domain "cluster-b\.test"/,
        );
        assert.ok(err.cause instanceof Error);
        assert.equal(raw.requests(), 0, 'the GET is written only after the endpoint is authenticated');
      } finally {
        await raw.close();
      }
    }
  });

  it('refuses to connect without a bundle to authenticate the endpoint with', async () => {
    await refused(
      {
        url: peer.url,
        trustDomain: tdB,
        authentication: { profile: 'https_spiffe', endpointSpiffeId: peer.serverId, endpointBundle: undefined },
      },
      'ERR_FEDERATION_ENDPOINT_UNTRUSTED',
      'no-endpoint-bundle',
      /no bundle of trust domain "cluster-b\.test" is known/,
    );
  });

  it("refuses a self-serving endpoint that serves another trust domain's bundle (F-8)", async () => {
    const otherTd = createTestCa({ trustDomain: 'cluster-c.test', clock });
    const raw = await startRawEndpoint(pemOf(peer.svid), (_req, res) =>
      // cluster-c.test's CA, relabelled: the document does not name its trust domain (B-1).
      res.end(SpiffeBundle.fromBundles({ x509: X509Bundle.fromAuthorities(tdB, [otherTd.certificate]) }).marshal()),
    );
    try {
      await refused(
        { url: raw.url, trustDomain: tdB, authentication: spiffe(peer) },
        'ERR_FEDERATION_BUNDLE_REFUSED',
        'other-trust-domain',
        // The CA names cluster-c.test in its URI SAN, which is caught first.
        /names trust domain "cluster-c\.test".*never merged \(F-8\)/,
      );
    } finally {
      await raw.close();
    }
    // Without a telling URI SAN, the endpoint's own SVID gives it away: it does not chain to what is served.
    const anonymous = createTestCa({ trustDomain: tdB, clock });
    const raw2 = await startRawEndpoint(pemOf(peer.svid), (_req, res) => res.end(bundleOf(anonymous, 9n).marshal()));
    try {
      await refused(
        { url: raw2.url, trustDomain: tdB, authentication: spiffe(peer) },
        'ERR_FEDERATION_BUNDLE_REFUSED',
        'other-trust-domain',
        /own SVID spiffe:\/\/cluster-b\.test\/spire\/server does not verify against the bundle it serves/,
      );
    } finally {
      await raw2.close();
    }
  });

  it('authenticates a non-self-serving endpoint with the bundle of its own trust domain', async () => {
    // cluster-b.test serves cluster-d.test's bundle (F-5, figure 4 of the spec).
    const dCa = createTestCa({ trustDomain: 'cluster-d.test', clock });
    const raw = await startRawEndpoint(pemOf(peer.svid), (_req, res) => res.end(bundleOf(dCa, 4n).marshal()));
    try {
      const got = await fetchBundle({
        url: raw.url,
        trustDomain: TrustDomain.parse('cluster-d.test'),
        authentication: spiffe(peer),
        clock,
      });
      assert.equal(got.bundle.trustDomain.name, 'cluster-d.test');
      assert.ok(got.bundle.x509Bundle().equals(dCa.x509Bundle()));
      assert.equal(got.endpointId?.trustDomain.name, 'cluster-b.test');
    } finally {
      await raw.close();
    }
  });
});

describe('fetchBundle: the document', () => {
  const ca = createTestCa({ trustDomain: tdB, clock });
  const serverId = SpiffeId.fromPath(tdB, '/spire/server');
  const svid = ca.issueX509Svid(serverId);
  const auth: EndpointAuthentication = {
    profile: 'https_spiffe',
    endpointSpiffeId: serverId,
    endpointBundle: ca.x509Bundle(),
  };
  let body: (res: import('node:http').ServerResponse) => void = (res) => res.end(bundleOf(ca, 1n).marshal());
  let raw: Awaited<ReturnType<typeof startRawEndpoint>>;
  before(async () => {
    raw = await startRawEndpoint(pemOf(svid), (_req, res) => body(res));
  });
  after(() => raw.close());
  const options = (): FetchBundleOptions => ({ url: raw.url, trustDomain: tdB, authentication: auth });

  it('refuses a document that is not a SPIFFE bundle (B-2)', async () => {
    for (const text of ['not json', '{"keys": 5}', '{}', '[1,2]']) {
      body = (res) => res.end(text);
      await refused(options(), 'ERR_FEDERATION_BUNDLE_REFUSED', 'malformed', /not a SPIFFE bundle/);
    }
  });

  it('refuses a bundle without any authority (B-2)', async () => {
    body = (res) => res.end('{"keys":[],"spiffe_sequence":3}');
    await refused(options(), 'ERR_FEDERATION_BUNDLE_REFUSED', 'empty', /holds no X\.509 or JWT authority/);
  });

  it('refuses an oversized document, declared or streamed', async () => {
    body = (res) => res.end('x'.repeat(2000));
    await refused({ ...options(), maxBytes: 1000 }, 'ERR_FEDERATION_RESPONSE_INVALID', 'oversized', /2000 bytes/);
    body = (res) => {
      res.writeHead(200, { 'content-type': 'application/json' }); // chunked: no length up front
      for (let i = 0; i < 40; i++) res.write('x'.repeat(100));
      res.end();
    };
    await refused({ ...options(), maxBytes: 1000 }, 'ERR_FEDERATION_RESPONSE_INVALID', 'oversized', /exceeds/);
  });

  it('refuses a body that is not UTF-8 (F-3)', async () => {
    body = (res) => res.end(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
    await refused(options(), 'ERR_FEDERATION_RESPONSE_INVALID', 'not-utf8');
  });

  it('refuses an HTTP status other than 200', async () => {
    body = (res) => {
      res.statusCode = 500;
      res.end('boom');
    };
    await refused(options(), 'ERR_FEDERATION_RESPONSE_INVALID', 'http-status', /HTTP 500/);
  });

  it('accepts a bundle with JWT authorities only', async () => {
    const { JwtBundle } = await import('@steeple/spiffe');
    const { generateKeyPairSync } = await import('node:crypto');
    const jwt = JwtBundle.empty(tdB).withAuthority('k1', generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
    body = (res) => res.end(SpiffeBundle.fromBundles({ jwt, sequenceNumber: 2n }).marshal());
    // Served by a non-self-serving endpoint (a self-serving one must vouch for its own SVID).
    const got = await fetchBundle({
      url: raw.url,
      trustDomain: TrustDomain.parse('jwt-only.test'),
      authentication: auth,
      clock,
    });
    assert.equal(got.bundle.x509Authorities.length, 0);
    assert.deepEqual([...got.bundle.jwtAuthorities.keys()], ['k1']);
  });
});

describe('fetchBundle: redirects (F-6)', () => {
  let peer: TestPeer;
  const raws: Awaited<ReturnType<typeof startRawEndpoint>>[] = [];
  before(async () => {
    peer = await startTestPeer('cluster-b.test', { clock });
  });
  after(async () => {
    await peer.close();
    for (const r of raws) await r.close();
  });
  const redirector = async (location: (self: string) => string, svid = peer.svid, status = 302) => {
    let self = '';
    const r = await startRawEndpoint(pemOf(svid), (_req, res) => {
      res.writeHead(status, { location: location(self) });
      res.end();
    });
    self = r.url;
    raws.push(r);
    return r;
  };

  it('follows a redirect to an endpoint with the same SPIFFE ID, and reports where it went', async () => {
    const r1 = await redirector(() => peer.url);
    const r2 = await redirector(() => r1.url, peer.svid, 307);
    const got = await fetchBundle({ url: r2.url, trustDomain: tdB, authentication: spiffe(peer), clock });
    assert.deepEqual(got.redirects, [r1.url, peer.url]);
    assert.equal(got.url, peer.url);
    assert.ok(got.bundle.x509Bundle().equals(peer.ca.x509Bundle()));
  });

  it('follows a relative Location, resolved against the URL that sent it', async () => {
    const r = await startRawEndpoint(pemOf(peer.svid), (req, res) => {
      if (req.url === '/v2/bundle.json') {
        res.end(peer.bundle.marshal());
      } else {
        res.writeHead(302, { location: 'v2/bundle.json' });
        res.end();
      }
    });
    raws.push(r);
    const got = await fetchBundle({ url: r.url, trustDomain: tdB, authentication: spiffe(peer), clock });
    assert.equal(got.url, `${r.url}v2/bundle.json`);
    assert.ok(got.bundle.x509Bundle().equals(peer.ca.x509Bundle()));
  });

  it('applies the same checks to the redirect target: another SPIFFE ID there is refused', async () => {
    const other = createTestCa({ trustDomain: tdB, clock });
    // The target is a cluster-b.test server, validly signed, but not the configured endpoint ID.
    const target = await startRawEndpoint(pemOf(peer.ca.issueX509Svid('spiffe://cluster-b.test/cdn')), (_req, res) =>
      res.end(bundleOf(other, 1n).marshal()),
    );
    raws.push(target);
    const r = await redirector(() => target.url);
    await refused(
      { url: r.url, trustDomain: tdB, authentication: spiffe(peer) },
      'ERR_FEDERATION_ENDPOINT_UNTRUSTED',
      'wrong-endpoint-id',
      /spiffe:\/\/cluster-b\.test\/cdn/,
    );
    assert.equal(target.requests(), 0);
  });

  it('refuses a redirect to a URL that is not a valid bundle endpoint URL', async () => {
    for (const location of ['http://127.0.0.1:1/bundle', 'https://user:pw@127.0.0.1:1/bundle', 'ftp://x/']) {
      const r = await redirector(() => location);
      const err = await refused(
        { url: r.url, trustDomain: tdB, authentication: spiffe(peer) },
        'ERR_FEDERATION_RESPONSE_INVALID',
        'invalid-redirect',
        /valid bundle endpoint URL \(F-6\)/,
      );
      assert.doesNotMatch(err.message, /pw/, 'user information is never repeated in messages');
    }
  });

  it('stops after the maximum number of redirects', async () => {
    const loop = await redirector((self) => self);
    await refused(
      { url: loop.url, trustDomain: tdB, authentication: spiffe(peer), maxRedirects: 3 },
      'ERR_FEDERATION_RESPONSE_INVALID',
      'too-many-redirects',
      /more than 3 redirects/,
    );
  });
});

describe('fetchBundle: https_web (F-4)', () => {
  const webCa = createTestCa({ trustDomain: 'web-ca.test' });
  const bundleCa = createTestCa({ trustDomain: tdB });
  const webAuth: EndpointAuthentication = {
    profile: 'https_web',
    extraRootCertificates: [webCa.certificate.toString()],
  };
  const serve = (dns: string) =>
    startRawEndpoint(
      pemOf(webCa.issueX509Svid('spiffe://web-ca.test/endpoint', { dnsNames: [dns] })),
      (_req, res) => res.end(bundleOf(bundleCa, 5n).marshal()),
      'localhost',
    );

  it('accepts a certificate from a trusted web CA whose DNS name matches the URL host', async () => {
    const raw = await serve('localhost');
    try {
      const got = await fetchBundle({
        url: `https://localhost:${raw.port}/bundle`,
        trustDomain: tdB,
        authentication: webAuth,
      });
      assert.equal(got.bundle.sequenceNumber, 5n);
      assert.equal(got.endpointId, undefined);
    } finally {
      await raw.close();
    }
  });

  it('refuses a certificate from an untrusted CA or for another host name, and sends nothing', async () => {
    const raw = await serve('localhost');
    const wrongName = await serve('bundles.example.com');
    try {
      await refused(
        { url: `https://localhost:${raw.port}/`, trustDomain: tdB, authentication: { profile: 'https_web' } },
        'ERR_FEDERATION_ENDPOINT_UNTRUSTED',
        'webpki-untrusted',
        /failed Web PKI validation/,
      );
      await refused(
        { url: `https://localhost:${wrongName.port}/`, trustDomain: tdB, authentication: webAuth },
        'ERR_FEDERATION_ENDPOINT_UNTRUSTED',
        'webpki-untrusted',
        /ERR_TLS_CERT_ALTNAME_INVALID/,
      );
      assert.equal(raw.requests() + wrongName.requests(), 0);
    } finally {
      await raw.close();
      await wrongName.close();
    }
  });
});

describe('fetchBundle: the URL and the network', () => {
  const auth: EndpointAuthentication = { profile: 'https_web' };

  it('refuses a URL that is not https or carries user information (F-3)', async () => {
    for (const url of ['http://127.0.0.1/bundle', 'https://user:secret@127.0.0.1/bundle', 'not a url']) {
      const err = await refused(
        { url, trustDomain: tdB, authentication: auth },
        'ERR_FEDERATION_RESPONSE_INVALID',
        'invalid-url',
      );
      assert.doesNotMatch(err.message, /secret/);
    }
  });

  it('reports an endpoint that refuses connections as unreachable', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await refused(
      { url: `https://127.0.0.1:${port}/`, trustDomain: tdB, authentication: auth },
      'ERR_FEDERATION_ENDPOINT_UNREACHABLE',
      'connection-failed',
      /ECONNREFUSED/,
    );
  });

  it('gives up on an endpoint that never answers (timeout)', async () => {
    const sockets: net.Socket[] = [];
    const server = net.createServer((s) => sockets.push(s)); // accepts, never speaks TLS
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    try {
      await refused(
        { url: `https://127.0.0.1:${port}/`, trustDomain: tdB, authentication: auth, timeoutMs: 150 },
        'ERR_FEDERATION_ENDPOINT_UNREACHABLE',
        'timeout',
        /no complete answer within 150 ms/,
      );
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
