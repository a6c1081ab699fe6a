/**
 * The audit log: one JSON line per connection and, on HTTP listeners, per request —
 * who (verified SPIFFE ID or "unauthenticated"), to whom, from where, through which
 * listener, the decision and the policy and rule behind it, what was asked (method,
 * path, status), bytes each way, duration, TLS version and cipher. Never bodies, header
 * values or key material.
 *
 * Lines are batched: records are appended to a buffer that is written at most every
 * `flushIntervalMs` or when it passes 64 KiB, so auditing costs one write per batch, not
 * per request. A file output is rotated by size (`audit.log` → `audit.log.1` … `.N`).
 * @module
 */

// Imported: the global `Buffer` is a getter, a call on every use in optimized code.
import { Buffer } from 'node:buffer';
import { closeSync, fstatSync, openSync, renameSync, unlink, writeSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { isoTime } from '../../common/iso-time.js';
import { ownedBuffer, ownedCopy } from '../net/owned-bytes.js';

/** One audit record. Fields absent for a kind of record are omitted. */
export interface AuditRecord {
  /** `connection` for a connection (TCP listeners, refused handshakes, HTTP connections' summaries), `request` for an HTTP request. */
  readonly type: 'connection' | 'request';
  readonly listener: string;
  readonly direction: 'inbound' | 'outbound';
  /** The caller's SPIFFE ID, or "unauthenticated" for plaintext callers and failed handshakes. */
  readonly source_id: string;
  /** Our own ID (inbound) or the upstream's verified ID (outbound). */
  readonly destination_id?: string | undefined;
  /** Caller address `ip:port`. */
  readonly peer_address: string;
  readonly decision: 'allow' | 'deny';
  readonly reason?: string | undefined;
  readonly policy?: string | undefined;
  readonly rule?: number | undefined;
  readonly audit_policy?: string | undefined;
  readonly dry_run?:
    | { readonly decision: 'allow' | 'deny'; readonly policy?: string; readonly rule?: number }
    | undefined;
  readonly method?: string | undefined;
  readonly path?: string | undefined;
  readonly host?: string | undefined;
  readonly status?: number | undefined;
  readonly bytes_received: number;
  readonly bytes_sent: number;
  readonly duration_ms: number;
  readonly tls_version?: string | undefined;
  readonly tls_cipher?: string | undefined;
  /** Present (true) when the caller resumed an earlier TLS session (its certificate was verified then). */
  readonly tls_resumed?: boolean | undefined;
}

export interface AuditLogOptions {
  /** `stdout`, or a file path. */
  readonly output: 'stdout' | { readonly path: string; readonly maxSizeBytes: number; readonly maxFiles: number };
  readonly flushIntervalMs: number;
  /** Where write errors are reported (an audit write failure must be visible, never fatal). */
  readonly onError?: (err: Error) => void;
}

const FLUSH_AT_BYTES = 64 * 1024;

/**
 * Encodes `s` as UTF-8 into `buf` at `offset`, returning the bytes written. Node's
 * `Buffer#utf8Write` skips `write()`'s argument juggling (a noticeable share of a record's
 * cost); `write()` is the fallback where it is missing.
 */
const nativeUtf8Write = (Buffer.prototype as unknown as { utf8Write?: (s: string, offset: number) => number })
  .utf8Write;
function utf8Write(buf: Buffer, s: string, offset: number): number {
  return nativeUtf8Write !== undefined ? nativeUtf8Write.call(buf, s, offset) : buf.write(s, offset, 'utf8');
}

/** Characters JSON.stringify would escape (and surrogates, left to it to get right). */
const NEEDS_ESCAPE = /["\\\x00-\x1f\ud800-\udfff]/;

/** A string as JSON, as JSON.stringify writes it. */
export function jsonString(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}
const str = jsonString;

/** A number as JSON, as JSON.stringify writes it. */
export function jsonNumber(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null';
}
const num = jsonNumber;

/** '.' and the zeros that pad a fraction, by how many zeros. */
const FRACTION = ['.', '.0', '.00'];

/**
 * Milliseconds rounded to 3 decimals, as JSON.stringify writes `Math.round(ms * 1000) / 1000`,
 * from integer arithmetic (formatting a fractional double is several times slower).
 */
export function jsonMillis(ms: number): string {
  const us = Math.round(ms * 1000);
  if (!Number.isSafeInteger(us) || us < 0 || us >= 1e15) return jsonNumber(Math.round(ms * 1000) / 1000);
  const whole = Math.floor(us / 1000);
  let frac = us - whole * 1000;
  if (frac === 0) return String(whole);
  let digits = 3;
  while (frac % 10 === 0) {
    frac /= 10;
    digits--;
  }
  const f = String(frac);
  return `${whole}${FRACTION[digits - f.length]}${f}`;
}

/** The decision part of a record (decision, reason, policy, rule, audit_policy, dry_run), with its leading comma. */
export function serializeDecisionFields(
  r: Pick<AuditRecord, 'decision' | 'reason' | 'policy' | 'rule' | 'audit_policy' | 'dry_run'>,
): string {
  let out = `,"decision":"${r.decision}"`;
  if (r.reason !== undefined) out += `,"reason":${str(r.reason)}`;
  if (r.policy !== undefined) out += `,"policy":${str(r.policy)}`;
  if (r.rule !== undefined) out += `,"rule":${num(r.rule)}`;
  if (r.audit_policy !== undefined) out += `,"audit_policy":${str(r.audit_policy)}`;
  const d = r.dry_run;
  if (d !== undefined) {
    out += `,"dry_run":{"decision":"${d.decision}"`;
    if (d.policy !== undefined) out += `,"policy":${str(d.policy)}`;
    if (d.rule !== undefined) out += `,"rule":${num(d.rule)}`;
    out += '}';
  }
  return out;
}

/** The request part of a record (method, path, host, status, bytes, duration), with its leading comma. */
export function serializeExchangeFields(
  r: Pick<AuditRecord, 'method' | 'path' | 'host' | 'status' | 'bytes_received' | 'bytes_sent' | 'duration_ms'>,
): string {
  return serializeExchange(r.method, r.path, r.host, r.status, r.bytes_received, r.bytes_sent, num(r.duration_ms));
}

/**
 * {@link serializeExchangeFields} from separate values (no record object per request);
 * `duration` is the duration_ms value already as JSON (see {@link jsonMillis}).
 */
export function serializeExchange(
  method: string | undefined,
  path: string | undefined,
  host: string | undefined,
  status: number | undefined,
  bytesReceived: number,
  bytesSent: number,
  duration: string,
): string {
  let out = '';
  if (method !== undefined) out += `,"method":${str(method)}`;
  if (path !== undefined) out += `,"path":${str(path)}`;
  if (host !== undefined) out += `,"host":${str(host)}`;
  if (status !== undefined) out += `,"status":${num(status)}`;
  return `${out},"bytes_received":${num(bytesReceived)},"bytes_sent":${num(bytesSent)},"duration_ms":${duration}`;
}

/** The fields before the decision (type … peer_address), without a leading comma. */
export function serializePartyFields(
  r: Pick<AuditRecord, 'type' | 'listener' | 'direction' | 'source_id' | 'destination_id' | 'peer_address'>,
): string {
  let out = `"type":"${r.type}","listener":${str(r.listener)},"direction":"${r.direction}","source_id":${str(r.source_id)}`;
  if (r.destination_id !== undefined) out += `,"destination_id":${str(r.destination_id)}`;
  return `${out},"peer_address":${str(r.peer_address)}`;
}

/** The TLS fields that end a record, with a leading comma ("" when there are none). */
export function serializeTlsFields(r: Pick<AuditRecord, 'tls_version' | 'tls_cipher' | 'tls_resumed'>): string {
  let out = '';
  if (r.tls_version !== undefined) out += `,"tls_version":${str(r.tls_version)}`;
  if (r.tls_cipher !== undefined) out += `,"tls_cipher":${str(r.tls_cipher)}`;
  if (r.tls_resumed !== undefined) out += `,"tls_resumed":${r.tls_resumed}`;
  return out;
}

/**
 * The record's fields as JSON, without the braces, in declaration order and omitting
 * undefined ones — what `JSON.stringify(record)` gives, written by hand because it runs
 * for every request and the generic serializer costs several times as much.
 */
export function serializeAuditFields(r: AuditRecord): string {
  return serializePartyFields(r) + serializeDecisionFields(r) + serializeExchangeFields(r) + serializeTlsFields(r);
}

/** "000" … "999": the milliseconds of a timestamp. */
const MILLIS: readonly string[] = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0'));

/**
 * The constant parts of a request record, encoded once (per connection and decision):
 * `mid` runs from the end of the time to the method's value, `end` from the duration's
 * value to the end of the line.
 */
export interface EncodedRequestParts {
  readonly mid: Buffer;
  readonly end: Buffer;
  /**
   * `mid` and the last request's `"<method>","path":"<path>","host":"<host>","status":<status>,"bytes_received":`
   * run after it, encoded, for the values they were encoded from: requests on a connection mostly
   * repeat them (the relay hands over the same string objects for a repeated target and
   * Host), so a repeat copies these bytes instead of encoding three JSON strings again.
   */
  exchange: { method: string; path: string; host: string; status: number; bytes: Buffer } | undefined;
}

const BYTES_RECEIVED_KEY = ownedBuffer(',"bytes_received":', 'latin1');
const BYTES_SENT_KEY = ownedBuffer(',"bytes_sent":', 'latin1');
const DURATION_KEY = ownedBuffer(',"duration_ms":', 'latin1');

/** Paths longer than this are not kept in {@link EncodedRequestParts.exchange}. */
const MAX_MEMO_BYTES = 1024;

/**
 * Encodes the constant parts of request records: `head` (type … peer_address, from
 * serializePartyFields), `decision` (from serializeDecisionFields) and `tail` (from
 * serializeTlsFields), for {@link AuditLog.writeRequest}.
 */
export function encodeRequestParts(head: string, decision: string, tail: string): EncodedRequestParts {
  return {
    mid: ownedBuffer(`Z",${head}${decision},"method":`, 'utf8'),
    end: ownedBuffer(`${tail}}\n`, 'utf8'),
    // Present from the start: one object shape for every connection's parts.
    exchange: undefined,
  };
}

/** Writes an ASCII string known to need no escaping. */
function putAscii(buf: Buffer, p: number, s: string): number {
  for (let i = 0; i < s.length; i++) buf[p + i] = s.charCodeAt(i);
  return p + s.length;
}

/** Writes `s` as a JSON string, as JSON.stringify would; plain ASCII is copied byte by byte. */
function putJsonString(buf: Buffer, p: number, s: string): number {
  buf[p] = 0x22;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || c > 0x7e) return p + utf8Write(buf, jsonString(s), p);
    buf[p + 1 + i] = c;
  }
  buf[p + 1 + s.length] = 0x22;
  return p + 2 + s.length;
}

