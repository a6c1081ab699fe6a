/**
 * The hand-written extension decoders against @peculiar/asn1-x509, which decoded these
 * extensions before (tests may load it; shipped SDK code reading certificates may not):
 * - every extension of real certificates (the test CA, the certificate builder, the
 *   openssl command line) decodes to what @peculiar made of it;
 * - generated extensions (encoded by @peculiar) decode the same, and mutated ones are
 *   either rejected or decoded exactly as @peculiar decodes them (never more lenient);
 * - a table of malformed encodings, one DER or RFC 5280 rule each, is rejected.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AttributeTypeAndValue,
  AttributeValue,
  AuthorityKeyIdentifier,
  BasicConstraints,
  ExtendedKeyUsage,
  GeneralName,
  GeneralSubtree,
  GeneralSubtrees,
  KeyIdentifier,
  KeyUsage,
  Name,
  NameConstraints,
  OtherName,
  RelativeDistinguishedName,
  SubjectAlternativeName,
} from '@peculiar/asn1-x509';
import fc from 'fast-check';
import { createTestCa } from '../testing/test-ca.js';
import { CertificateIssuer, selfSignCertificate } from './certificate-builder.js';
import { readTlv } from './der.js';
import {
  decodeAuthorityKeyIdentifier,
  decodeBasicConstraints,
  decodeExtKeyUsage,
  decodeKeyUsage,
  decodeNameConstraints,
  decodeSubjectAltName,
} from './x509-extensions.js';
import { OID, x509Fields } from './x509-fields.js';

// ---------------------------------------------------------------------------
// The decoding x509-fields.ts did with @peculiar, verbatim, as the reference.

function peculiar<T>(value: Uint8Array, schema: new () => T): T {
  if (readTlv(value, 0).end !== value.length) throw new RangeError('trailing bytes');
  return AsnConvert.parse(value, schema);
}

function nameForm(name: GeneralName): { form: 'uri' | 'dns' | 'other'; value: string } {
  if (name.uniformResourceIdentifier !== undefined) return { form: 'uri', value: name.uniformResourceIdentifier };
  if (name.dNSName !== undefined) return { form: 'dns', value: name.dNSName };
  const kind = Object.keys(name).find((k) => (name as unknown as Record<string, unknown>)[k] !== undefined);
  return { form: 'other', value: kind ?? 'unknown' };
}

type Kind = 'bc' | 'ku' | 'eku' | 'san' | 'nc' | 'aki';

const before: Record<Kind, (value: Uint8Array) => unknown> = {
  bc: (v) => {
    const x = peculiar(v, BasicConstraints);
    // Four or more INTEGER bytes came out as a decimal string, which comparisons coerced.
    const pathLength = x.pathLenConstraint as number | string | undefined;
    return { ca: x.cA === true, pathLength: typeof pathLength === 'string' ? Number(pathLength) : pathLength };
  },
  // An empty BIT STRING came out as NaN, which every `flags & KU.x` test read as 0.
  ku: (v) => peculiar(v, KeyUsage).toNumber() || 0,
  eku: (v) => [...peculiar(v, ExtendedKeyUsage)],
  san: (v) => {
    const uris: string[] = [];
    const dnsNames: string[] = [];
    const ipAddresses: string[] = [];
    let otherCount = 0;
    for (const name of peculiar(v, SubjectAlternativeName)) {
      if (name.uniformResourceIdentifier !== undefined) uris.push(name.uniformResourceIdentifier);
      else if (name.dNSName !== undefined) dnsNames.push(name.dNSName);
      else if (name.iPAddress !== undefined) ipAddresses.push(name.iPAddress);
      else otherCount++;
    }
    return { uris, dnsNames, ipAddresses, otherCount };
  },
  nc: (v) => {
    const x = peculiar(v, NameConstraints);
    return {
      permitted: [...(x.permittedSubtrees ?? [])].map((s) => nameForm(s.base)),
      excluded: [...(x.excludedSubtrees ?? [])].map((s) => nameForm(s.base)),
    };
  },
  aki: (v) => {
    const keyId = peculiar(v, AuthorityKeyIdentifier).keyIdentifier;
    return keyId ? Buffer.from(keyId.buffer) : undefined;
  },
};

const after: Record<Kind, (value: Uint8Array) => unknown> = {
  bc: decodeBasicConstraints,
  ku: decodeKeyUsage,
  eku: (v) => [...decodeExtKeyUsage(v)],
  san: decodeSubjectAltName,
  nc: decodeNameConstraints,
  aki: (v) => {
    const keyId = decodeAuthorityKeyIdentifier(v);
    return keyId ? Buffer.from(keyId) : undefined;
  },
};

const kindOf: Record<string, Kind> = {
  [OID.basicConstraints]: 'bc',
  [OID.keyUsage]: 'ku',
  [OID.extKeyUsage]: 'eku',
  [OID.subjectAltName]: 'san',
  [OID.nameConstraints]: 'nc',
  [OID.authorityKeyIdentifier]: 'aki',
};

/** Checks every decodable extension of `cert` against @peculiar; returns the kinds seen. */
function compareCertificate(cert: X509Certificate, label: string): Set<Kind> {
  const seen = new Set<Kind>();
  for (const ext of x509Fields(cert).extensions.values()) {
    const kind = kindOf[ext.oid];
    if (!kind) continue;
    seen.add(kind);
    assert.deepEqual(after[kind](ext.value), before[kind](ext.value), `${label}: extension ${ext.oid}`);
  }
  return seen;
}

