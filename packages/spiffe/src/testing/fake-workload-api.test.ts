import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import http2 from 'node:http2';
import { connect as netConnect } from 'node:net';
import { dirname } from 'node:path';
import { after, describe, it } from 'node:test';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { BundleSet } from '../bundle/bundle-set.js';
import { SpiffeWorkloadAPI } from '../gen/spiffe/workload/workload_pb.js';
import { type FakeWorkloadApi, startFakeWorkloadApi } from './fake-workload-api.js';
import { createTestCa } from './test-ca.js';

const ca = createTestCa({ trustDomain: 'example.org' });

const cleanups: (() => unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function fake(): Promise<FakeWorkloadApi> {
  const api = await startFakeWorkloadApi({
    svids: [ca.issueX509Svid('spiffe://example.org/web')],
    bundles: BundleSet.of(ca.x509Bundle()),
  });
  cleanups.push(() => api.close());
  return api;
}

/** A plain connect client that sends exactly the headers it is given: no security header by default. */
function rawClient(api: FakeWorkloadApi) {
  const transport = createGrpcTransport({
    baseUrl: 'http://localhost',
    nodeOptions: { createConnection: () => netConnect(api.socketPath) },
  });
  return createClient(SpiffeWorkloadAPI, transport);
}

async function codeOf(call: () => Promise<unknown>): Promise<Code | 'ok'> {
  try {
    await call();
    return 'ok';
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

async function firstOf<T>(stream: AsyncIterable<T>): Promise<T> {
  for await (const m of stream) return m;
  throw new Error('stream ended without a message');
}

/** One raw HTTP/2 request with a gRPC-framed empty message; resolves with the response headers and trailers. */
function rawRequest(
  api: FakeWorkloadApi,
  headers: http2.OutgoingHttpHeaders,
): Promise<{ headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders; gotMessage: boolean }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect('http://localhost', { createConnection: () => netConnect(api.socketPath) });
    session.on('error', reject);
    const req = session.request({
      ':method': 'POST',
      'content-type': 'application/grpc',
      te: 'trailers',
      ...headers,
    });
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    let gotMessage = false;
    req.on('response', (h) => {
      responseHeaders = h;
    });
    req.on('trailers', (t) => {
      trailers = t;
    });
    req.on('data', () => {
      // A stream's first message arrives; that is all this probe wants.
      gotMessage = true;
      req.close(http2.constants.NGHTTP2_CANCEL);
    });
    req.on('error', () => {});
    req.on('close', () => {
      session.close();
      resolve({ headers: responseHeaders, trailers, gotMessage });
    });
    req.end(Buffer.from([0, 0, 0, 0, 0]));
  });
}

async function eventually(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.fail(`never happened: ${what}`);
}

