import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TrustDomain, verifyX509Svid, type X509Svid } from '@steeple/spiffe';
import { ManualClock } from '@steeple/spiffe/testing';
import { MemoryBundlePublisher } from './bundle-publisher.js';
import { CaError } from './ca-errors.js';
import { MemoryJournalStorage } from './ca-journal.js';
import { CaManager } from './ca-manager.js';
import { MemoryKeyManager } from './key-manager.js';
import { ServerSvidRotator } from './server-svid.js';

const td = TrustDomain.parse('example.org');
const START = new Date('2030-01-01T00:00:00Z');
const MINUTE = 60_000;

async function startedCa(clock: ManualClock) {
  const ca = new CaManager({
    trustDomain: td,
    keyManager: new MemoryKeyManager(),
    journal: new MemoryJournalStorage(),
    publisher: new MemoryBundlePublisher({ trustDomain: td, clock }),
    clock,
  });
  await ca.start();
  return ca;
}

describe('ServerSvidRotator', () => {
  it('issues spiffe://<td>/spire/server and renews it at half-life, not before', async () => {
    const clock = new ManualClock(START);
    const ca = await startedCa(clock);
    const rotator = new ServerSvidRotator({ ca, clock, ttlSeconds: 3600 });
    assert.throws(() => rotator.current(), CaError);
    const first = await rotator.start();
    assert.equal(first.id.toString(), 'spiffe://example.org/spire/server');
    verifyX509Svid(first.certificates, ca.bundle(), { now: clock.now() });
    const renewed: X509Svid[] = [];
    rotator.onRotate((svid) => renewed.push(svid));

    clock.advance(30 * MINUTE - 1);
    await rotator.whenIdle();
    assert.equal(rotator.current(), first, 'unchanged before half-life');
    clock.advance(1);
    await rotator.whenIdle();
    assert.notEqual(rotator.current(), first, 'renewed at half-life');
    assert.equal(renewed.length, 1);
    assert.notDeepEqual(
      rotator.current().privateKey.export({ format: 'der', type: 'pkcs8' }),
      first.privateKey.export({ format: 'der', type: 'pkcs8' }),
      'with a new key',
    );
    verifyX509Svid(rotator.current().certificates, ca.bundle(), { now: clock.now() });
    rotator.stop();
    ca.stop();
  });
});