/** Writes a non-negative safe integer's digits; anything else as JSON.stringify would. */
function putNumber(buf: Buffer, p: number, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) return putAscii(buf, p, jsonNumber(n));
  let digits = 1;
  for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
  let x = n;
  for (let i = digits - 1; i >= 0; i--) {
    const q = Math.floor(x / 10);
    buf[p + i] = 0x30 + (x - q * 10);
    x = q;
  }
  return p + digits;
}

/** Writes milliseconds rounded to 3 decimals, as {@link jsonMillis} formats them. */
function putMillis(buf: Buffer, p: number, ms: number): number {
  const us = Math.round(ms * 1000);
  if (!Number.isSafeInteger(us) || us < 0 || us >= 1e15) return putAscii(buf, p, jsonMillis(ms));
  const whole = Math.floor(us / 1000);
  let frac = us - whole * 1000;
  p = putNumber(buf, p, whole);
  if (frac === 0) return p;
  buf[p++] = 0x2e; // .
  let digits = 3;
  while (frac % 10 === 0) {
    frac /= 10;
    digits--;
  }
  // frac has `digits` digits after the point, zero-padded on the left.
  for (let i = digits - 1; i >= 0; i--) {
    const q = Math.floor(frac / 10);
    buf[p + i] = 0x30 + (frac - q * 10);
    frac = q;
  }
  return p + digits;
}

