/**
 * Property tests: whatever bytes arrive (random, truncated or bit-flipped DER of a real
 * SVID), the X.509 entry points either succeed or throw a SpiffeError — never another
 * exception type, never a hang.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { X509Bundle } from '../bundle/x509-bundle.js';
import { SpiffeError } from '../errors.js';
import { ManualClock } from '../testing/manual-clock.js';
import { createTestCa } from '../testing/test-ca.js';
import { X509Svid } from './x509-svid.js';
import { verifyX509Svid } from './x509-svid-verify.js';

const clock = new ManualClock(new Date('2030-01-01T00:00:00Z'));
const ca = createTestCa({ trustDomain: 'example.org', clock });
const inter = ca.createIntermediate();
const svid = inter.issueX509Svid('spiffe://example.org/fuzz', { dnsNames: ['fuzz.local'] });
const bundle = ca.x509Bundle();
const raw = svid.marshalRaw();
const chainDer = Buffer.from(raw.certificates);
const keyDer = Buffer.from(raw.privateKey);
const leafDer = Buffer.from(svid.leaf.raw);
const interDer = Buffer.from(inter.certificate.raw);
const now = clock.now();

/** Runs `fn`; anything thrown must be a SpiffeError. */
function onlySpiffeErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof SpiffeError)) {
      assert.fail(`expected a SpiffeError, got ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
    }
  }
}

function allEntryPoints(chain: Uint8Array, key: Uint8Array = keyDer): void {
  onlySpiffeErrors(() => X509Svid.parseRaw(chain, key));
  onlySpiffeErrors(() => X509Bundle.parseRaw('example.org', chain));
  onlySpiffeErrors(() => verifyX509Svid([chain], bundle, { now }));
  onlySpiffeErrors(() => verifyX509Svid([chain, interDer], bundle, { now }));
}

function flipBits(bytes: Buffer, positions: readonly number[]): Buffer {
  const out = Buffer.from(bytes);
  for (const p of positions) {
    const bit = p % (out.length * 8);
    out[bit >> 3] = (out[bit >> 3] as number) ^ (1 << (bit & 7));
  }
  return out;
}

describe('X.509 entry points under fuzzing yield only SpiffeErrors', { timeout: 60_000 }, () => {
  it('the unmutated SVID is accepted everywhere (sanity)', () => {
    assert.equal(X509Svid.parseRaw(chainDer, keyDer).id.toString(), 'spiffe://example.org/fuzz');
    assert.equal(X509Bundle.parseRaw('example.org', chainDer).authorities.length, 2);
    assert.equal(verifyX509Svid([leafDer, interDer], bundle, { now }).verifiedChain.length, 3);
  });

  it('random byte arrays', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1500 }), (bytes) => allEntryPoints(bytes)),
      { numRuns: 1500 },
    );
  });

  it('random bytes behind a plausible SEQUENCE header', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 600 }), (body) => {
        const len = body.length;
        const header = len < 0x80 ? [0x30, len] : len < 0x100 ? [0x30, 0x81, len] : [0x30, 0x82, len >> 8, len & 0xff];
        allEntryPoints(Buffer.concat([Buffer.from(header), body]));
      }),
      { numRuns: 1000 },
    );
  });

  it('truncated DER of a real SVID chain', () => {
    fc.assert(
      fc.property(fc.nat({ max: chainDer.length - 1 }), (cut) => {
        allEntryPoints(chainDer.subarray(0, cut));
        onlySpiffeErrors(() => X509Svid.parseRaw(chainDer, keyDer.subarray(0, cut % keyDer.length)));
      }),
      { numRuns: 800 },
    );
  });

  it('bit-flipped DER of a real leaf, intermediate and key', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), (positions) => {
        const leaf = flipBits(leafDer, positions);
        allEntryPoints(leaf);
        onlySpiffeErrors(() => verifyX509Svid([leafDer, flipBits(interDer, positions)], bundle, { now }));
        onlySpiffeErrors(() => X509Svid.parseRaw(chainDer, flipBits(keyDer, positions)));
      }),
      { numRuns: 1000 },
    );
  });

  it('overwritten bytes (lengths and tags included) of a real leaf', () => {
    fc.assert(
      fc.property(fc.nat({ max: leafDer.length - 1 }), fc.integer({ min: 0, max: 255 }), (at, value) => {
        const leaf = Buffer.from(leafDer);
        leaf[at] = value;
        allEntryPoints(leaf);
      }),
      { numRuns: 1000 },
    );
  });
});
