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
import { closeSync, fstatSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';

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
}

export interface AuditLogOptions {
  /** `stdout`, or a file path. */
  readonly output: 'stdout' | { readonly path: string; readonly maxSizeBytes: number; readonly maxFiles: number };
  readonly flushIntervalMs: number;
  /** Where write errors are reported (an audit write failure must be visible, never fatal). */
  readonly onError?: (err: Error) => void;
}

const FLUSH_AT_BYTES = 64 * 1024;

/** Writes audit records in batches. */
export class AuditLog {
  #buffer = '';
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
    if (this.#closed) return;
    this.#buffer += `{"time":"${this.#now()}",${JSON.stringify(record).slice(1)}\n`;
    if (this.#buffer.length >= FLUSH_AT_BYTES) this.flush();
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.flush(), this.#options.flushIntervalMs);
      this.#timer.unref();
    }
  }

  #lastMs = 0;
  #lastIso = '';

  /** The time as ISO 8601, formatted once per millisecond (busy proxies write many records per ms). */
  #now(): string {
    const ms = Date.now();
    if (ms !== this.#lastMs) {
      this.#lastMs = ms;
      this.#lastIso = new Date(ms).toISOString();
    }
    return this.#lastIso;
  }

  /** Writes the pending batch now. */
  flush(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#buffer === '') return;
    const batch = this.#buffer;
    this.#buffer = '';
    try {
      const out = this.#options.output;
      if (out === 'stdout') {
        process.stdout.write(batch);
        return;
      }
      const bytes = Buffer.from(batch, 'utf8');
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
    rmSync(`${path}.${maxFiles}`, { force: true });
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