/** Writes audit records in batches. */
export class AuditLog {
  /** The pending batch, encoded as records arrive (one small encode each, no big string to flatten). */
  readonly #buffer = Buffer.allocUnsafe(FLUSH_AT_BYTES);
  #length = 0;
  #timer: NodeJS.Timeout | undefined;
  #fd: number | undefined;
  #size = 0;
  #closed = false;
  readonly #options: AuditLogOptions;

  constructor(options: AuditLogOptions) {
    this.#options = options;
    if (options.output !== 'stdout') this.#open(options.output.path);
  }

  /** Appends a record; it reaches the output with the next batch. */
  write(record: AuditRecord): void {
    this.writeFields(serializeAuditFields(record));
  }

  /**
   * Appends a record given as its serialized fields (what {@link serializeAuditFields}
   * returns); the time is added first. For callers that keep the parts of a record that
   * do not change (a connection's parties and TLS fields) serialized.
   */
  writeFields(fields: string): void {
    if (this.#closed) return;
    const line = `{"time":"${this.#now()}",${fields}}\n`;
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    if (this.#length + line.length * 3 > FLUSH_AT_BYTES) {
      this.flush();
      if (line.length * 3 > FLUSH_AT_BYTES) {
        this.#output(Buffer.from(line, 'utf8'));
        return;
      }
    }
    this.#length += utf8Write(this.#buffer, line, this.#length);
    this.#armFlush();
  }

  /** The current second as `YYYY-MM-DDTHH:MM:SS.` (text and bytes), made once per second. */
  #second = Number.NaN;
  #secondText = '';
  /** `{"time":"` and the current second, encoded. */
  #timeOpen = Buffer.alloc(0);

  #toSecond(ms: number): void {
    const second = Math.floor(ms / 1000);
    if (second === this.#second) return;
    this.#second = second;
    const iso = isoTime(second * 1000);
    this.#secondText = iso.slice(0, -4);
    this.#timeOpen = Buffer.from(`{"time":"${this.#secondText}`, 'latin1');
  }

  /** Wall-clock time minus the performance clock, measured at #calibratedAt (performance clock). */
  #offset = 0;
  #calibratedAt = Number.NEGATIVE_INFINITY;

  /**
   * The wall-clock time (ms since the epoch) at `at`, a `performance.now()` reading the
   * caller already has: one clock read per request instead of two. The offset between
   * the two clocks is measured again at least once a second, so a wall-clock step shows
   * within a second.
   */
  #wallClock(at: number): number {
    if (at - this.#calibratedAt >= 1000 || at < this.#calibratedAt) {
      // Measured with fresh readings of both clocks (`at` may be older than now).
      const now = performance.now();
      this.#offset = Date.now() - now;
      this.#calibratedAt = now;
    }
    return Math.floor(at + this.#offset);
  }

  /** The time as ISO 8601 with milliseconds; the date and time of day are formatted once per second. */
  #now(): string {
    const ms = Date.now();
    this.#toSecond(ms);
    return `${this.#secondText}${MILLIS[ms % 1000]}Z`;
  }

