// Property tests: whatever text arrives from a peer or a file, the bundle parsers either
// return a bundle or throw a SpiffeError — never another exception, never a hang.
import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { SpiffeError } from '../errors.js';
import { selfSignCertificate } from '../internal/certificate-builder.js';
import { BundleSet } from './bundle-set.js';
import { JwtBundle } from './jwt-bundle.js';
import { SpiffeBundle } from './spiffe-bundle.js';
import { X509Bundle } from './x509-bundle.js';

const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ca = new X509Certificate(
  selfSignCertificate(
    {
      subject: [{ type: 'CN', value: 'fuzz ca' }],
      publicKey: keys.publicKey,
      notBefore: new Date(0),
      notAfter: new Date(4102444800000),
      basicConstraints: { ca: true },
      keyUsage: { usages: ['keyCertSign'] },
    },
    keys.privateKey,
  ),
);
const valid = SpiffeBundle.fromBundles({
  x509: X509Bundle.fromAuthorities('example.org', [ca]),
  jwt: JwtBundle.fromAuthorities('example.org', new Map([['k1', keys.publicKey]])),
  sequenceNumber: 2n ** 60n,
  refreshHintSeconds: 30,
});
const validBundle = valid.marshal();
const validMap = `{"trust_domains":{"example.org":${validBundle},"spiffe://b.org":{"keys":[]}}}`;
const validJwks = valid.jwtBundle().marshal();

/** Runs every parser on the text; fails on any throw that is not a SpiffeError. */
function parseAll(text: string | Uint8Array): void {
  for (const parse of [
    () => SpiffeBundle.parse('example.org', text),
    () => BundleSet.parse(text),
    () => JwtBundle.parse('example.org', text),
  ]) {
    try {
      parse();
    } catch (e) {
      if (!(e instanceof SpiffeError)) throw e;
    }
  }
}

/** A random edit of a valid document: replace, delete, insert or duplicate a slice. */
const mutated = (doc: string) =>
  fc
    .array(
      fc.tuple(
        fc.constantFrom('replace', 'delete', 'insert', 'duplicate'),
        fc.nat(doc.length),
        fc.nat(40),
        fc.string({ maxLength: 8 }),
      ),
      { minLength: 1, maxLength: 4 },
    )
    .map((edits) => {
      let s = doc;
      for (const [op, at, len, text] of edits) {
        const i = at % (s.length + 1);
        if (op === 'replace') s = s.slice(0, i) + text + s.slice(i + text.length);
        else if (op === 'delete') s = s.slice(0, i) + s.slice(i + len);
        else if (op === 'insert') s = s.slice(0, i) + text + s.slice(i);
        else s = s.slice(0, i) + s.slice(i, i + len) + s.slice(i);
      }
      return s;
    });

const jwkish = fc.record(
  {
    use: fc.oneof(fc.constantFrom('x509-svid', 'jwt-svid', 'wit-svid'), fc.jsonValue()),
    kty: fc.oneof(fc.constantFrom('EC', 'RSA', 'OKP', 'oct'), fc.jsonValue()),
    kid: fc.oneof(fc.constantFrom('k1', ''), fc.jsonValue()),
    crv: fc.oneof(fc.constantFrom('P-256', 'P-384', 'Ed25519'), fc.jsonValue()),
    x: fc.oneof(fc.base64String(), fc.jsonValue()),
    y: fc.oneof(fc.base64String(), fc.jsonValue()),
    n: fc.base64String(),
    e: fc.constantFrom('AQAB', 'AA', ''),
    d: fc.base64String(),
    x5c: fc.oneof(
      fc.array(fc.oneof(fc.base64String(), fc.constant(ca.raw.toString('base64')), fc.jsonValue())),
      fc.jsonValue(),
    ),
  },
  { requiredKeys: [] },
);

const settings = { numRuns: 1500 };

describe('bundle parsers under random input (fuzz)', () => {
  it('random strings and bytes yield only SpiffeErrors', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 300 }), parseAll), settings);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), parseAll), settings);
  });

  it('random JSON documents yield only SpiffeErrors', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (v) => parseAll(JSON.stringify(v))),
      settings,
    );
  });

  it('random edits of valid bundles, bundle maps and JWK Sets yield only SpiffeErrors', () => {
    fc.assert(fc.property(fc.oneof(mutated(validBundle), mutated(validMap), mutated(validJwks)), parseAll), settings);
  });

  it('random JWK entries and sequence numbers yield only SpiffeErrors', () => {
    fc.assert(
      fc.property(
        fc.array(jwkish, { maxLength: 4 }),
        fc.oneof(fc.bigInt(), fc.jsonValue()),
        fc.oneof(fc.integer(), fc.jsonValue()),
        (entries, seq, hint) => {
          const seqText = typeof seq === 'bigint' ? seq.toString() : JSON.stringify(seq);
          const text = `{"keys":${JSON.stringify(entries)},"spiffe_sequence":${seqText},"spiffe_refresh_hint":${JSON.stringify(hint)}}`;
          parseAll(text);
          parseAll(`{"trust_domains":{"td":${text}}}`);
        },
      ),
      { numRuns: 800 },
    );
  });

  it('huge and deeply nested input is refused quickly with a SpiffeError', () => {
    const huge = `{"keys":[],"pad":"${'a'.repeat(5 * 1024 * 1024)}"}`;
    const cases: (string | Uint8Array)[] = [
      huge,
      Buffer.from(huge),
      '['.repeat(1_000_000),
      `{"keys":${'['.repeat(100_000)}${']'.repeat(100_000)}}`,
      `{"trust_domains":${'{"a":'.repeat(50_000)}`,
      `{"keys":[],"big":${'9'.repeat(100_000)}}`,
      `{"keys":[],"spiffe_sequence":${'9'.repeat(10_000)}}`,
    ];
    for (const text of cases) {
      for (const parse of [
        () => SpiffeBundle.parse('a.org', text),
        () => BundleSet.parse(text),
        () => JwtBundle.parse('a.org', text),
      ]) {
        assert.throws(parse, SpiffeError);
      }
    }
    const wide = `{"keys":[],"pad":"${'a'.repeat(3 * 1024 * 1024)}"}`;
    assert.equal(SpiffeBundle.parse('a.org', wide).isEmpty(), true, 'large but within the limit parses');
  });
});