/** The same bytes must give the same answer, and we may only be stricter than @peculiar. */
function neverMoreLenient(kind: Kind, value: Uint8Array): void {
  let ours: unknown;
  try {
    ours = after[kind](value);
  } catch (err) {
    assert.ok(err instanceof RangeError, `${kind} ${Buffer.from(value).toString('hex')}: threw ${err}`);
    return;
  }
  let theirs: unknown;
  try {
    theirs = before[kind](value);
  } catch (err) {
    assert.fail(`${kind} ${Buffer.from(value).toString('hex')}: accepted, but @peculiar rejects it: ${err}`);
  }
  assert.deepEqual(ours, theirs, `${kind} ${Buffer.from(value).toString('hex')}`);
}

// ---------------------------------------------------------------------------
// Real certificates.

const NOW = new Date('2030-01-01T00:00:00Z');
const LATER = new Date('2031-01-01T00:00:00Z');

describe('extension decoders on real certificates give what @peculiar gave', () => {
  it('test-CA roots, intermediates (pathLength, name constraints) and SVIDs, intact and broken', () => {
    const seen = new Set<Kind>();
    const add = (kinds: Set<Kind>) => {
      for (const k of kinds) seen.add(k);
    };
    for (const keyType of ['ec-p256', 'ec-p384', 'rsa-2048'] as const) {
      const root = createTestCa({
        trustDomain: 'example.org',
        keyType,
        nameConstraints: { permittedUris: ['example.org'], excludedDns: ['bad.example.org', '.evil'] },
      });
      const inter = root.createIntermediate({ pathLength: 0, nameConstraints: { permittedDns: ['svc.local'] } });
      add(compareCertificate(root.certificate, `${keyType} root`));
      add(compareCertificate(inter.certificate, `${keyType} intermediate`));
      const svid = inter.issueX509Svid('spiffe://example.org/w', { dnsNames: ['w.svc.local', 'x.svc.local'] });
      for (const cert of svid.certificates) add(compareCertificate(cert, `${keyType} SVID`));
    }
    const ca = createTestCa({ trustDomain: 'example.org' });
    const breakages = [
      { extraUriSan: true },
      { noUriSan: true },
      { isCa: true },
      { keyCertSign: true },
      { cRLSign: true },
      { noDigitalSignature: true },
      { nonCriticalKeyUsage: true },
      { ekuServerOnly: true },
      { emptySubjectNonCriticalSan: true },
      { rootPathId: true },
    ];
    for (const broken of breakages) {
      const leaf = ca.issueX509SvidRaw('spiffe://example.org/w', { broken }).certificates[0] as X509Certificate;
      add(compareCertificate(leaf, JSON.stringify(broken)));
    }
    for (const broken of [{ notCa: true }, { noKeyCertSign: true }]) {
      add(compareCertificate(createTestCa({ trustDomain: 'example.org', broken }).certificate, JSON.stringify(broken)));
    }
    assert.deepEqual([...seen].sort(), ['aki', 'bc', 'eku', 'ku', 'nc', 'san']);
  });

  it('certificates from the builder with every key usage, many purposes, long names', () => {
    const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const caDer = selfSignCertificate(
      {
        subject: [{ type: 'O', value: 'Ext' }],
        publicKey: keys.publicKey,
        notBefore: NOW,
        notAfter: LATER,
        basicConstraints: { ca: true, pathLength: 300 },
        keyUsage: {
          usages: [
            'digitalSignature',
            'nonRepudiation',
            'keyEncipherment',
            'dataEncipherment',
            'keyAgreement',
            'keyCertSign',
            'cRLSign',
            'encipherOnly',
            'decipherOnly',
          ],
        },
        extendedKeyUsage: { purposes: [OID.serverAuth, OID.clientAuth, OID.anyExtendedKeyUsage, '1.2.840.113549.1.1'] },
        subjectAltName: { uris: [`spiffe://example.org/${'x'.repeat(300)}`], dnsNames: ['a.example', 'b.example'] },
      },
      keys.privateKey,
    );
    const ca = new X509Certificate(caDer);
    const seen = compareCertificate(ca, 'builder CA');
    const issuer = new CertificateIssuer(ca, keys.privateKey);
    for (const usage of ['decipherOnly', 'encipherOnly', 'cRLSign', 'nonRepudiation'] as const) {
      const leaf = new X509Certificate(
        issuer.issue({
          subject: [],
          publicKey: keys.publicKey,
          notBefore: NOW,
          notAfter: LATER,
          basicConstraints: { ca: false },
          keyUsage: { usages: [usage] },
          subjectAltName: { uris: ['spiffe://example.org/leaf'] },
        }),
      );
      for (const k of compareCertificate(leaf, usage)) seen.add(k);
    }
    assert.deepEqual([...seen].sort(), ['aki', 'bc', 'eku', 'ku', 'san']);
    assert.equal(x509Fields(ca).keyUsage?.flags, 511);
    assert.equal(x509Fields(ca).basicConstraints?.pathLength, 300);
  });

  const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
  it('certificates from the openssl command line: IP, email, directoryName, otherName and RID names, issuer+serial AKIs', {
    skip: hasOpenssl ? false : 'the openssl command is not installed',
  }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'steeple-ext-'));
    const openssl = (...args: string[]) =>
      execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      openssl(
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        'ca.key',
        '-out',
        'ca.pem',
        '-subj',
        '/O=OpenSSL Ext/CN=ca',
        '-days',
        '2',
        '-addext',
        'basicConstraints=critical,CA:TRUE,pathlen:7',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
        '-addext',
        'subjectAltName=URI:spiffe://example.org,IP:10.1.2.3,IP:2001:db8::1,email:ca@example.org,RID:1.2.3.4',
        '-addext',
        'nameConstraints=critical,permitted;URI:example.org,permitted;DNS:.svc.local,permitted;IP:10.0.0.0/255.0.0.0,excluded;email:.example.com,excluded;dirName:dir_sect,excluded;IP:fe80::/ffff::',
        '-config',
        writeConfig(dir),
      );
      openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'leaf.key');
      openssl('req', '-new', '-key', 'leaf.key', '-subj', '/O=OpenSSL Leaf', '-out', 'leaf.csr');
      const leafExtensions = [
        [
          'basicConstraints=critical,CA:FALSE',
          'keyUsage=critical,digitalSignature,keyEncipherment,keyAgreement,encipherOnly,decipherOnly',
          'extendedKeyUsage=serverAuth,clientAuth,codeSigning,emailProtection,timeStamping,OCSPSigning,1.3.6.1.4.1.99999.1',
          'subjectAltName=URI:spiffe://example.org/web,DNS:web.svc.local,IP:::,IP:0:0:1:0:0:1:0:0,IP:1:0:0:2:0:0:0:3,otherName:1.3.6.1.4.1.311.20.2.3;UTF8:user@example.org,dirName:dir_sect',
          'authorityKeyIdentifier=keyid:always,issuer:always',
        ],
        ['basicConstraints=CA:FALSE', 'keyUsage=digitalSignature', 'subjectAltName=IP:255.255.255.255,DNS:*.svc.local'],
      ];
      const seen = compareCertificate(new X509Certificate(readFileSync(join(dir, 'ca.pem'))), 'openssl CA');
      for (const [i, lines] of leafExtensions.entries()) {
        writeFileSync(join(dir, 'ext.cnf'), `${lines.join('\n')}\n[dir_sect]\nO=Dir\nCN=Name\n`);
        openssl(
          'x509',
          '-req',
          '-in',
          'leaf.csr',
          '-CA',
          'ca.pem',
          '-CAkey',
          'ca.key',
          '-days',
          '1',
          '-extfile',
          'ext.cnf',
          '-out',
          `leaf${i}.pem`,
        );
        const leaf = new X509Certificate(readFileSync(join(dir, `leaf${i}.pem`)));
        for (const k of compareCertificate(leaf, `openssl leaf ${i}`)) seen.add(k);
      }
      assert.deepEqual([...seen].sort(), ['aki', 'bc', 'eku', 'ku', 'nc', 'san']);
      const ca = x509Fields(new X509Certificate(readFileSync(join(dir, 'ca.pem'))));
      assert.deepEqual(ca.subjectAltName?.ipAddresses, ['10.1.2.3', '2001:db8::1']);
      assert.equal(ca.subjectAltName?.otherCount, 2);
      assert.deepEqual(
        ca.nameConstraints?.excluded.map((s) => s.value),
        ['rfc822Name', 'directoryName', 'iPAddress'],
      );
      const leaf = x509Fields(new X509Certificate(readFileSync(join(dir, 'leaf0.pem'))));
      assert.deepEqual(leaf.subjectAltName?.ipAddresses, ['::', '::1:0:0:1:0:0', '1:0:0:2::3']);
      assert.deepEqual(leaf.authorityKeyIdentifier, ca.subjectKeyIdentifier);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** An openssl config whose [dir_sect] the CA's nameConstraints refer to. */
