/**
 * Small Buffers that live as long as a connection, in memory of their own.
 *
 * `Buffer.from` and `Buffer.allocUnsafe` hand out slices of a shared 8 KiB pool for
 * anything under 4 KiB. A slice keeps its whole 8 KiB slab alive, and the proxy makes a
 * few such buffers per connection (the added header lines, the audit record's constant
 * parts) between the many short-lived ones of each request: with 50 connections, 27
 * slabs (216 KiB) stayed pinned. These copies cost their own size and a small header.
 * @module
 */

/** `text` encoded, not from the shared pool. */
export function ownedBuffer(text: string, encoding: BufferEncoding): Buffer {
  const out = Buffer.allocUnsafeSlow(Buffer.byteLength(text, encoding));
  out.write(text, 0, encoding);
  return out;
}

/** A copy of `bytes`, not from the shared pool. */
export function ownedCopy(bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafeSlow(bytes.length);
  out.set(bytes);
  return out;
}
