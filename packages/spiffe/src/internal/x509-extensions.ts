/**
 * Strict DER decoders for the X.509 extension values SPIFFE rules read (RFC 5280
 * §4.2.1.1 authorityKeyIdentifier, §4.2.1.3 keyUsage, §4.2.1.6 subjectAltName,
 * §4.2.1.9 basicConstraints, §4.2.1.10 nameConstraints, §4.2.1.12 extKeyUsage).
 * Each takes the DER inside the extnValue OCTET STRING and returns plain values.
 *
 * Written by hand so that reading certificates needs no ASN.1 schema library: those
 * cost several MiB of resident memory in every process that checks a peer, and tens of
 * µs per extension. The rules are DER's and RFC 5280's: exactly one element with no
 * trailing bytes, the expected tags in the expected order, minimal lengths and
 * INTEGERs, BOOLEANs of 0x00 or 0xFF, BIT STRINGs with at most 7 zero padding bits,
 * IA5Strings of ASCII only, no empty SEQUENCE OF where the RFC says SIZE (1..MAX), IP
 * addresses of the lengths §4.2.1.6/§4.2.1.10 allow. Name forms SPIFFE does not use
 * (directoryName, otherName, …) are checked for well-formed DER and counted, not
 * interpreted. Three departures are kept because certificates in use carry them and
 * Go's crypto/x509 and OpenSSL accept them: an explicit cA FALSE, trailing zero bits in
 * keyUsage, and an empty subjectAltName (no names; a leaf then fails "exactly one URI
 * SAN", which is also what the test CA's `noUriSan` breakage relies on).
 *
 * Malformed input throws a `RangeError` naming the field and the rule it breaks.
 * @module
 */
import { decodeOid, expectTlv, readTlv, type Tlv } from './der.js';

const BOOLEAN = 0x01;
const INTEGER = 0x02;
const BIT_STRING = 0x03;
const OBJECT_IDENTIFIER = 0x06;
const SEQUENCE = 0x30;
const SET = 0x31;

/** One GeneralSubtree base of a nameConstraints extension. */
export interface NameSubtree {
  readonly form: 'uri' | 'dns' | 'other';
  /** The constraint value for `uri`/`dns`; a description for `other`. */
  readonly value: string;
}

/** The GeneralName alternatives (RFC 5280 §4.2.1.6), by their ASN.1 names. */
export type GeneralNameForm =
  | 'otherName'
  | 'rfc822Name'
  | 'dNSName'
  | 'x400Address'
  | 'directoryName'
  | 'ediPartyName'
  | 'uniformResourceIdentifier'
  | 'iPAddress'
  | 'registeredID';

export interface BasicConstraintsValue {
  readonly ca: boolean;
  readonly pathLength: number | undefined;
}

export interface SubjectAltNameValue {
  readonly uris: readonly string[];
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly otherCount: number;
}

export interface NameConstraintsValue {
  readonly permitted: readonly NameSubtree[];
  readonly excluded: readonly NameSubtree[];
}

// ---------------------------------------------------------------------------
// Reading helpers.

const hex = (tag: number) => `0x${tag.toString(16).padStart(2, '0')}`;

/** The one element `buf` holds, which must have `tag` and no bytes after it. */
function whole(buf: Uint8Array, tag: number, what: string): Tlv {
  const t = expectTlv(buf, 0, buf.length, tag, what);
  if (t.end !== buf.length) throw new RangeError(`${what}: trailing bytes after the DER element`);
  return t;
}

/** Walks the elements inside one constructed element, in order. */
class Cursor {
  #p: number;
  readonly #end: number;

  constructor(
    private readonly buf: Uint8Array,
    within: Tlv,
    private readonly what: string,
  ) {
    this.#p = within.start;
    this.#end = within.end;
  }

  get done(): boolean {
    return this.#p >= this.#end;
  }