function writeConfig(dir: string): string {
  const path = join(dir, 'req.cnf');
  writeFileSync(path, '[req]\ndistinguished_name=dn\n[dn]\n[dir_sect]\nO=Excluded\nCN=Somebody\n');
  return path;
}

// ---------------------------------------------------------------------------
// Generated extensions, encoded by @peculiar.

const arc = fc.oneof(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 2 ** 32 }));
const oid = fc
  .tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 39 }), fc.array(arc, { maxLength: 6 }))
  .map(([a, b, rest]) => [a, b, ...rest].join('.'));
const ascii = fc.string({
  unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
  maxLength: 40,
});
const ipv4 = fc.uint8Array({ minLength: 4, maxLength: 4 }).map((b) => [...b].join('.'));
const ipv6 = fc
  .array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 })
  .map((g) => g.map((n) => n.toString(16)).join(':'));
const name = fc
  .array(fc.tuple(fc.constantFrom('2.5.4.3', '2.5.4.10', '2.5.4.11'), ascii), { maxLength: 3 })
  .map(
    (attrs) =>
      new Name(
        attrs.map(
          ([type, value]) =>
            new RelativeDistinguishedName([
              new AttributeTypeAndValue({ type, value: new AttributeValue({ utf8String: value }) }),
            ]),
        ),
      ),
  );