  /**
   * Appends one request record, encoding straight into the batch buffer: the same line
   * {@link writeFields} would write for the serialized parts and exchange fields, but
   * the constant parts are copied as bytes (see {@link encodeRequestParts}) and only the
   * time, method, path, host and numbers are encoded per request.
   */
  writeRequest(
    parts: EncodedRequestParts,
    method: string,
    path: string,
    host: string,
    status: number,
    bytesReceived: number,
    bytesSent: number,
    durationMs: number,
    at?: number,
  ): void {
    if (this.#closed) return;
    // Worst case: every character of the strings escaped as \uXXXX, numbers at 24 bytes each.
    const need = 200 + parts.mid.length + parts.end.length + 6 * (method.length + path.length + host.length);
    if (this.#length + need > FLUSH_AT_BYTES) {
      this.flush();
      if (need > FLUSH_AT_BYTES) {
        const mid = parts.mid.toString('utf8');
        const end = parts.end.toString('utf8');
        // mid is `Z",<fields>,"method":` and end is `<fields>}\n`: unwrap them for writeFields.
        this.writeFields(
          mid.slice(3, -10) +
            serializeExchange(method, path, host, status, bytesReceived, bytesSent, jsonMillis(durationMs)) +
            end.slice(0, -2),
        );
        return;
      }
    }
    const buf = this.#buffer;
    const ms = at === undefined ? Date.now() : this.#wallClock(at);
    this.#toSecond(ms);
    let p = this.#length;
    const open = this.#timeOpen;
    buf.set(open, p);
    p += open.length;
    const millis = ms % 1000;
    buf[p] = 0x30 + Math.floor(millis / 100);
    buf[p + 1] = 0x30 + (Math.floor(millis / 10) % 10);
    buf[p + 2] = 0x30 + (millis % 10);
    p += 3;
    const memo = parts.exchange;
    if (
      memo !== undefined &&
      memo.path === path &&
      memo.method === method &&
      memo.host === host &&
      memo.status === status
    ) {
      // The memo starts with `mid`: one copy for both.
      const bytes = memo.bytes;
      buf.set(bytes, p);
      p += bytes.length;
    } else {
      const from = p;
      const mid = parts.mid;
      buf.set(mid, p);
      p += mid.length;
      p = putJsonString(buf, p, method);
      p = putAscii(buf, p, ',"path":');
      p = putJsonString(buf, p, path);
      p = putAscii(buf, p, ',"host":');
      p = putJsonString(buf, p, host);
      p = putAscii(buf, p, ',"status":');
      p = putNumber(buf, p, status);
      buf.set(BYTES_RECEIVED_KEY, p);
      p += BYTES_RECEIVED_KEY.length;
      if (p - from <= MAX_MEMO_BYTES + mid.length) {
        parts.exchange = { method, path, host, status, bytes: ownedCopy(buf.subarray(from, p)) };
      }
    }
    // The keys between the numbers are copied, not written character by character (a
    // character loop costs ≈ 25 instructions per character here; a copy ≈ 200 in all).
    p = putNumber(buf, p, bytesReceived);
    buf.set(BYTES_SENT_KEY, p);
    p += BYTES_SENT_KEY.length;
    p = putNumber(buf, p, bytesSent);
    buf.set(DURATION_KEY, p);
    p += DURATION_KEY.length;
    p = putMillis(buf, p, durationMs);
    buf.set(parts.end, p);
    this.#length = p + parts.end.length;
    this.#armFlush();
  }

  /** Schedules the pending batch's write, unless one is scheduled. */
  #armFlush(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => this.flush(), this.#options.flushIntervalMs);
    this.#timer.unref();
  }

