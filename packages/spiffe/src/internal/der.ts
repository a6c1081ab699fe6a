/**
 * Minimal DER framing: splitting concatenated DER certificates (the Workload API's
 * encoding) without parsing them, and a strict element reader that the certificate
 * and extension decoders (x509-fields.ts, x509-extensions.ts) are built on. Throws
 * RangeError on malformed framing; callers wrap it in their own typed error.
 * @module
 */

/** Returns the total length (header + content) of the DER element starting at `offset`. */
export function derElementLength(buf: Uint8Array, offset: number): number {
  if (offset + 2 > buf.length) throw new RangeError(`truncated DER header at byte ${offset}`);
  const first = buf[offset + 1] as number;
  if (first < 0x80) return 2 + first;
  const count = first & 0x7f;
  if (count === 0 || count > 4) throw new RangeError(`unsupported DER length form at byte ${offset}`);
  if (offset + 2 + count > buf.length) throw new RangeError(`truncated DER length at byte ${offset}`);
  let len = 0;
  for (let i = 0; i < count; i++) len = len * 256 + (buf[offset + 2 + i] as number);
  if (len < 0x80 || (count > 1 && (buf[offset + 2] as number) === 0)) {
    throw new RangeError(`non-minimal DER length at byte ${offset}`);
  }
  return 2 + count + len;
}

/** Splits a buffer of concatenated DER elements, each of which must be a SEQUENCE. */
export function splitDerSequences(buf: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let offset = 0;
  while (offset < buf.length) {
    if (buf[offset] !== 0x30) throw new RangeError(`expected a DER SEQUENCE at byte ${offset}`);
    const len = derElementLength(buf, offset);
    if (offset + len > buf.length) throw new RangeError(`DER element at byte ${offset} runs past the end of the input`);
    out.push(buf.subarray(offset, offset + len));
    offset += len;
  }
  return out;
}

/** Concatenates byte arrays. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  return Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)));
}

// ---------------------------------------------------------------------------
// A strict DER reader: definite, minimal lengths; single-byte tags; every element
// inside its container. Enough for certificates and the extensions SPIFFE reads.

/** One DER element's position in a buffer. */
export interface Tlv {
  readonly tag: number;
  /** Offset of the first header byte. */
  readonly offset: number;
  /** Offset of the first content byte. */
  readonly start: number;
  /** Offset just past the content. */
  readonly end: number;
}

/** Reads the element at `offset`, which must end at or before `limit`. */
export function readTlv(buf: Uint8Array, offset: number, limit: number = buf.length): Tlv {
  if (offset + 2 > limit) throw new RangeError(`truncated DER element at byte ${offset}`);
  const tag = buf[offset] as number;
  if ((tag & 0x1f) === 0x1f) throw new RangeError(`unsupported multi-byte DER tag at byte ${offset}`);
  let len = buf[offset + 1] as number;
  let p = offset + 2;
  if (len & 0x80) {
    const count = len & 0x7f;
    if (count === 0 || count > 4) throw new RangeError(`unsupported DER length form at byte ${offset}`);
    if (p + count > limit) throw new RangeError(`truncated DER length at byte ${offset}`);
    if (buf[p] === 0) throw new RangeError(`non-minimal DER length at byte ${offset}`);
    len = 0;
    for (let i = 0; i < count; i++) len = len * 256 + (buf[p + i] as number);
    if (len < 0x80) throw new RangeError(`non-minimal DER length at byte ${offset}`);
    p += count;
  }
  if (p + len > limit) throw new RangeError(`DER element at byte ${offset} runs past its container`);
  return { tag, offset, start: p, end: p + len };
}

/** Reads the element at `offset` and checks its tag; `what` names it in the error. */
export function expectTlv(buf: Uint8Array, offset: number, limit: number, tag: number, what: string): Tlv {
  const t = readTlv(buf, offset, limit);
  if (t.tag !== tag) {
    throw new RangeError(`${what}: expected DER tag 0x${tag.toString(16)}, found 0x${t.tag.toString(16)}`);
  }
  return t;
}

/** Decodes a DER OBJECT IDENTIFIER body into dotted form. */
export function decodeOid(buf: Uint8Array, start: number, end: number): string {
  if (start >= end) throw new RangeError('empty OBJECT IDENTIFIER');
  const arcs: number[] = [];
  let value = 0;
  let first = true;
  for (let i = start; i < end; i++) {
    const b = buf[i] as number;
    if (value === 0 && b === 0x80) throw new RangeError('non-minimal OBJECT IDENTIFIER arc');
    value = value * 128 + (b & 0x7f);
    if (value > Number.MAX_SAFE_INTEGER / 128) throw new RangeError('OBJECT IDENTIFIER arc too large');
    if (b & 0x80) continue;
    if (first) {
      const top = value < 40 ? 0 : value < 80 ? 1 : 2;
      arcs.push(top, value - top * 40);
      first = false;
    } else {
      arcs.push(value);
    }
    value = 0;
  }
  if ((buf[end - 1] as number) & 0x80) throw new RangeError('truncated OBJECT IDENTIFIER');
  return arcs.join('.');
}
