import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, type KeyObject, sign, X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { TrustDomain } from '@steeple/spiffe';
import { CertificateIssuer, selfSignCertificate } from '@steeple/spiffe/issuance';
import { createTestCa, ManualClock, type TestCa, type TestKeyType } from '@steeple/spiffe/testing';
import { x509PopSchemeFor, x509PopSignedMessage } from '../../common/attestation/x509pop-format.js';
import { AttestationError, type ChallengeFn } from './node-attestor.js';
import { createX509PopAttestor } from './x509pop.js';

const td = TrustDomain.parse('example.org');
const START = new Date('2030-01-01T00:00:00Z');
const HOUR = 3_600_000;

interface NodePki {
  readonly clock: ManualClock;
  readonly root: TestCa;
  readonly intermediate: TestCa;
}

/** An organisation's PKI for nodes: root → intermediate. The certificates happen to be SPIFFE ones; x509pop does not care. */
function nodePki(opts: { pathLength?: number } = {}): NodePki {
  const clock = new ManualClock(START);
  const root = createTestCa({
    trustDomain: 'nodes.corp',
    clock,
    ...(opts.pathLength === undefined ? {} : { pathLength: opts.pathLength }),
  });
  return { clock, root, intermediate: root.createIntermediate() };
}

/** A node certificate (CN node-1.corp) and key, with the chain up to but excluding the root. */
function nodeIdentity(
  ca: TestCa,
  opts: Parameters<TestCa['issueX509SvidRaw']>[1] = {},
): { chain: X509Certificate[]; key: KeyObject } {
  const { certificates, privateKey } = ca.issueX509SvidRaw('spiffe://nodes.corp/node-1', {
    dnsNames: ['node-1.corp'],
    ...opts,
  });
  return { chain: certificates, key: privateKey };
}

const payloadOf = (chain: readonly X509Certificate[]) => Buffer.concat(chain.map((c) => c.raw));
const sha1 = (c: X509Certificate) => createHash('sha1').update(c.raw).digest('hex');

/** The honest agent's answer: a signature over the documented message with `key`. */
function signer(key: KeyObject, trustDomain = td.name): ChallengeFn & { nonces: Uint8Array[] } {
  const nonces: Uint8Array[] = [];
  const fn = async (nonce: Uint8Array) => {
    nonces.push(nonce);
    const scheme = x509PopSchemeFor(key);
    assert.notEqual(typeof scheme, 'string');
    if (typeof scheme === 'string') throw new Error(scheme);
    return sign(scheme.hash, x509PopSignedMessage(trustDomain, nonce), { ...scheme, key });
  };
  return Object.assign(fn, { nonces });
}

async function refused(promise: Promise<unknown>, code: string | RegExp, reason: RegExp) {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof AttestationError, `expected AttestationError, got ${String(err)}`);
    if (typeof code === 'string') assert.equal(err.code, code);
    else assert.match(err.code, code);
    assert.equal(err.attestor, 'x509pop');
    assert.match(err.reason, reason);
    return true;
  });
}

const neverChallenged: ChallengeFn = async () => assert.fail('no challenge may be sent for an untrusted chain');

