/**
 * Minimal DER framing: enough to split concatenated DER certificates (the Workload
 * API's encoding) without parsing them. Throws RangeError on malformed framing;
 * callers wrap it in their own typed error.
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