  /** The next element, whatever its tag. */
  next(): Tlv {
    const t = readTlv(this.buf, this.#p, this.#end);
    this.#p = t.end;
    return t;
  }

  /** The next element, which must have `tag`. */
  expect(tag: number, what: string): Tlv {
    if (this.#p >= this.#end) throw new RangeError(`${what}: missing (expected DER tag ${hex(tag)})`);
    const t = expectTlv(this.buf, this.#p, this.#end, tag, what);
    this.#p = t.end;
    return t;
  }

  /** The next element if it has `tag` (an OPTIONAL or DEFAULT field), else undefined. */
  optional(tag: number, what: string): Tlv | undefined {
    return this.#p < this.#end && this.buf[this.#p] === tag ? this.expect(tag, what) : undefined;
  }

  /** Insists that every field has been read. */
  finish(): void {
    if (this.#p < this.#end) {
      throw new RangeError(`${this.what}: unexpected DER tag ${hex(this.buf[this.#p] as number)} after its last field`);
    }
  }
}

/** DER BOOLEAN: one byte, 0x00 or 0xFF (X.690 §11.1). */
function decodeBoolean(buf: Uint8Array, t: Tlv, what: string): boolean {
  const b = buf[t.start];
  if (t.end - t.start !== 1 || (b !== 0x00 && b !== 0xff)) {
    throw new RangeError(`${what}: a DER BOOLEAN is one byte, 0x00 or 0xFF`);
  }
  return b === 0xff;
}

/** Checks a DER INTEGER body: at least one byte, and no redundant leading 0x00/0xFF byte. */
function checkInteger(buf: Uint8Array, t: Tlv, what: string): void {
  if (t.end === t.start) throw new RangeError(`${what}: empty INTEGER`);
  if (t.end - t.start > 1) {
    const a = buf[t.start] as number;
    const b = buf[t.start + 1] as number;
    if ((a === 0x00 && b < 0x80) || (a === 0xff && b >= 0x80)) {
      throw new RangeError(`${what}: non-minimal INTEGER encoding`);
    }
  }
}

/** A non-negative DER INTEGER (e.g. `INTEGER (0..MAX)`) as a safe JavaScript integer. */
function decodeCount(buf: Uint8Array, t: Tlv, what: string): number {
  checkInteger(buf, t, what);
  if ((buf[t.start] as number) & 0x80) throw new RangeError(`${what}: must not be negative`);
  let n = 0;
  for (let i = t.start; i < t.end; i++) {
    n = n * 256 + (buf[i] as number);
    if (n > Number.MAX_SAFE_INTEGER) throw new RangeError(`${what}: too large`);
  }
  return n;
}

/** An IA5String body: ASCII only (X.680 §41). */
function decodeIa5(buf: Uint8Array, t: Tlv, what: string): string {
  for (let i = t.start; i < t.end; i++) {
    if ((buf[i] as number) > 0x7f) throw new RangeError(`${what}: byte ${hex(buf[i] as number)} is not IA5 (ASCII)`);
  }
  return Buffer.from(buf.buffer, buf.byteOffset + t.start, t.end - t.start).toString('latin1');
}

const MAX_NESTING = 32;

/** Universal constructed tags DER allows: EXTERNAL, EMBEDDED PDV, SEQUENCE, SET (strings are never constructed). */
const CONSTRUCTED_UNIVERSAL = new Set([0x28, 0x2b, SEQUENCE, SET]);

const UTF8 = new TextDecoder('utf-8', { fatal: true });
const UTC_TIME = /^\d{12}Z$/;
const GENERALIZED_TIME = /^\d{14}(?:\.\d*[1-9])?Z$/;

/** Checks a BIT STRING body: an unused-bits count of 0–7 (0 when empty) and zero padding bits. */
function checkBitString(buf: Uint8Array, t: Tlv, what: string): void {
  if (t.start === t.end) throw new RangeError(`${what}: a BIT STRING needs its unused-bits byte`);
  const unused = buf[t.start] as number;
  if (unused > 7) throw new RangeError(`${what}: ${unused} unused bits (at most 7)`);
  if (t.start + 1 === t.end) {
    if (unused !== 0) throw new RangeError(`${what}: an empty BIT STRING has 0 unused bits`);
  } else if (((buf[t.end - 1] as number) & ((1 << unused) - 1)) !== 0) {
    throw new RangeError(`${what}: the ${unused} unused bits must be zero`);
  }
}

/** Checks the body of a primitive universal-class element against its type's DER form. */
function checkUniversal(buf: Uint8Array, t: Tlv, what: string): void {
  const text = () => Buffer.from(buf.buffer, buf.byteOffset + t.start, t.end - t.start).toString('latin1');
  const length = t.end - t.start;
  switch (t.tag) {
    case 0x00:
      throw new RangeError(`${what}: DER does not allow end-of-contents (tag 0x00)`);
    case BOOLEAN:
      decodeBoolean(buf, t, what);
      return;
    case INTEGER:
    case 0x0a: // ENUMERATED
      checkInteger(buf, t, what);
      return;
    case BIT_STRING:
      checkBitString(buf, t, what);
      return;
    case 0x05: // NULL
      if (length !== 0) throw new RangeError(`${what}: NULL must be empty`);
      return;
    case OBJECT_IDENTIFIER:
      decodeOid(buf, t.start, t.end);
      return;
    case 0x0c: // UTF8String
      try {
        UTF8.decode(buf.subarray(t.start, t.end));
      } catch {
        throw new RangeError(`${what}: UTF8String is not valid UTF-8`);
      }
      return;
    case 0x10: // SEQUENCE and SET are always constructed
    case 0x11:
      throw new RangeError(`${what}: DER does not allow tag ${hex(t.tag)}`);
    case 0x12: // NumericString, PrintableString, IA5String, VisibleString: 7-bit characters
    case 0x13:
    case 0x16:
    case 0x1a:
      decodeIa5(buf, t, what);
      return;
    case 0x17:
      if (!UTC_TIME.test(text())) throw new RangeError(`${what}: UTCTime is not YYMMDDHHMMSSZ`);
      return;
    case 0x18:
      if (!GENERALIZED_TIME.test(text())) throw new RangeError(`${what}: GeneralizedTime is not YYYYMMDDHHMMSS[.f]Z`);
      return;
    case 0x1c: // UniversalString: UCS-4
      if (length % 4 !== 0) throw new RangeError(`${what}: UniversalString length must be a multiple of 4`);
      return;
    case 0x1e: // BMPString: UCS-2
      if (length % 2 !== 0) throw new RangeError(`${what}: BMPString length must be even`);
      return;
  }
}

/**
 * Checks that `start`…`end` holds a run of well-formed DER elements (for values whose
 * type we do not interpret, such as ANY): strict framing at every depth, no BER-only
 * forms (end-of-contents, constructed strings, primitive SEQUENCE/SET), and DER bodies
 * for the universal types (BOOLEAN, INTEGER, BIT STRING, NULL, OID, strings, times).
 */
function checkElements(buf: Uint8Array, start: number, end: number, what: string, depth = 0): void {
  if (depth > MAX_NESTING) throw new RangeError(`${what}: DER nested more than ${MAX_NESTING} deep`);
  let p = start;
  while (p < end) {
    const t = readTlv(buf, p, end);
    const universal = (t.tag & 0xc0) === 0;
    if (t.tag & 0x20) {
      if (universal && !CONSTRUCTED_UNIVERSAL.has(t.tag)) {
        throw new RangeError(`${what}: DER does not allow tag ${hex(t.tag)}`);
      }
      checkElements(buf, t.start, t.end, what, depth + 1);
    } else if (universal) {
      checkUniversal(buf, t, what);
    }
    p = t.end;
  }
}

/** Checks that `t`'s content is exactly one well-formed DER element (an EXPLICIT tag's content). */
function checkSingleElement(buf: Uint8Array, t: Tlv, what: string): void {
  if (t.start === t.end || readTlv(buf, t.start, t.end).end !== t.end) {
    throw new RangeError(`${what}: must hold exactly one DER element`);
  }
  checkElements(buf, t.start, t.end, what);
}

/** A directoryName's Name (RFC 5280 §4.1.2.4): SEQUENCE OF non-empty SET OF { type OID, value ANY }. */
function checkName(buf: Uint8Array, name: Tlv, what: string): void {
  const rdns = new Cursor(buf, name, what);
  while (!rdns.done) {
    const rdn = rdns.expect(SET, `${what} RelativeDistinguishedName`);
    if (rdn.start === rdn.end) throw new RangeError(`${what}: empty RelativeDistinguishedName (SIZE (1..MAX))`);
    const atvs = new Cursor(buf, rdn, what);
    while (!atvs.done) {
      const atv = new Cursor(buf, atvs.expect(SEQUENCE, `${what} AttributeTypeAndValue`), what);
      const type = atv.expect(OBJECT_IDENTIFIER, `${what} AttributeType`);
      decodeOid(buf, type.start, type.end);
      const value = atv.next();
      checkElements(buf, value.offset, value.end, what);
      atv.finish();
    }
  }
}

/**
 * An IPv4 (4 bytes) or IPv6 (16 bytes) address as text; IPv6 as RFC 5952 writes it
 * (lower-case hex, no leading zeros, the first longest run of two or more zero groups
 * as "::").
 */
function formatIp(buf: Uint8Array, start: number, end: number): string {
  if (end - start === 4) return `${buf[start]}.${buf[start + 1]}.${buf[start + 2]}.${buf[start + 3]}`;
  const groups: string[] = [];
  for (let i = start; i < end; i += 2) groups.push((((buf[i] as number) << 8) | (buf[i + 1] as number)).toString(16));
  let best = -1;
  let bestLength = 0;
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === '0') j++;
    if (j - i > bestLength) {
      best = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (bestLength < 2) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLength).join(':')}`;
}

interface GeneralNameValue {
  readonly form: GeneralNameForm;
  /** The text of a dNSName, uniformResourceIdentifier, rfc822Name or iPAddress (address names only). */
  readonly text: string | undefined;
}

/**
 * One GeneralName (RFC 5280 §4.2.1.6). `inSubtree` selects the iPAddress form of
 * §4.2.1.10 (address and mask: 8 or 32 bytes) instead of an address (4 or 16 bytes).
 */
function decodeGeneralName(buf: Uint8Array, t: Tlv, what: string, inSubtree: boolean): GeneralNameValue {
  switch (t.tag) {
    case 0xa0: {
      const c = new Cursor(buf, t, `${what} otherName`);
      const typeId = c.expect(OBJECT_IDENTIFIER, `${what} otherName.type-id`);
      decodeOid(buf, typeId.start, typeId.end);
      checkSingleElement(buf, c.expect(0xa0, `${what} otherName.value`), `${what} otherName.value`);
      c.finish();
      return { form: 'otherName', text: undefined };
    }
    case 0x81:
      return { form: 'rfc822Name', text: decodeIa5(buf, t, `${what} rfc822Name`) };
    case 0x82:
      return { form: 'dNSName', text: decodeIa5(buf, t, `${what} dNSName`) };
    case 0xa3:
      if (t.start === t.end) throw new RangeError(`${what} x400Address: empty ORAddress`);
      checkElements(buf, t.start, t.end, `${what} x400Address`);
      return { form: 'x400Address', text: undefined };
    case 0xa4: {
      const name = expectTlv(buf, t.start, t.end, SEQUENCE, `${what} directoryName`);
      if (name.end !== t.end) throw new RangeError(`${what} directoryName: must hold exactly one Name`);
      checkName(buf, name, `${what} directoryName`);
      return { form: 'directoryName', text: undefined };
    }
    case 0xa5: {
      const c = new Cursor(buf, t, `${what} ediPartyName`);
      const assigner = c.optional(0xa0, `${what} ediPartyName.nameAssigner`);
      if (assigner) checkSingleElement(buf, assigner, `${what} ediPartyName.nameAssigner`);
      checkSingleElement(buf, c.expect(0xa1, `${what} ediPartyName.partyName`), `${what} ediPartyName.partyName`);
      c.finish();
      return { form: 'ediPartyName', text: undefined };
    }
    case 0x86:
      return { form: 'uniformResourceIdentifier', text: decodeIa5(buf, t, `${what} uniformResourceIdentifier`) };
    case 0x87: {
      const length = t.end - t.start;
      if (inSubtree) {
        if (length !== 8 && length !== 32) {
          throw new RangeError(`${what} iPAddress: a constraint is 8 or 32 bytes (address and mask), found ${length}`);
        }
        return { form: 'iPAddress', text: undefined };
      }
      if (length !== 4 && length !== 16) {
        throw new RangeError(`${what} iPAddress: an address is 4 or 16 bytes, found ${length}`);
      }
      return { form: 'iPAddress', text: formatIp(buf, t.start, t.end) };
    }
    case 0x88:
      decodeOid(buf, t.start, t.end);
      return { form: 'registeredID', text: undefined };
    default:
      throw new RangeError(`${what}: DER tag ${hex(t.tag)} is not a GeneralName`);
  }
}

/**
 * GeneralNames: SEQUENCE SIZE (1..MAX) OF GeneralName, with `t` the SEQUENCE (or its
 * IMPLICIT tag). `allowEmpty` tolerates zero names (see the module comment).
 */
function decodeGeneralNames(buf: Uint8Array, t: Tlv, what: string, allowEmpty = false): GeneralNameValue[] {
  if (t.start === t.end && !allowEmpty) throw new RangeError(`${what}: GeneralNames must not be empty (SIZE (1..MAX))`);
  const names: GeneralNameValue[] = [];
  const c = new Cursor(buf, t, what);
  while (!c.done) names.push(decodeGeneralName(buf, c.next(), `${what}[${names.length}]`, false));
  return names;
}

// ---------------------------------------------------------------------------
// The extensions.

/** basicConstraints (RFC 5280 §4.2.1.9): SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER (0..MAX) OPTIONAL }. */
export function decodeBasicConstraints(value: Uint8Array): BasicConstraintsValue {
  const what = 'BasicConstraints';
  const c = new Cursor(value, whole(value, SEQUENCE, what), what);
  const ca = c.optional(BOOLEAN, `${what}.cA`);
  const pathLength = c.optional(INTEGER, `${what}.pathLenConstraint`);
  c.finish();
  return {
    ca: ca ? decodeBoolean(value, ca, `${what}.cA`) : false,
    pathLength: pathLength ? decodeCount(value, pathLength, `${what}.pathLenConstraint`) : undefined,
  };
}

/** Key usage bits past decipherOnly (bit 8) are undefined; more than 32 bits is not a keyUsage. */
const MAX_KEY_USAGE_BYTES = 4;

/**
 * keyUsage (RFC 5280 §4.2.1.3): a named BIT STRING, returned as a mask where bit n of
 * the BIT STRING (digitalSignature = 0) is 2^n.
 */
export function decodeKeyUsage(value: Uint8Array): number {
  const what = 'KeyUsage';
  const t = whole(value, BIT_STRING, what);
  checkBitString(value, t, what);
  const first = t.start + 1;
  if (t.end - first > MAX_KEY_USAGE_BYTES) {
    throw new RangeError(`${what}: ${t.end - first} bytes of bits (at most ${MAX_KEY_USAGE_BYTES})`);
  }
  let flags = 0;
  for (let i = first; i < t.end; i++) {
    const byte = value[i] as number;
    const base = (i - first) * 8;
    for (let bit = 0; bit < 8; bit++) if (byte & (0x80 >> bit)) flags += 2 ** (base + bit);
  }
  return flags;
}

/** extKeyUsage (RFC 5280 §4.2.1.12): SEQUENCE SIZE (1..MAX) OF KeyPurposeId, as dotted OIDs. */
export function decodeExtKeyUsage(value: Uint8Array): readonly string[] {
  const what = 'ExtKeyUsageSyntax';
  const seq = whole(value, SEQUENCE, what);
  if (seq.start === seq.end) throw new RangeError(`${what}: must hold at least one KeyPurposeId (SIZE (1..MAX))`);
  const purposes: string[] = [];
  const c = new Cursor(value, seq, what);
  while (!c.done) {
    const oid = c.expect(OBJECT_IDENTIFIER, `${what}[${purposes.length}]`);
    purposes.push(decodeOid(value, oid.start, oid.end));
  }
  return Object.freeze(purposes);
}

/** subjectAltName (RFC 5280 §4.2.1.6): GeneralNames (empty tolerated), sorted by the forms SPIFFE reads. */
export function decodeSubjectAltName(value: Uint8Array): SubjectAltNameValue {
  const what = 'SubjectAltName';
  const uris: string[] = [];
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  let otherCount = 0;
  for (const name of decodeGeneralNames(value, whole(value, SEQUENCE, what), what, true)) {
    if (name.form === 'uniformResourceIdentifier') uris.push(name.text as string);
    else if (name.form === 'dNSName') dnsNames.push(name.text as string);
    else if (name.form === 'iPAddress') ipAddresses.push(name.text as string);
    else otherCount++;
  }
  return { uris, dnsNames, ipAddresses, otherCount };
}

/** GeneralSubtrees: SEQUENCE SIZE (1..MAX) OF { base GeneralName, minimum [0] DEFAULT 0, maximum [1] OPTIONAL }. */
function decodeSubtrees(buf: Uint8Array, t: Tlv, what: string): NameSubtree[] {
  if (t.start === t.end) throw new RangeError(`${what}: GeneralSubtrees must not be empty (SIZE (1..MAX))`);
  const out: NameSubtree[] = [];
  const list = new Cursor(buf, t, what);
  while (!list.done) {
    const where = `${what}[${out.length}]`;
    const subtree = new Cursor(buf, list.expect(SEQUENCE, where), where);
    const base = decodeGeneralName(buf, subtree.next(), `${where}.base`, true);
    const minimum = subtree.optional(0x80, `${where}.minimum`);
    if (minimum) decodeCount(buf, minimum, `${where}.minimum`);
    const maximum = subtree.optional(0x81, `${where}.maximum`);
    if (maximum) decodeCount(buf, maximum, `${where}.maximum`);
    subtree.finish();
    if (base.form === 'uniformResourceIdentifier') out.push({ form: 'uri', value: base.text as string });
    else if (base.form === 'dNSName') out.push({ form: 'dns', value: base.text as string });
    else out.push({ form: 'other', value: base.form });
  }
  return out;
}

/**
 * nameConstraints (RFC 5280 §4.2.1.10): SEQUENCE { permittedSubtrees [0] OPTIONAL,
 * excludedSubtrees [1] OPTIONAL }, at least one present.
 */
export function decodeNameConstraints(value: Uint8Array): NameConstraintsValue {
  const what = 'NameConstraints';
  const c = new Cursor(value, whole(value, SEQUENCE, what), what);
  const permitted = c.optional(0xa0, `${what}.permittedSubtrees`);
  const excluded = c.optional(0xa1, `${what}.excludedSubtrees`);
  c.finish();
  if (!permitted && !excluded) {
    throw new RangeError(`${what}: must hold permittedSubtrees or excludedSubtrees (RFC 5280 §4.2.1.10)`);
  }
  return {
    permitted: permitted ? decodeSubtrees(value, permitted, `${what}.permittedSubtrees`) : [],
    excluded: excluded ? decodeSubtrees(value, excluded, `${what}.excludedSubtrees`) : [],
  };
}

/**
 * authorityKeyIdentifier (RFC 5280 §4.2.1.1): SEQUENCE { keyIdentifier [0] OPTIONAL,
 * authorityCertIssuer [1] GeneralNames OPTIONAL, authorityCertSerialNumber [2] OPTIONAL }.
 * Returns the keyIdentifier (a view into `value`), or undefined when absent.
 */
export function decodeAuthorityKeyIdentifier(value: Uint8Array): Uint8Array | undefined {
  const what = 'AuthorityKeyIdentifier';
  const c = new Cursor(value, whole(value, SEQUENCE, what), what);
  const keyId = c.optional(0x80, `${what}.keyIdentifier`);
  const issuer = c.optional(0xa1, `${what}.authorityCertIssuer`);
  const serial = c.optional(0x82, `${what}.authorityCertSerialNumber`);
  c.finish();
  if (issuer) decodeGeneralNames(value, issuer, `${what}.authorityCertIssuer`);
  if (serial) checkInteger(value, serial, `${what}.authorityCertSerialNumber`);
  return keyId ? value.subarray(keyId.start, keyId.end) : undefined;
}
