import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { TrustDomain } from '@steeple/spiffe';
import { ManualClock } from '@steeple/spiffe/testing';
import { MemoryBundlePublisher } from './bundle-publisher.js';
import { DEFAULT_CA_SUBJECT, selfSignCaCertificate } from './ca-certificate.js';

const td = TrustDomain.parse('example.org');
const START = new Date('2030-01-01T00:00:00Z');
const HOUR = 3600_000;

function root(clock: ManualClock, ttlSeconds: number) {
  const privateKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  return selfSignCaCertificate({
    trustDomain: td,
    privateKey,
    subject: DEFAULT_CA_SUBJECT,
    now: clock.now(),
    ttlSeconds,
  });
}
const jwtKey = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;

describe('MemoryBundlePublisher', () => {
  it('publishes authorities and bumps spiffe_sequence only when the content changes (B-3)', async () => {
    const clock = new ManualClock(START);
    const publisher = new MemoryBundlePublisher({ trustDomain: td, clock });
    const ca = root(clock, 24 * 3600);
    const jwt = { kid: 'k1', publicKey: jwtKey(), notAfter: new Date(START.getTime() + 24 * HOUR) };
    const first = await publisher.publish({ x509: [ca], jwt: [jwt] });
    assert.equal(first.sequenceNumber, 1n);
    assert.deepEqual(
      first.x509Authorities.map((c) => c.raw),
      [ca.raw],
    );
    assert.ok(first.jwtBundle().hasAuthority('k1'));
    assert.equal(first.refreshHintSeconds, 300);
    const again = await publisher.publish({ x509: [ca], jwt: [jwt] });
    assert.equal(again.sequenceNumber, 1n, 'same content, same sequence');
    assert.equal(publisher.current(), again);
  });

  it('keeps authorities it was not told about again (other servers, retired CAs) until they expire', async () => {
    const clock = new ManualClock(START);
    const publisher = new MemoryBundlePublisher({ trustDomain: td, clock });
    const a = root(clock, 2 * 3600);
    const b = root(clock, 24 * 3600);
    await publisher.publish({
      x509: [a],
      jwt: [{ kid: 'a', publicKey: jwtKey(), notAfter: new Date(START.getTime() + 2 * HOUR) }],
    });
    const both = await publisher.publish({
      x509: [b],
      jwt: [{ kid: 'b', publicKey: jwtKey(), notAfter: new Date(START.getTime() + 24 * HOUR) }],
    });
    assert.equal(both.x509Authorities.length, 2);
    assert.deepEqual([...both.jwtAuthorities.keys()], ['a', 'b']);
    assert.equal(both.sequenceNumber, 2n);

    clock.advance(2 * HOUR); // a's notAfter passes
    const pruned = await publisher.publish({ x509: [], jwt: [] });
    assert.deepEqual(
      pruned.x509Authorities.map((c) => c.raw),
      [b.raw],
      'the expired CA is pruned',
    );
    assert.deepEqual([...pruned.jwtAuthorities.keys()], ['b'], 'the expired JWT key is pruned');
    assert.equal(pruned.sequenceNumber, 3n);
  });
});
