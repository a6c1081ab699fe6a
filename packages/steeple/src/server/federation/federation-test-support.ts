/**
 * Helpers for this folder's tests: a peer trust domain with a real bundle endpoint whose
 * bundle and SVID a test can change, a raw HTTPS endpoint that answers whatever a test
 * wants, and a throw-away SQLite datastore. Not used by production code.
 * @module
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Clock,
  SpiffeBundle,
  SpiffeId,
  systemClock,
  TrustDomain,
  X509Bundle,
  type X509Svid,
} from '@steeple/spiffe';
import { createTestCa, type TestCa } from '@steeple/spiffe/testing';
import { type Datastore, openDatastore } from '../datastore/index.js';
import {
  type BundleEndpointServer,
  startBundleEndpointServer,
  tlsMaterialFromSvidSource,
} from './bundle-endpoint-server.js';

/** A peer trust domain: its CA, its endpoint's SVID and the bundle its endpoint serves (both replaceable). */
export interface TestPeer {
  readonly td: TrustDomain;
  readonly serverId: SpiffeId;
  ca: TestCa;
  svid: X509Svid;
  bundle: SpiffeBundle;
  readonly endpoint: BundleEndpointServer;
  /** `https://127.0.0.1:<port>/`. */
  readonly url: string;
  /** Publishes `ca`'s root next to the current authorities (sequence + 1), as a CA rotation's first step. */
  publish(ca: TestCa): void;
  /** Switches the endpoint's SVID to one from `ca` and keeps only `ca` in the bundle (sequence + 1). */
  switchTo(ca: TestCa): void;
  close(): Promise<void>;
}

export function bundleOf(ca: TestCa, sequence: bigint, refreshHintSeconds?: number): SpiffeBundle {
  return SpiffeBundle.fromBundles({
    x509: ca.x509Bundle(),
    sequenceNumber: sequence,
    ...(refreshHintSeconds === undefined ? {} : { refreshHintSeconds }),
  });
}

/** Starts a peer trust domain `name` with an https_spiffe bundle endpoint on loopback. */
export async function startTestPeer(
  name: string,
  options: { clock?: Clock; refreshHintSeconds?: number; path?: string } = {},
): Promise<TestPeer> {
  const td = TrustDomain.parse(name);
  const clock = options.clock ?? systemClock;
  const serverId = SpiffeId.fromPath(td, '/spire/server');
  const ca = createTestCa({ trustDomain: td, clock });
  const state = { ca, svid: ca.issueX509Svid(serverId, { ttlSeconds: 24 * 3600 }), bundle: bundleOf(ca, 1n) };
  const endpoint = await startBundleEndpointServer({
    host: '127.0.0.1',
    port: 0,
    ...(options.path === undefined ? {} : { path: options.path }),
    refreshHintSeconds: options.refreshHintSeconds ?? 300,
    bundle: () => state.bundle,
    tls: { profile: 'https_spiffe', svid: tlsMaterialFromSvidSource({ current: () => state.svid }) },
    clock,
  });
  const peer: TestPeer = {
    td,
    serverId,
    get ca() {
      return state.ca;
    },
    set ca(v) {
      state.ca = v;
    },
    get svid() {
      return state.svid;
    },
    set svid(v) {
      state.svid = v;
    },
    get bundle() {
      return state.bundle;
    },
    set bundle(v) {
      state.bundle = v;
    },
    endpoint,
    url: endpoint.url,
    publish(next) {
      const b = state.bundle;
      state.bundle = SpiffeBundle.fromBundles({
        x509: X509Bundle.fromAuthorities(td, [...b.x509Authorities, next.certificate]),
        sequenceNumber: (b.sequenceNumber ?? 0n) + 1n,
      });
    },
    switchTo(next) {
      state.ca = next;
      state.svid = next.issueX509Svid(serverId, { ttlSeconds: 24 * 3600 });
      state.bundle = bundleOf(next, (state.bundle.sequenceNumber ?? 0n) + 1n);
    },
    close: () => endpoint.close(),
  };
  return peer;
}

/** An HTTPS endpoint presenting `svid` (or any cert/key) that answers with `handler`; counts requests. */
export async function startRawEndpoint(
  tlsMaterial: { key: string | Buffer; cert: string | Buffer },
  handler: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void,
  host = '127.0.0.1',
): Promise<{ url: string; port: number; requests: () => number; close: () => Promise<void> }> {
  let requests = 0;
  const server = https.createServer({ key: tlsMaterial.key, cert: tlsMaterial.cert }, (req, res) => {
    requests++;
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://${host === '127.0.0.1' ? '127.0.0.1' : host}:${port}/`,
    port,
    requests: () => requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** PEM key and chain of an SVID, as node:tls takes them. */
export function pemOf(svid: X509Svid): { key: string; cert: string } {
  const m = svid.marshal();
  return { key: m.privateKey, cert: m.certificates };
}

/** A temporary directory and its removal. */
export async function tempDir(): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), 'steeple-federation-'));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** A fresh SQLite datastore in a temporary directory. */
export async function openTestDatastore(
  clock?: Clock,
): Promise<{ ds: Datastore; dir: string; close: () => Promise<void> }> {
  const dir = await tempDir();
  const ds = await openDatastore({ type: 'sqlite', path: join(dir.path, 'datastore.sqlite3') }, clock ? { clock } : {});
  return {
    ds,
    dir: dir.path,
    close: async () => {
      await ds.close();
      await dir.remove();
    },
  };
}

/** Writes `text` to `name` in `dir` and returns the path. */
export async function writeTemp(dir: string, name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}