  /** Writes the pending batch now. */
  flush(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#length === 0) return;
    const batch = this.#buffer.subarray(0, this.#length);
    this.#length = 0;
    this.#output(batch);
  }

  /** Writes bytes to the output; `bytes` may be reused once this returns. */
  #output(bytes: Buffer): void {
    try {
      const out = this.#options.output;
      if (out === 'stdout') {
        // stdout may write asynchronously: it gets its own copy.
        process.stdout.write(Buffer.from(bytes));
        return;
      }
      if (this.#size > 0 && this.#size + bytes.length > out.maxSizeBytes) this.#rotate(out.path, out.maxFiles);
      if (this.#fd === undefined) this.#open(out.path);
      let off = 0;
      while (off < bytes.length) off += writeSync(this.#fd as number, bytes, off);
      this.#size += bytes.length;
    } catch (err) {
      this.#options.onError?.(err as Error);
    }
  }

  #open(path: string): void {
    this.#fd = openSync(path, 'a', 0o600);
    this.#size = fstatSync(this.#fd).size;
  }

  #rotate(path: string, maxFiles: number): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
    // The oldest file goes. Deleting a large file holds the calling thread for milliseconds
    // (≈ 3–4 ms for 100 MiB here), which would stall every connection: it is renamed out of
    // the way (quick) and unlinked in libuv's thread pool. A `.deleting` file left by a crash
    // is replaced (and so deleted) at the next rotation that gets this far.
    const doomed = `${path}.${maxFiles}.deleting`;
    try {
      renameSync(`${path}.${maxFiles}`, doomed);
      unlink(doomed, () => {
        /* gone, or already replaced by the next one */
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (let i = maxFiles - 1; i >= 1; i--) {
      try {
        renameSync(`${path}.${i}`, `${path}.${i + 1}`);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    renameSync(path, `${path}.1`);
    this.#open(path);
  }

  /** Flushes and closes the output. */
  close(): void {
    this.flush();
    this.#closed = true;
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}