/** GeneralNames of every form; `inSubtree` gives IP constraints (address and mask) instead of addresses. */
const generalName = (inSubtree: boolean) =>
  fc.oneof(
    { weight: 4, arbitrary: ascii.map((uniformResourceIdentifier) => new GeneralName({ uniformResourceIdentifier })) },
    { weight: 4, arbitrary: ascii.map((dNSName) => new GeneralName({ dNSName })) },
    {
      weight: 2,
      arbitrary: (inSubtree
        ? fc.oneof(
            fc.tuple(ipv4, fc.integer({ min: 0, max: 32 })).map(([a, p]) => `${a}/${p}`),
            fc.tuple(ipv6, fc.integer({ min: 0, max: 128 })).map(([a, p]) => `${a}/${p}`),
          )
        : fc.oneof(ipv4, ipv6)
      ).map((iPAddress) => new GeneralName({ iPAddress })),
    },
    { weight: 1, arbitrary: ascii.map((rfc822Name) => new GeneralName({ rfc822Name })) },
    { weight: 1, arbitrary: oid.map((registeredID) => new GeneralName({ registeredID })) },
    { weight: 1, arbitrary: name.map((directoryName) => new GeneralName({ directoryName })) },
    {
      weight: 1,
      arbitrary: fc.tuple(oid, ascii).map(
        ([typeId, text]) =>
          new GeneralName({
            otherName: new OtherName({ typeId, value: AsnConvert.serialize(new AttributeValue({ utf8String: text })) }),
          }),
      ),
    },
  );

const subtrees = fc
  .array(generalName(true), { minLength: 1, maxLength: 4 })
  .map((bases) => new GeneralSubtrees(bases.map((base) => new GeneralSubtree({ base }))));

const encode = (value: object) => new Uint8Array(AsnConvert.serialize(value));

