/**
 * Finds where a chunked body ends (RFC 9112 §7.1) in a stream of buffers, without
 * copying or decoding: the proxy forwards chunked bodies as they are and only needs to
 * know when the message is over. Chunk sizes are limited to 2^48 bytes, lines to 4 KiB.
 * @module
 */
import { HttpParseError } from './message-head.js';

enum S {
  Size,
  Ext,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  Trailer,
  TrailerLf,
  EndLf,
  Done,
}

const MAX_SIZE_DIGITS = 12;
const MAX_LINE = 4096;

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

export class ChunkedScanner {
  #state = S.Size;
  #size = 0;
  #digits = 0;
  #line = 0;

  get done(): boolean {
    return this.#state === S.Done;
  }

  /**
   * Consumes `buf` from `start`; returns the index just past the end of the body when it
   * ends inside `buf`, or -1 when all of `buf` belongs to the body.
   * @throws HttpParseError on malformed framing.
   */
  scan(buf: Uint8Array, start = 0): number {
    let i = start;
    const n = buf.length;
    while (i < n) {
      switch (this.#state) {
        case S.Data: {
          const take = Math.min(this.#size, n - i);
          this.#size -= take;
          i += take;
          if (this.#size === 0) this.#state = S.DataCr;
          continue;
        }
        case S.Size: {
          const c = buf[i] as number;
          const h = hexValue(c);
          if (h >= 0) {
            if (++this.#digits > MAX_SIZE_DIGITS) throw new HttpParseError('chunk size too large');
            this.#size = this.#size * 16 + h;
          } else if (this.#digits === 0) {
            throw new HttpParseError('invalid chunk size');
          } else if (c === 0x3b /* ; */ || c === 0x20 || c === 0x09) {
            this.#state = S.Ext;
            this.#line = 0;
          } else if (c === 0x0d) {
            this.#state = S.SizeLf;
          } else {
            throw new HttpParseError('invalid chunk size');
          }
          break;
        }
        case S.Ext: {
          const c = buf[i] as number;
          if (c === 0x0d) this.#state = S.SizeLf;
          else if (c === 0x0a || ++this.#line > MAX_LINE) throw new HttpParseError('invalid chunk extension');
          break;
        }
        case S.SizeLf:
          if (buf[i] !== 0x0a) throw new HttpParseError('chunk size line not ended by CRLF');
          this.#state = this.#size === 0 ? S.TrailerStart : S.Data;
          this.#digits = 0;
          break;
        case S.DataCr:
          if (buf[i] !== 0x0d) throw new HttpParseError('chunk data not followed by CRLF');
          this.#state = S.DataLf;
          break;
        case S.DataLf:
          if (buf[i] !== 0x0a) throw new HttpParseError('chunk data not followed by CRLF');
          this.#state = S.Size;
          this.#size = 0;
          this.#digits = 0;
          break;
        case S.TrailerStart:
          if (buf[i] === 0x0d) this.#state = S.EndLf;
          else {
            this.#state = S.Trailer;
            this.#line = 1;
          }
          break;
        case S.Trailer: {
          const c = buf[i] as number;
          if (c === 0x0d) this.#state = S.TrailerLf;
          else if (c === 0x0a || ++this.#line > MAX_LINE) throw new HttpParseError('invalid trailer line');
          break;
        }
        case S.TrailerLf:
          if (buf[i] !== 0x0a) throw new HttpParseError('trailer line not ended by CRLF');
          this.#state = S.TrailerStart;
          break;
        case S.EndLf:
          if (buf[i] !== 0x0a) throw new HttpParseError('chunked body not ended by CRLF');
          this.#state = S.Done;
          return i + 1;
        case S.Done:
          return i;
      }
      i++;
    }
    return -1;
  }
}
