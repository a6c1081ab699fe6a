/**
 * The WebAssembly head scanner (head-scan.c): the common shape of request and response
 * heads read eight bytes at a time, for the proxy's hot path. In this V8 a byte loop in
 * JavaScript costs ≈ 25 instructions a byte (every `buf[i]` re-checks the array): the
 * TypeScript scan of the bench's 66-byte request head took ≈ 3,400 instructions; copying it
 * into the scanner's memory, scanning it and interning its target and Host take ≈ 1,300.
 *
 * A scan either accepts the head, with its parts' positions in {@link headScanOut}, or
 * declines, and message-head.ts reads the head itself: the scanner accepts only what that
 * parser accepts with the same outcome (head-scan.c lists the shapes), so every refusal and
 * every error message stays the parser's. Where WebAssembly is missing (`--jitless`), every
 * scan declines.
 * @module
 */
import { Buffer } from 'node:buffer';
import { HEAD_SCAN_WASM } from './head-scan-wasm.js';

/** The most bytes of a head copied into the scanner (head-scan.c's WINDOW); a longer head is declined. */
const WINDOW = 8192;

/** The index in {@link headScanOut} of the first framing-line entry, and its entries' width. */
export const FRAMING_AT = 16;
export const FRAMING_WIDTH = 3;

/** Framing-line kinds in {@link headScanOut} (head-scan.c's KIND_*). */
export const KIND_UPGRADE = 1;
export const KIND_CONNECTION = 2;
export const KIND_CONTENT_LENGTH = 3;
export const KIND_TRANSFER_ENCODING = 4;

interface Scanner {
  readonly input: Uint8Array;
  readonly out: Int32Array;
  readonly scanRequest: (limit: number) => number;
  readonly scanResponse: (limit: number) => number;
}

/** The part of the WebAssembly API used here (the TypeScript libs in use do not declare it). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: Record<string, unknown> };
}

interface ScannerExports {
  readonly memory: { readonly buffer: ArrayBuffer };
  readonly input: { readonly value: number };
  readonly out: { readonly value: number };
  readonly scan_request: (limit: number) => number;
  readonly scan_response: (limit: number) => number;
}

function load(): Scanner | undefined {
  const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  if (wasm === undefined) return undefined;
  try {
    const e = new wasm.Instance(new wasm.Module(Buffer.from(HEAD_SCAN_WASM, 'base64')), {})
      .exports as unknown as ScannerExports;
    // The memory never grows (head-scan.c is linked with a fixed size), so these views stay valid.
    return {
      input: new Uint8Array(e.memory.buffer, e.input.value, WINDOW + 8),
      out: new Int32Array(e.memory.buffer, e.out.value, FRAMING_AT + FRAMING_WIDTH * 8),
      scanRequest: e.scan_request,
      scanResponse: e.scan_response,
    };
  } catch {
    return undefined;
  }
}

const scanner = load();

/** Set by {@link withoutHeadScan} (tests compare both paths). */
let declineAll = false;

/**
 * Runs `fn` with every scan declining, so that message-head.ts reads every head itself:
 * for tests that compare the two paths.
 */
export function withoutHeadScan<T>(fn: () => T): T {
  declineAll = true;
  try {
    return fn();
  } finally {
    declineAll = false;
  }
}

/** Whether the WebAssembly scanner is in use (false under `--jitless`). */
export const headScanAvailable = scanner !== undefined;

/** The results of the last accepted scan; layout in head-scan.c (`out`). */
export const headScanOut: Int32Array = scanner?.out ?? new Int32Array(FRAMING_AT + FRAMING_WIDTH * 8);

/** Copies buf[start, limit) (at most WINDOW bytes) into the scanner; the number of bytes copied. */
function copyIn(s: Scanner, buf: Buffer, start: number, limit: number): number {
  const n = Math.min(limit - start, WINDOW);
  // The whole buffer is the usual case (a chunk that is one head, or a head and its body):
  // no view to make.
  if (start === 0 && n === buf.length) s.input.set(buf);
  else s.input.set(buf.subarray(start, start + n));
  return n;
}

/** The target and the Host value (trimmed; "" without one) of the request head last accepted. */
export const scannedStrings = { target: '', host: '' };

/** The strings made for the scanner's intern-table slots (head-scan.c, intern()), by slot. */
const interned: string[] = [];

/**
 * The string for buf[from, to), given the scanner's intern result for those bytes: the
 * string kept for its slot on a hit; otherwise the bytes decoded (and kept for the slot
 * they were just stored in).
 */
function internedString(code: number, buf: Buffer, from: number, to: number): string {
  if (code > 0) {
    const kept = interned[code - 1];
    if (kept !== undefined) return kept;
  }
  const s = buf.toString('latin1', from, to);
  if (code !== 0) interned[Math.abs(code) - 1] = s;
  return s;
}

/**
 * Scans the request head at buf[start, limit); true when accepted (positions in
 * {@link headScanOut}, relative to `start`; the target and Host strings in
 * {@link scannedStrings}). Every accepted scan's intern results are taken up here, so the
 * table and the strings kept for it never disagree.
 */
export function scanRequestWords(buf: Buffer, start: number, limit: number): boolean {
  const s = scanner;
  if (s === undefined || declineAll || limit - start < 16) return false;
  if (s.scanRequest(copyIn(s, buf, start, limit)) !== 0) return false;
  const o = s.out;
  // The target first, then the Host value: the order the scanner stored them in.
  scannedStrings.target = internedString(o[10] as number, buf, start + (o[0] as number) + 1, start + (o[1] as number));
  scannedStrings.host =
    (o[5] as number) > 0
      ? internedString(o[11] as number, buf, start + (o[6] as number), start + (o[7] as number))
      : '';
  return true;
}

/** Scans the response head at buf[0, limit); true when accepted (results in {@link headScanOut}). */
export function scanResponseWords(buf: Buffer, limit: number): boolean {
  const s = scanner;
  if (s === undefined || declineAll || limit < 16) return false;
  return s.scanResponse(copyIn(s, buf, 0, limit)) === 0;
}