const generated: Record<Kind, fc.Arbitrary<Uint8Array>> = {
  bc: fc
    .record({ cA: fc.boolean(), pathLen: fc.option(fc.oneof(fc.nat(300), fc.nat()), { nil: undefined }) })
    .map(({ cA, pathLen }) => {
      const v = new BasicConstraints({ cA });
      if (pathLen !== undefined) v.pathLenConstraint = pathLen;
      return encode(v);
    }),
  ku: fc.integer({ min: 1, max: 511 }).map((flags) => encode(new KeyUsage(flags))),
  eku: fc.array(oid, { minLength: 1, maxLength: 6 }).map((oids) => encode(new ExtendedKeyUsage(oids))),
  san: fc
    .array(generalName(false), { minLength: 1, maxLength: 6 })
    .map((names) => encode(new SubjectAlternativeName(names))),
  nc: fc
    .record({ permitted: fc.option(subtrees, { nil: undefined }), excluded: fc.option(subtrees, { nil: undefined }) })
    .filter((r) => r.permitted !== undefined || r.excluded !== undefined)
    .map(({ permitted, excluded }) => {
      const v = new NameConstraints();
      if (permitted) v.permittedSubtrees = permitted;
      if (excluded) v.excludedSubtrees = excluded;
      return encode(v);
    }),
  aki: fc
    .record({
      keyId: fc.option(fc.uint8Array({ maxLength: 32 }), { nil: undefined }),
      issuer: fc.option(fc.array(generalName(false), { minLength: 1, maxLength: 2 }), { nil: undefined }),
      serial: fc.option(fc.uint8Array({ minLength: 1, maxLength: 20 }), { nil: undefined }),
    })
    .map(({ keyId, issuer, serial }) => {
      const v = new AuthorityKeyIdentifier();
      if (keyId) v.keyIdentifier = new KeyIdentifier(keyId);
      if (issuer && serial) {
        v.authorityCertIssuer = issuer;
        // A positive, minimal INTEGER body.
        const body = serial.subarray(
          serial.findIndex((b) => b !== 0) === -1 ? serial.length - 1 : serial.findIndex((b) => b !== 0),
        );
        v.authorityCertSerialNumber = (
          (body[0] as number) & 0x80 ? Uint8Array.of(0, ...body) : Uint8Array.from(body)
        ).buffer;
      }
      return encode(v);
    }),
};

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'cut'; at: number }
  | { kind: 'insert'; at: number; byte: number }
  | { kind: 'delete'; at: number }
  | { kind: 'set'; at: number; byte: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: fc.nat(255) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('set' as const),
    at: fc.nat(),
    byte: fc.constantFrom(
      0x00,
      0x01,
      0x02,
      0x03,
      0x04,
      0x05,
      0x06,
      0x30,
      0x31,
      0x7f,
      0x80,
      0x81,
      0x82,
      0x86,
      0x87,
      0xa0,
      0xa1,
      0xa4,
      0xff,
    ),
  }),
);

function mutate(value: Uint8Array, m: Mutation): Uint8Array {
  const at = m.at % (value.length + 1);
  const bytes = [...value];
  switch (m.kind) {
    case 'flip':
      if (at < bytes.length) bytes[at] = (bytes[at] as number) ^ (1 << m.bit);
      break;
    case 'cut':
      bytes.length = at;
      break;
    case 'insert':
      bytes.splice(at, 0, m.byte);
      break;
    case 'delete':
      bytes.splice(at, 1);
      break;
    case 'set':
      if (at < bytes.length) bytes[at] = m.byte;
      break;
  }
  return Uint8Array.from(bytes);
}

describe('extension decoders against @peculiar on generated extensions', { timeout: 120_000 }, () => {
  for (const kind of Object.keys(generated) as Kind[]) {
    it(`${kind}: well-formed encodings decode the same`, () => {
      fc.assert(
        fc.property(generated[kind], (value) => {
          assert.deepEqual(after[kind](value), before[kind](value));
        }),
        { numRuns: 400 },
      );
    });

    it(`${kind}: mutated encodings are rejected with a RangeError or decoded as @peculiar decodes them`, () => {
      fc.assert(
        fc.property(generated[kind], fc.array(mutation, { minLength: 1, maxLength: 3 }), (value, mutations) => {
          neverMoreLenient(kind, mutations.reduce(mutate, value));
        }),
        { numRuns: 1500 },
      );
    });
  }
});

// ---------------------------------------------------------------------------
// Malformed encodings, one rule each.

const h = (hex: string) => Buffer.from(hex.replace(/\s+/g, ''), 'hex');

