/**
 * A strict DER reader, just enough to walk a PKCS#10 request and a SubjectPublicKeyInfo
 * without a schema library (asn1-schema costs more than the signature check on the hot
 * path). Strict means: single-byte tags, definite lengths in their shortest form, every
 * element inside its container. Malformed input throws a RangeError naming the offset;
 * callers turn it into their own typed error.
 * @module
 */

/** One element: its tag and where its header and content are. */
export interface Tlv {
  readonly tag: number;
  /** Offset of the first header byte. */
  readonly offset: number;
  /** Offset of the first content byte. */
  readonly start: number;
  /** Offset just past the content. */
  readonly end: number;
}

export const TAG = {
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  sequence: 0x30,
  set: 0x31,
  context0: 0xa0,
} as const;

/** Reads the element at `offset`, which must end at or before `limit`. */
export function readTlv(buf: Uint8Array, offset: number, limit: number): Tlv {
  if (offset + 2 > limit) throw new RangeError(`truncated DER element at byte ${offset}`);
  const tag = buf[offset] as number;
  if ((tag & 0x1f) === 0x1f) throw new RangeError(`multi-byte DER tag at byte ${offset}`);
  let length = buf[offset + 1] as number;
  let start = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0) throw new RangeError(`indefinite length at byte ${offset} (BER, not DER)`);
    if (count > 3) throw new RangeError(`DER length at byte ${offset} is too large`);
    if (start + count > limit) throw new RangeError(`truncated DER length at byte ${offset}`);
    if (buf[start] === 0) throw new RangeError(`non-minimal DER length at byte ${offset}`);
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (buf[start + i] as number);
    if (length < 0x80) throw new RangeError(`non-minimal DER length at byte ${offset}`);
    start += count;
  }
  if (start + length > limit) throw new RangeError(`DER element at byte ${offset} runs past its container`);
  return { tag, offset, start, end: start + length };
}

/** Reads the element at `offset` and insists on `tag`; `what` names it in the error. */
export function expectTlv(buf: Uint8Array, offset: number, limit: number, tag: number, what: string): Tlv {
  const t = readTlv(buf, offset, limit);
  if (t.tag !== tag) {
    throw new RangeError(`${what}: expected DER tag 0x${hex2(tag)} at byte ${offset}, found 0x${hex2(t.tag)}`);
  }
  return t;
}

const hex2 = (n: number) => n.toString(16).padStart(2, '0');

/** Checks that [start, end) is a sequence of well-formed elements, recursing into constructed ones. */
export function checkDerElements(buf: Uint8Array, start: number, end: number, depth = 0): void {
  if (depth > 16) throw new RangeError(`DER nesting deeper than 16 levels at byte ${start}`);
  let p = start;
  while (p < end) {
    const t = readTlv(buf, p, end);
    if (t.tag & 0x20) checkDerElements(buf, t.start, t.end, depth + 1);
    p = t.end;
  }
}

/**
 * Checks a DER INTEGER's content is minimal and positive and returns the content without
 * its sign byte. `what` names it in the error.
 */
export function positiveInteger(buf: Uint8Array, t: Tlv, what: string): Uint8Array {
  if (t.end === t.start) throw new RangeError(`${what}: empty INTEGER`);
  const first = buf[t.start] as number;
  if (first & 0x80) throw new RangeError(`${what}: must be positive`);
  if (first === 0) {
    if (t.end - t.start === 1) throw new RangeError(`${what}: must be positive`);
    if (((buf[t.start + 1] as number) & 0x80) === 0) throw new RangeError(`${what}: non-minimal INTEGER`);
    return buf.subarray(t.start + 1, t.end);
  }
  return buf.subarray(t.start, t.end);
}

/** The dotted form of the OBJECT IDENTIFIER element `t` (for messages; nothing branches on it). */
export function oidText(buf: Uint8Array, t: Tlv): string {
  if (t.tag !== TAG.oid || t.end === t.start) return '(not an OID)';
  const arcs: number[] = [];
  let value = 0;
  for (let i = t.start; i < t.end; i++) {
    const b = buf[i] as number;
    value = value * 128 + (b & 0x7f);
    if (b & 0x80) continue;
    if (arcs.length === 0) arcs.push(value < 80 ? Math.floor(value / 40) : 2, value < 80 ? value % 40 : value - 80);
    else arcs.push(value);
    value = 0;
  }
  return arcs.join('.');
}