describe('startFakeWorkloadApi serves the Workload API like an agent', { timeout: 20_000 }, () => {
  it('answers InvalidArgument to every call without the security header (E-2)', async () => {
    const api = await fake();
    const c = rawClient(api);
    assert.equal(await codeOf(() => firstOf(c.fetchX509SVID({}))), Code.InvalidArgument);
    assert.equal(await codeOf(() => firstOf(c.fetchX509Bundles({}))), Code.InvalidArgument);
    assert.equal(await codeOf(() => firstOf(c.fetchJWTBundles({}))), Code.InvalidArgument);
    assert.equal(await codeOf(() => c.fetchJWTSVID({ audience: ['a'] })), Code.InvalidArgument);
    assert.equal(await codeOf(() => c.validateJWTSVID({ audience: 'a', svid: 'x' })), Code.InvalidArgument);
  });

  it('accepts only exactly "true": "TRUE" and a repeated header are refused (E-2, P7)', async () => {
    const api = await fake();
    const c = rawClient(api);
    const ok = await codeOf(() => firstOf(c.fetchX509SVID({}, { headers: { 'workload.spiffe.io': 'true' } })));
    assert.equal(ok, 'ok');
    const upper = await codeOf(() => firstOf(c.fetchX509SVID({}, { headers: { 'workload.spiffe.io': 'TRUE' } })));
    assert.equal(upper, Code.InvalidArgument);
    const twice = new Headers([
      ['workload.spiffe.io', 'true'],
      ['workload.spiffe.io', 'true'],
    ]);
    assert.equal(await codeOf(() => firstOf(c.fetchX509SVID({}, { headers: twice }))), Code.InvalidArgument);
  });

  it('answers Unimplemented to the WIT-SVID RPCs (W-1)', async () => {
    const api = await fake();
    const c = rawClient(api);
    const headers = { 'workload.spiffe.io': 'true' };
    assert.equal(await codeOf(() => firstOf(c.fetchWITSVID({}, { headers }))), Code.Unimplemented);
    assert.equal(await codeOf(() => firstOf(c.fetchWITBundles({}, { headers }))), Code.Unimplemented);
  });

  it('survives a malformed :authority, as current grpc C-core clients send it (P1)', async () => {
    const api = await fake();
    const res = await rawRequest(api, {
      ':path': '/SpiffeWorkloadAPI/FetchX509SVID',
      ':authority': '%2Ftmp%2Fagent.sock',
      'workload.spiffe.io': 'true',
    });
    assert.equal(res.headers[':status'], 200);
    assert.equal(res.headers['grpc-status'] ?? res.trailers['grpc-status'], undefined, 'no error status');
    assert.ok(res.gotMessage, 'served normally: the authority is pinned');
    const c = rawClient(api);
    const again = await codeOf(() => firstOf(c.fetchX509SVID({}, { headers: { 'workload.spiffe.io': 'true' } })));
    assert.equal(again, 'ok', 'the server is still up');
  });

  it('never compresses responses, even when the client offers gzip (P5)', async () => {
    const api = await fake();
    const res = await rawRequest(api, {
      ':path': '/SpiffeWorkloadAPI/FetchX509SVID',
      'grpc-accept-encoding': 'gzip, br',
      'workload.spiffe.io': 'true',
    });
    assert.equal(res.headers[':status'], 200);
    assert.equal(res.headers['grpc-encoding'], undefined);
  });

  it('ends a stream when the client cancels it (P4)', async () => {
    const api = await fake();
    const c = rawClient(api);
    const ac = new AbortController();
    await firstOf(c.fetchX509SVID({}, { signal: ac.signal, headers: { 'workload.spiffe.io': 'true' } }));
    ac.abort();
    await eventually(() => api.openStreams === 0, 'the cancelled stream is released');
  });

  it('setError applies to every call and to open streams; clearing it restores service', async () => {
    const api = await fake();
    const c = rawClient(api);
    const headers = { 'workload.spiffe.io': 'true' };
    const open = (async () => {
      for await (const _ of c.fetchX509SVID({}, { headers })) api.setError(Code.Unavailable, 'overloaded');
    })();
    assert.equal(await codeOf(() => open), Code.Unavailable);
    assert.equal(await codeOf(() => c.fetchJWTSVID({ audience: ['a'] }, { headers })), Code.Unavailable);
    api.setError(undefined);
    assert.equal(await codeOf(() => firstOf(c.fetchX509SVID({}, { headers }))), 'ok');
    assert.ok(api.requestCount('FetchX509SVID') >= 2);
    assert.equal(api.requestCount('FetchJWTSVID'), 1);
  });

  it('close() removes the socket and the temporary directory it made', async () => {
    const api = await startFakeWorkloadApi();
    assert.ok(existsSync(api.socketPath));
    assert.equal(api.address, `unix://${api.socketPath}`);
    await api.close();
    assert.equal(existsSync(api.socketPath), false);
    assert.equal(existsSync(dirname(api.socketPath)), false);
    await api.close();
  });
});