describe('x509pop node attestor', () => {
  it('admits a node whose chain leads to the CA bundle and that signs the nonce, with SPIRE’s ID and selectors', async () => {
    const { clock, root, intermediate } = nodePki();
    const { chain, key } = nodeIdentity(intermediate);
    const nonce = new Uint8Array(32).fill(7);
    const attestor = createX509PopAttestor({ caBundle: [root.certificate], randomBytes: () => nonce });
    assert.equal(attestor.name, 'x509pop');
    const challenge = signer(key);

    const result = await attestor.attest(payloadOf(chain), challenge, { trustDomain: td, now: clock.now() });

    assert.deepEqual(challenge.nonces, [nonce], 'one challenge: the 32-byte nonce');
    const leaf = chain[0] as X509Certificate;
    assert.equal(result.agentId.toString(), `spiffe://example.org/spire/agent/x509pop/${sha1(leaf)}`);
    assert.equal(result.canReattest, true);
    assert.equal(result.consumedJoinToken, undefined);
    const serial = BigInt(`0x${leaf.serialNumber}`).toString(16);
    assert.deepEqual(
      result.selectors.map((s) => `${s.type}:${s.value}`),
      [
        `x509pop:ca:fingerprint:${sha1(intermediate.certificate)}`,
        `x509pop:ca:fingerprint:${sha1(root.certificate)}`,
        `x509pop:serialnumber:${serial}`,
        'x509pop:subject:cn:node-1.corp',
      ].sort(),
    );
  });

  for (const keyType of ['ec-p384', 'rsa-2048'] as TestKeyType[]) {
    it(`accepts a ${keyType} node key`, async () => {
      const { clock, root, intermediate } = nodePki();
      const { chain, key } = nodeIdentity(intermediate, { keyType });
      const attestor = createX509PopAttestor({ caBundle: [root.certificate] });
      const result = await attestor.attest(payloadOf(chain), signer(key), { trustDomain: td, now: clock.now() });
      assert.equal(result.agentId.path, `/spire/agent/x509pop/${sha1(chain[0] as X509Certificate)}`);
    });
  }

  it('accepts an Ed25519 node key', async () => {
    const { clock, root, intermediate } = nodePki();
    const { privateKey } = generateKeyPairSync('ed25519');
    const { chain, key } = nodeIdentity(intermediate, { privateKey });
    const attestor = createX509PopAttestor({ caBundle: [root.certificate] });
    await attestor.attest(payloadOf(chain), signer(key), { trustDomain: td, now: clock.now() });
  });

  it('accepts a chain that also carries the root, and a leaf issued by the root directly', async () => {
    const { clock, root, intermediate } = nodePki();
    const attestor = createX509PopAttestor({ caBundle: [root.certificate] });
    const ctx = { trustDomain: td, now: clock.now() };
    const a = nodeIdentity(intermediate);
    await attestor.attest(payloadOf([...a.chain, root.certificate]), signer(a.key), ctx);
    const b = nodeIdentity(root);
    const result = await attestor.attest(payloadOf(b.chain), signer(b.key), ctx);
    assert.deepEqual(
      result.selectors.filter((s) => s.value.startsWith('ca:')).map((s) => s.value),
      [`ca:fingerprint:${sha1(root.certificate)}`],
    );
  });

  it('refuses a signature made with another key', async () => {
    const { clock, root, intermediate } = nodePki();
    const { chain } = nodeIdentity(intermediate);
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const attestor = createX509PopAttestor({ caBundle: [root.certificate] });
    await refused(
      attestor.attest(payloadOf(chain), signer(other), { trustDomain: td, now: clock.now() }),
      'ERR_ATTESTATION_FAILED',
      /not a signature of this server's nonce with the certificate's key/,
    );
  });

  it('refuses a replayed response: a valid signature over another nonce', async () => {
    const { clock, root, intermediate } = nodePki();
    const { chain, key } = nodeIdentity(intermediate);
    const ctx = { trustDomain: td, now: clock.now() };
    let n = 0;
    const attestor = createX509PopAttestor({
      caBundle: [root.certificate],
      randomBytes: (size) => new Uint8Array(size).fill(++n),
    });
    // An eavesdropper recorded the first exchange…
    const honest = signer(key);
    let recorded: Uint8Array | undefined;
    await attestor.attest(
      payloadOf(chain),
      async (nonce) => {
        recorded = await honest(nonce);
        return recorded;
      },
      ctx,
    );
    // …and replays the response to the next challenge.
    await refused(
      attestor.attest(payloadOf(chain), async () => recorded as Uint8Array, ctx),
      'ERR_ATTESTATION_FAILED',
      /not a signature of this server's nonce/,
    );
  });

  it("refuses a response signed for another trust domain's server (no relaying between trust domains)", async () => {
    const { clock, root, intermediate } = nodePki();
    const { chain, key } = nodeIdentity(intermediate);
    const attestor = createX509PopAttestor({ caBundle: [root.certificate] });
    await refused(
      attestor.attest(payloadOf(chain), signer(key, 'other.org'), { trustDomain: td, now: clock.now() }),
      'ERR_ATTESTATION_FAILED',
      /not a signature/,
    );
  });

  it('refuses a certificate from another CA without sending a challenge', async () => {
    const { clock, root } = nodePki();
    const stranger = createTestCa({ trustDomain: 'nodes.corp', clock });
    const { chain } = nodeIdentity(stranger.createIntermediate());
    const attestor = createX509PopAttestor({ caBundle: [root.certificate] });
    await refused(
      attestor.attest(payloadOf(chain), neverChallenged, { trustDomain: td, now: clock.now() }),
      'ERR_ATTESTATION_FAILED',
      /does not lead to a CA in ca_bundle_path/,
    );
  });

  it('refuses a leaf whose signature is forged in the CA’s name', async () => {
    const { clock, root, intermediate } = nodePki();
    const { chain } = nodeIdentity(intermediate, { broken: { wrongSigner: true } });
    const attestor = createX509PopAttestor({ caBundle: [root.certificate] });
    await refused(
      attestor.attest(payloadOf(chain), neverChallenged, { trustDomain: td, now: clock.now() }),
      'ERR_ATTESTATION_FAILED',
      /does not lead to a CA/,
    );
  });

  it('refuses a chain without the intermediate it needs', async () => {
    const { clock, root, intermediate } = nodePki();
    const { chain } = nodeIdentity(intermediate);
    const attestor = createX509PopAttestor({ caBundle: [root.certificate] });
    await refused(
      attestor.attest(payloadOf(chain.slice(0, 1)), neverChallenged, { trustDomain: td, now: clock.now() }),
      'ERR_ATTESTATION_FAILED',
      /does not lead to a CA/,
    );
  });

  it('refuses an expired node certificate, judged by the context clock', async () => {
    const { clock, root, intermediate } = nodePki();
    const { chain, key } = nodeIdentity(intermediate, { ttlSeconds: 3600 });
    const attestor = createX509PopAttestor({ caBundle: [root.certificate] });
    await attestor.attest(payloadOf(chain), signer(key), { trustDomain: td, now: clock.now() });
    clock.advance(2 * HOUR);
    await refused(
      attestor.attest(payloadOf(chain), neverChallenged, { trustDomain: td, now: clock.now() }),
      'ERR_ATTESTATION_FAILED',
      /^certificate expired at 2030-01-01T01:00:00\.000Z$/,
    );
  });

  it('refuses a certificate that is not yet valid, and an expired intermediate', async () => {
    const { clock, root, intermediate } = nodePki();
    const attestor = createX509PopAttestor({ caBundle: [root.certificate] });
    const ctx = { trustDomain: td, now: clock.now() };
    const early = nodeIdentity(intermediate, { broken: { notYetValid: true } });
    await refused(
      attestor.attest(payloadOf(early.chain), neverChallenged, ctx),
      'ERR_ATTESTATION_FAILED',
      /not valid before/,
    );

    const shortLived = root.createIntermediate({ ttlSeconds: 2 * 3600 });
    const { chain } = nodeIdentity(shortLived, { ttlSeconds: 24 * 3600, broken: { notAfterBeyondCa: true } });
    await refused(
      attestor.attest(payloadOf(chain), neverChallenged, {
        trustDomain: td,
        now: new Date(START.getTime() + 3 * HOUR),
      }),
      'ERR_ATTESTATION_FAILED',
      /^certificate #1 expired at/,
    );
  });

  it('refuses a certificate whose key usage lacks digitalSignature', async () => {
    const { clock, root, intermediate } = nodePki();
    const { chain } = nodeIdentity(intermediate, { broken: { noDigitalSignature: true } });
    const attestor = createX509PopAttestor({ caBundle: [root.certificate] });
    await refused(
      attestor.attest(payloadOf(chain), neverChallenged, { trustDomain: td, now: clock.now() }),
      'ERR_ATTESTATION_FAILED',
      /lacks digitalSignature/,
    );
  });

  it('refuses a path longer than a CA’s pathLenConstraint allows', async () => {
    const { clock, root, intermediate } = nodePki({ pathLength: 0 });
    const { chain } = nodeIdentity(intermediate);
    const attestor = createX509PopAttestor({ caBundle: [root.certificate] });
    await refused(
      attestor.attest(payloadOf(chain), neverChallenged, { trustDomain: td, now: clock.now() }),
      'ERR_ATTESTATION_FAILED',
      /pathLenConstraint/,
    );
  });

  it('refuses a certificate with an unknown critical extension', async () => {
    const { clock, root, intermediate } = nodePki();
    const { chain } = nodeIdentity(intermediate, { broken: { unknownCriticalExtension: true } });
    const attestor = createX509PopAttestor({ caBundle: [root.certificate] });
    await refused(
      attestor.attest(payloadOf(chain), neverChallenged, { trustDomain: td, now: clock.now() }),
      'ERR_ATTESTATION_FAILED',
      /unknown critical extension/,
    );
  });

  it('refuses, quickly, a hostile chain of CA certificates that all issue each other', async () => {
    const { clock, root } = nodePki();
    // One name and one key: every certificate below verifies as issued by every other, so
    // an unbounded search would try ~15!/7! paths; the step budget ends it with a clear reason.
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const now = clock.now().getTime();
    const spec = {
      subject: [{ type: 'CN', value: 'Loop CA' }],
      publicKey: privateKey,
      notBefore: new Date(now - HOUR),
      notAfter: new Date(now + HOUR),
      basicConstraints: { ca: true },
      keyUsage: { usages: ['keyCertSign' as const, 'digitalSignature' as const] },
    };
    const issuer = new CertificateIssuer(new X509Certificate(selfSignCertificate(spec, privateKey)), privateKey);
    const loop = Array.from({ length: 16 }, () => issuer.issue(spec));
    const attestor = createX509PopAttestor({ caBundle: [root.certificate] });
    await refused(
      attestor.attest(Buffer.concat(loop), neverChallenged, { trustDomain: td, now: clock.now() }),
      'ERR_ATTESTATION_FAILED',
      /^certificate chain is too complex to validate$/,
    );
  });

  it('uses agent_path_template for the agent ID, refusing certificates that lack a value it names', async () => {
    const { clock, root, intermediate } = nodePki();
    const attestor = createX509PopAttestor({
      caBundle: [root.certificate],
      agentPathTemplate: '/cn/{{ .Subject.CommonName }}',
    });
    const ctx = { trustDomain: td, now: clock.now() };
    const named = nodeIdentity(intermediate);
    const result = await attestor.attest(payloadOf(named.chain), signer(named.key), ctx);
    assert.equal(result.agentId.toString(), 'spiffe://example.org/spire/agent/cn/node-1.corp');

    const anonymous = nodeIdentity(intermediate, { dnsNames: [] });
    await refused(
      attestor.attest(payloadOf(anonymous.chain), signer(anonymous.key), ctx),
      'ERR_ATTESTATION_FAILED',
      /uses \.Subject\.CommonName, which the certificate does not have/,
    );
    assert.throws(
      () => createX509PopAttestor({ caBundle: [root.certificate], agentPathTemplate: '{{ .Nope }}' }),
      TypeError,
    );
  });

  it('refuses malformed payloads as invalid data with a clear reason, before any challenge', async () => {
    const { clock, root, intermediate } = nodePki();
    const { chain } = nodeIdentity(intermediate);
    const attestor = createX509PopAttestor({ caBundle: [root.certificate] });
    const ctx = { trustDomain: td, now: clock.now() };
    const good = payloadOf(chain);
    const cases: [Uint8Array, RegExp][] = [
      [new Uint8Array(0), /payload is empty/],
      [Buffer.from('{"certificates":["MIIB"]}'), /certificate #0 \(byte 0\) is not a DER SEQUENCE/],
      [good.subarray(0, good.length - 1), /is truncated/],
      [Buffer.from([0x30, 0x80, 0x00, 0x00]), /unsupported length encoding/],
      [
        Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00]),
        /certificate #0 of the payload is not a valid DER X\.509 certificate/,
      ],
      [Buffer.concat([good, Buffer.from([0x00])]), /certificate #2 \(byte \d+\) is not a DER SEQUENCE/],
      [new Uint8Array(64 * 1024 + 1).fill(0x30), /larger than 65536 bytes/],
      [Buffer.concat(Array.from({ length: 17 }, () => (chain[0] as X509Certificate).raw)), /more than 16 certificates/],
    ];
    for (const [payload, reason] of cases) {
      await refused(attestor.attest(payload, neverChallenged, ctx), 'ERR_ATTESTATION_DATA_INVALID', reason);
    }
  });

  it('never fails with anything but an AttestationError on corrupted payloads and responses', async () => {
    const { clock, root, intermediate } = nodePki();
    const { chain, key } = nodeIdentity(intermediate);
    const attestor = createX509PopAttestor({ caBundle: [root.certificate] });
    const ctx = { trustDomain: td, now: clock.now() };
    const good = payloadOf(chain);
    const outcomes = async (payload: Uint8Array, challenge: ChallengeFn) => {
      try {
        await attestor.attest(payload, challenge, ctx);
      } catch (err) {
        assert.ok(err instanceof AttestationError, `unexpected ${String(err)}`);
      }
    };
    // Every truncation length and a byte flip every 7 bytes: framing, names, keys, signatures.
    for (let len = 0; len < good.length; len += 3) await outcomes(good.subarray(0, len), signer(key));
    for (let i = 0; i < good.length; i += 7) {
      const bad = Buffer.from(good);
      bad[i] = (bad[i] as number) ^ 0x5a;
      await outcomes(bad, signer(key));
    }
    const responses = [new Uint8Array(0), new Uint8Array(64), new Uint8Array(4096), Buffer.from('30450221', 'hex')];
    for (const response of responses) {
      await refused(
        attestor.attest(good, async () => response, ctx),
        /^ERR_ATTESTATION_(FAILED|DATA_INVALID)$/,
        /./,
      );
    }
  });
});