describe('extension decoders reject malformed DER', () => {
  const cases: [string, (v: Uint8Array) => unknown, string, RegExp][] = [
    // BasicConstraints
    ['BC: truncated', decodeBasicConstraints, '30 06 01 01 ff 02 01', /runs past|truncated/],
    ['BC: trailing bytes', decodeBasicConstraints, '30 03 01 01 ff 00', /trailing bytes/],
    ['BC: wrong outer tag', decodeBasicConstraints, '31 03 01 01 ff', /expected DER tag 0x30/],
    ['BC: long-form length for a short value', decodeBasicConstraints, '30 81 03 01 01 ff', /non-minimal DER length/],
    ['BC: indefinite length', decodeBasicConstraints, '30 80 01 01 ff 00 00', /unsupported DER length form/],
    ['BC: BOOLEAN 0x01', decodeBasicConstraints, '30 03 01 01 01', /0x00 or 0xFF/],
    ['BC: two-byte BOOLEAN', decodeBasicConstraints, '30 04 01 02 ff ff', /0x00 or 0xFF/],
    ['BC: negative pathLen', decodeBasicConstraints, '30 06 01 01 ff 02 01 ff', /negative/],
    ['BC: non-minimal pathLen', decodeBasicConstraints, '30 07 01 01 ff 02 02 00 01', /non-minimal INTEGER/],
    ['BC: empty pathLen', decodeBasicConstraints, '30 05 01 01 ff 02 00', /empty INTEGER/],
    ['BC: pathLen before cA', decodeBasicConstraints, '30 06 02 01 00 01 01 ff', /unexpected DER tag 0x01/],
    ['BC: an extra field', decodeBasicConstraints, '30 05 01 01 ff 05 00', /unexpected DER tag 0x05/],
    ['BC: multi-byte tag', decodeBasicConstraints, '30 04 1f 01 01 00', /unexpected DER tag 0x1f/],
    // KeyUsage
    ['KU: unused bits > 7', decodeKeyUsage, '03 02 08 80', /8 unused bits/],
    ['KU: non-zero padding', decodeKeyUsage, '03 02 07 81', /unused bits must be zero/],
    ['KU: unused bits in an empty BIT STRING', decodeKeyUsage, '03 01 03', /empty BIT STRING has 0 unused/],
    ['KU: no unused-bits byte', decodeKeyUsage, '03 00', /unused-bits byte/],
    ['KU: wrong tag', decodeKeyUsage, '04 02 07 80', /expected DER tag 0x3/],
    ['KU: constructed BIT STRING', decodeKeyUsage, '23 04 03 02 07 80', /expected DER tag 0x3/],
    ['KU: trailing bytes', decodeKeyUsage, '03 02 07 80 00', /trailing bytes/],
    ['KU: truncated', decodeKeyUsage, '03 03 07 80', /runs past/],
    ['KU: more than 32 bits', decodeKeyUsage, '03 06 00 80 00 00 00 00', /at most 4/],
    // ExtKeyUsage
    ['EKU: empty SEQUENCE', decodeExtKeyUsage, '30 00', /at least one KeyPurposeId/],
    ['EKU: a non-OID purpose', decodeExtKeyUsage, '30 03 02 01 01', /expected DER tag 0x6/],
    ['EKU: truncated OID', decodeExtKeyUsage, '30 04 06 02 2b 86', /truncated OBJECT IDENTIFIER/],
    ['EKU: non-minimal OID arc', decodeExtKeyUsage, '30 05 06 03 2b 80 01', /non-minimal OBJECT IDENTIFIER/],
    ['EKU: empty OID', decodeExtKeyUsage, '30 02 06 00', /empty OBJECT IDENTIFIER/],
    ['EKU: trailing bytes', decodeExtKeyUsage, '30 05 06 03 2b 06 01 00', /trailing bytes/],
    // SubjectAltName
    ['SAN: unknown GeneralName tag', decodeSubjectAltName, '30 03 89 01 61', /0x89 is not a GeneralName/],
    ['SAN: constructed URI', decodeSubjectAltName, '30 05 a6 03 16 01 61', /0xa6 is not a GeneralName/],
    ['SAN: non-ASCII URI', decodeSubjectAltName, '30 03 86 01 e9', /not IA5/],
    ['SAN: non-ASCII dNSName', decodeSubjectAltName, '30 03 82 01 ff', /not IA5/],
    ['SAN: 5-byte iPAddress', decodeSubjectAltName, '30 07 87 05 01 02 03 04 05', /4 or 16 bytes, found 5/],
    ['SAN: 8-byte iPAddress', decodeSubjectAltName, '30 0a 87 08 0a 00 00 00 ff 00 00 00', /4 or 16 bytes, found 8/],
    ['SAN: truncated name', decodeSubjectAltName, '30 03 86 05 61', /runs past/],
    ['SAN: long-form length', decodeSubjectAltName, '30 04 86 81 01 61', /non-minimal DER length/],
    ['SAN: otherName without value', decodeSubjectAltName, '30 07 a0 05 06 03 2b 06 01', /otherName.value: missing/],
    [
      'SAN: otherName with two values',
      decodeSubjectAltName,
      '30 0d a0 0b 06 03 2b 06 01 a0 04 05 00 05 00',
      /exactly one DER element/,
    ],
    [
      'SAN: otherName value with trailing field',
      decodeSubjectAltName,
      '30 0d a0 0b 06 03 2b 06 01 a0 02 05 00 05 00',
      /unexpected DER tag 0x05/,
    ],
    ['SAN: directoryName not a Name', decodeSubjectAltName, '30 04 a4 02 31 00', /expected DER tag 0x30/],
    [
      'SAN: directoryName with an empty RDN',
      decodeSubjectAltName,
      '30 06 a4 04 30 02 31 00',
      /empty RelativeDistinguishedName/,
    ],
    [
      'SAN: constructed string in a directoryName',
      decodeSubjectAltName,
      '30 11 a4 0f 30 0d 31 0b 30 09 06 03 55 04 03 2c 02 0c 00',
      /does not allow tag 0x2c/,
    ],
    ['SAN: multi-byte tag', decodeSubjectAltName, '30 03 9f 01 61', /multi-byte/],
    [
      'SAN: otherName value with bad UTF-8',
      decodeSubjectAltName,
      '30 0c a0 0a 06 03 2b 06 01 a0 03 0c 01 ff',
      /not valid UTF-8/,
    ],
    [
      'SAN: otherName value with an odd-length BMPString',
      decodeSubjectAltName,
      '30 0c a0 0a 06 03 2b 06 01 a0 03 1e 01 00',
      /BMPString/,
    ],
    [
      'SAN: otherName value with a non-minimal INTEGER',
      decodeSubjectAltName,
      '30 0d a0 0b 06 03 2b 06 01 a0 04 02 02 00 01',
      /non-minimal INTEGER/,
    ],
    [
      'SAN: otherName value with a bad UTCTime',
      decodeSubjectAltName,
      '30 0d a0 0b 06 03 2b 06 01 a0 04 17 02 39 39',
      /UTCTime/,
    ],
    [
      'SAN: otherName value with a constructed OCTET STRING',
      decodeSubjectAltName,
      '30 0f a0 0d 06 03 2b 06 01 a0 06 24 04 04 02 61 62',
      /does not allow tag 0x24/,
    ],
    ['SAN: registeredID with a bad OID', decodeSubjectAltName, '30 03 88 01 80', /OBJECT IDENTIFIER/],
    ['SAN: ediPartyName without partyName', decodeSubjectAltName, '30 06 a5 04 a0 02 0c 00', /partyName: missing/],
    ['SAN: empty x400Address', decodeSubjectAltName, '30 02 a3 00', /empty ORAddress/],
    ['SAN: trailing bytes', decodeSubjectAltName, '30 03 86 01 61 00', /trailing bytes/],
    ['SAN: wrong outer tag', decodeSubjectAltName, '31 03 86 01 61', /expected DER tag 0x30/],
    // NameConstraints
    ['NC: empty SEQUENCE', decodeNameConstraints, '30 00', /permittedSubtrees or excludedSubtrees/],
    ['NC: empty permittedSubtrees', decodeNameConstraints, '30 02 a0 00', /must not be empty/],
    ['NC: empty excludedSubtrees', decodeNameConstraints, '30 02 a1 00', /must not be empty/],
    [
      'NC: excluded before permitted',
      decodeNameConstraints,
      '30 0e a1 05 30 03 82 01 61 a0 05 30 03 82 01 62',
      /unexpected DER tag 0xa0/,
    ],
    ['NC: primitive [0]', decodeNameConstraints, '30 07 80 05 30 03 82 01 61', /unexpected DER tag 0x80/],
    ['NC: subtree not a SEQUENCE', decodeNameConstraints, '30 07 a0 05 31 03 82 01 61', /expected DER tag 0x30/],
    ['NC: empty subtree', decodeNameConstraints, '30 04 a0 02 30 00', /truncated/],
    ['NC: negative minimum', decodeNameConstraints, '30 0a a0 08 30 06 82 01 61 80 01 ff', /negative/],
    ['NC: non-minimal maximum', decodeNameConstraints, '30 0b a0 09 30 07 82 01 61 81 02 00 05', /non-minimal INTEGER/],
    ['NC: extra subtree field', decodeNameConstraints, '30 09 a0 07 30 05 82 01 61 05 00', /unexpected DER tag 0x05/],
    ['NC: 4-byte IP constraint', decodeNameConstraints, '30 0a a0 08 30 06 87 04 0a 00 00 00', /8 or 32 bytes/],
    ['NC: non-ASCII dNSName', decodeNameConstraints, '30 07 a0 05 30 03 82 01 80', /not IA5/],
    // AuthorityKeyIdentifier
    ['AKI: wrong outer tag', decodeAuthorityKeyIdentifier, '04 02 80 00', /expected DER tag 0x30/],
    ['AKI: constructed keyIdentifier', decodeAuthorityKeyIdentifier, '30 04 a0 02 04 00', /unexpected DER tag 0xa0/],
    ['AKI: fields out of order', decodeAuthorityKeyIdentifier, '30 06 82 01 01 80 01 01', /unexpected DER tag 0x80/],
    ['AKI: empty authorityCertIssuer', decodeAuthorityKeyIdentifier, '30 05 a1 00 82 01 01', /must not be empty/],
    [
      'AKI: bad authorityCertIssuer name',
      decodeAuthorityKeyIdentifier,
      '30 08 a1 03 89 01 61 82 01 01',
      /not a GeneralName/,
    ],
    ['AKI: empty serial', decodeAuthorityKeyIdentifier, '30 02 82 00', /empty INTEGER/],
    ['AKI: non-minimal serial', decodeAuthorityKeyIdentifier, '30 04 82 02 00 01', /non-minimal INTEGER/],
    ['AKI: trailing bytes', decodeAuthorityKeyIdentifier, '30 03 80 01 01 00', /trailing bytes/],
    ['AKI: truncated', decodeAuthorityKeyIdentifier, '30 03 80 02 01', /runs past/],
  ];

  for (const [title, decode, hex, message] of cases) {
    it(title, () => {
      assert.throws(
        () => decode(h(hex)),
        (err: unknown) => err instanceof RangeError && message.test(err.message),
        `${hex} should be rejected matching ${message}`,
      );
    });
  }

  it('accepts the DER departures real certificates carry: explicit cA FALSE, KU zero bits, empty SAN', () => {
    assert.deepEqual(decodeBasicConstraints(h('30 03 01 01 00')), { ca: false, pathLength: undefined });
    assert.deepEqual(decodeBasicConstraints(h('30 00')), { ca: false, pathLength: undefined });
    assert.equal(decodeKeyUsage(h('03 03 00 80 00')), 1);
    assert.equal(decodeKeyUsage(h('03 01 00')), 0);
    assert.deepEqual(decodeSubjectAltName(h('30 00')), { uris: [], dnsNames: [], ipAddresses: [], otherCount: 0 });
    assert.equal(decodeAuthorityKeyIdentifier(h('30 00')), undefined);
    assert.equal(decodeAuthorityKeyIdentifier(h('30 02 80 00'))?.length, 0);
  });

  it('rejects nesting too deep to be a name', () => {
    // 40 SEQUENCEs deep, in 82 bytes (short-form lengths throughout).
    let nested = h('05 00');
    for (let i = 0; i < 40; i++) nested = Buffer.concat([Buffer.from([0x30, nested.length]), nested]);
    const otherName = Buffer.concat([h('06 03 2b 06 01'), Buffer.from([0xa0, nested.length]), nested]);
    const san = Buffer.concat([Buffer.from([0x30, otherName.length + 2, 0xa0, otherName.length]), otherName]);
    assert.throws(() => decodeSubjectAltName(san), /nested more than 32 deep/);
  });

  it('x509Fields names the extension when its value is malformed', () => {
    const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const ca = new X509Certificate(
      selfSignCertificate(
        {
          subject: [{ type: 'O', value: 'x' }],
          publicKey: keys.publicKey,
          notBefore: NOW,
          notAfter: LATER,
          basicConstraints: { ca: true },
          keyUsage: { usages: ['keyCertSign'] },
        },
        keys.privateKey,
      ),
    );
    const issuer = new CertificateIssuer(ca, keys.privateKey);
    const bad: [string, string][] = [
      [OID.keyUsage, '03 02 08 80'],
      [OID.extKeyUsage, '30 00'],
      [OID.subjectAltName, '30 03 86 01 e9'],
      [OID.nameConstraints, '30 00'],
      [OID.basicConstraints, '30 03 01 01 01'],
    ];
    for (const [oid, hex] of bad) {
      const cert = new X509Certificate(
        issuer.issue({
          subject: [{ type: 'O', value: 'x' }],
          publicKey: keys.publicKey,
          notBefore: NOW,
          notAfter: LATER,
          extensions: [{ oid, critical: true, value: h(hex) }],
        }),
      );
      assert.throws(
        () => x509Fields(cert),
        (err: unknown) => err instanceof RangeError && err.message.startsWith(`extension ${oid} is malformed: `),
        oid,
      );
    }
    // authorityKeyIdentifier is decoded on first access.
    const cert = new X509Certificate(
      issuer.issue({
        subject: [{ type: 'O', value: 'x' }],
        publicKey: keys.publicKey,
        notBefore: NOW,
        notAfter: LATER,
        authorityKeyIdentifier: false,
        extensions: [{ oid: OID.authorityKeyIdentifier, critical: false, value: h('30 04 82 02 00 01') }],
      }),
    );
    const f = x509Fields(cert);
    assert.throws(() => f.authorityKeyIdentifier, /extension 2\.5\.29\.35 is malformed: .*non-minimal INTEGER/);
  });
});
