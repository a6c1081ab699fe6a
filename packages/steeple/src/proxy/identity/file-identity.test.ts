import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BundleSet } from '@steeple/spiffe';
import { createTestCa } from '@steeple/spiffe/testing';
import { createSilentLogger } from '../../common/logger.js';
import { FileIdentity, parseBundleFile } from './file-identity.js';

const ca = createTestCa({ trustDomain: 'example.org' });
const other = createTestCa({ trustDomain: 'other.org' });

function files(dir: string) {
  return {
    cert: join(dir, 'svid.pem'),
    key: join(dir, 'svid.key'),
    bundle: join(dir, 'bundle.pem'),
    poll_interval: 3600,
  };
}

function write(f: ReturnType<typeof files>, svid = ca.issueX509Svid('spiffe://example.org/web'), bundle?: string) {
  const { certificates, privateKey } = svid.marshal();
  writeFileSync(f.cert, certificates);
  writeFileSync(f.key, privateKey);
  writeFileSync(f.bundle, bundle ?? ca.x509Bundle().marshal());
  return svid;
}

describe('FileIdentity', () => {
  it('loads, reloads a new SVID, and keeps the same objects while nothing changes', () => {
    const f = files(mkdtempSync(join(tmpdir(), 'id-')));
    write(f);
    const identity = FileIdentity.open(f, createSilentLogger());
    const first = identity.getX509Svid();
    const bundles = identity.getX509Bundles();
    assert.equal(identity.reload(), false, 'unchanged files');
    assert.equal(identity.getX509Svid(), first);
    const next = write(f);
    assert.equal(identity.reload(), true);
    assert.equal(identity.getX509Svid().leaf.serialNumber, next.leaf.serialNumber);
    assert.equal(identity.getX509Bundles(), bundles, 'an unchanged bundle keeps its object (no TLS context rebuild)');
    identity.close();
  });

  it('keeps the last good identity when a file is broken or the key does not match', () => {
    const f = files(mkdtempSync(join(tmpdir(), 'id-')));
    const good = write(f);
    const identity = FileIdentity.open(f, createSilentLogger());
    writeFileSync(f.cert, '-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n');
    assert.equal(identity.reload(), false);
    writeFileSync(f.cert, ca.issueX509Svid('spiffe://example.org/web').marshal().certificates); // key of another SVID
    assert.equal(identity.reload(), false);
    assert.equal(identity.getX509Svid().leaf.serialNumber, good.leaf.serialNumber);
    identity.close();
  });

  it('refuses a bundle without the SVID’s own trust domain at start-up', () => {
    const f = files(mkdtempSync(join(tmpdir(), 'id-')));
    // A PEM bundle is the SVID's own trust domain's by definition; a bundle map says which it is.
    write(f, undefined, BundleSet.of(other.x509Bundle()).marshal());
    assert.throws(() => FileIdentity.open(f, createSilentLogger()), /trust domain "example.org"/);
  });

  it('reads PEM, SPIFFE bundle JSON and bundle maps (federation)', () => {
    const td = ca.trustDomain;
    assert.equal(parseBundleFile(ca.x509Bundle().marshal(), td).size, 1);
    const map = BundleSet.of(ca.x509Bundle(), other.x509Bundle()).marshal();
    assert.deepEqual(
      parseBundleFile(map, td)
        .trustDomains()
        .map((t) => t.name),
      ['example.org', 'other.org'],
    );
    const single = BundleSet.of(ca.x509Bundle()).get('example.org')?.marshal() as string;
    assert.equal(parseBundleFile(single, td).size, 1);
  });
});
