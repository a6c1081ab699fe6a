/**
 * Parsing of HTTP/1.x request and response heads, strict where ambiguity could be used
 * to smuggle a request past the proxy (RFC 9112 §6.3, §11.2): conflicting or malformed
 * Content-Length, Transfer-Encoding with Content-Length, a non-final `chunked`, obsolete
 * line folding, bare CR or LF, and invalid header names are refused.
 * @module
 */

import {
  FRAMING_AT,
  FRAMING_WIDTH,
  headScanOut,
  KIND_CONNECTION,
  KIND_CONTENT_LENGTH,
  KIND_TRANSFER_ENCODING,
  KIND_UPGRADE,
  scannedStrings,
  scanRequestWords,
  scanResponseWords,
} from './head-scan.js';

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const METHOD = TOKEN;
const DIGITS = /^\d{1,15}$/;
/** 1 for the bytes allowed in a header name (RFC 9110 token). */
const TOKEN_BYTE = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
  TOKEN_BYTE[c.charCodeAt(0)] = 1;
}

/** 1 for the bytes a header value scan stops at: CR, LF and NUL. */
const LINE_BYTE = new Uint8Array(256);
LINE_BYTE[0x0d] = 1;
LINE_BYTE[0x0a] = 1;
LINE_BYTE[0x00] = 1;

/** Heads larger than this are refused (431 for requests). */
export const MAX_HEAD_BYTES = 64 * 1024;

/** Framing of a message body. */
export type BodyFraming =
  | { readonly kind: 'none' }
  | { readonly kind: 'length'; readonly length: number }
  | { readonly kind: 'chunked' }
  /** Responses only: the body ends when the connection does. */
  | { readonly kind: 'close' };

interface HeaderFields {
  /** Raw header lines as received, without CRLF. */
  readonly lines: readonly string[];
  /** Lower-case names, parallel to `lines`. */
  readonly names: readonly string[];
  /** Trimmed values, parallel to `lines`. */
  readonly values: readonly string[];
}

export interface RequestHead extends HeaderFields {
  readonly method: string;
  readonly target: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  readonly minorVersion: number;
  readonly framing: BodyFraming;
  /** The client asked to close after this exchange (Connection: close, or HTTP/1.0 without keep-alive). */
  readonly wantsClose: boolean;
  /** Upgrade requested (Connection: upgrade with an Upgrade header). */
  readonly upgrade: boolean;
  /** The Host header value, "" when absent. */
  readonly host: string;
  /** Whether a header of this (lower-case) name is present. */
  hasHeader(lowerCaseName: string): boolean;
}

export interface ResponseHead extends HeaderFields {
  readonly status: number;
  readonly minorVersion: number;
  readonly connectionClose: boolean;
  /** Content-Length, Transfer-Encoding: chunked, or -1 when neither says. */
  readonly contentLength: number;
  readonly chunked: boolean;
}

export class HttpParseError extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

function splitHeaders(lines: string[], from: number): HeaderFields {
  const names: string[] = [];
  const values: string[] = [];
  const kept: string[] = [];
  for (let i = from; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.includes('\n') || line.includes('\r') || line.includes('\0')) {
      throw new HttpParseError('bare CR, LF or NUL in a header line');
    }
    const c0 = line.charCodeAt(0);
    if (c0 === 0x20 || c0 === 0x09) throw new HttpParseError('obsolete header line folding');
    const colon = line.indexOf(':');
    if (colon <= 0) throw new HttpParseError('header line without a name');
    for (let k = 0; k < colon; k++) {
      const c = line.charCodeAt(k);
      if (c > 0xff || TOKEN_BYTE[c] !== 1) throw new HttpParseError('invalid header name');
    }
    const name = line.slice(0, colon);
    names.push(name.toLowerCase());
    values.push(line.slice(colon + 1).trim());
    kept.push(line);
  }
  return { lines: kept, names, values };
}

function hasToken(value: string, token: string): boolean {
  // Header lists are comma-separated tokens, compared case-insensitively.
  const v = value.toLowerCase();
  if (v === token) return true;
  for (const part of v.split(',')) if (part.trim() === token) return true;
  return false;
}

interface Framing {
  contentLength: number;
  chunked: boolean;
  transferEncoding: boolean;
  connectionClose: boolean;
  connectionKeepAlive: boolean;
  connectionUpgrade: boolean;
  upgradeHeader: boolean;
  host: string;
  hostCount: number;
}

function framingOf(h: HeaderFields, strict: boolean, contentLength = -1): Framing {
  const f: Framing = {
    contentLength,
    chunked: false,
    transferEncoding: false,
    connectionClose: false,
    connectionKeepAlive: false,
    connectionUpgrade: false,
    upgradeHeader: false,
    host: '',
    hostCount: 0,
  };
  for (let i = 0; i < h.names.length; i++) {
    const name = h.names[i] as string;
    const value = h.values[i] as string;
    switch (name) {
      case 'content-length': {
        // A repeated Content-Length is tolerated only with identical values (RFC 9110 §8.6).
        for (const part of value.split(',')) {
          const p = part.trim();
          if (!DIGITS.test(p)) throw new HttpParseError('invalid Content-Length');
          const n = Number(p);
          if (f.contentLength >= 0 && f.contentLength !== n) throw new HttpParseError('conflicting Content-Length');
          f.contentLength = n;
        }
        break;
      }
      case 'transfer-encoding': {
        f.transferEncoding = true;
        const codings = value
          .toLowerCase()
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== '');
        f.chunked = codings[codings.length - 1] === 'chunked';
        if (strict && !f.chunked) throw new HttpParseError('Transfer-Encoding without final chunked');
        break;
      }
      case 'connection':
        if (hasToken(value, 'close')) f.connectionClose = true;
        if (hasToken(value, 'keep-alive')) f.connectionKeepAlive = true;
        if (hasToken(value, 'upgrade')) f.connectionUpgrade = true;
        break;
      case 'upgrade':
        f.upgradeHeader = true;
        break;
      case 'host':
        f.host = value;
        f.hostCount++;
        break;
    }
  }
  if (f.transferEncoding && f.contentLength >= 0) {
    if (strict) throw new HttpParseError('both Transfer-Encoding and Content-Length');
    f.contentLength = -1; // responses: Transfer-Encoding wins (RFC 9112 §6.3)
  }
  return f;
}

/** Parses a request head; `text` is the head without the final empty line (latin1). */
export function parseRequestHead(text: string): RequestHead {
  const lines = text.split('\r\n');
  const requestLine = lines[0] as string;
  const sp1 = requestLine.indexOf(' ');
  const sp2 = requestLine.lastIndexOf(' ');
  if (sp1 <= 0 || sp2 <= sp1) throw new HttpParseError('malformed request line');
  const method = requestLine.slice(0, sp1);
  const target = requestLine.slice(sp1 + 1, sp2);
  const version = requestLine.slice(sp2 + 1);
  if (!METHOD.test(method)) throw new HttpParseError('invalid method');
  if (target === '' || /[\s\0-\x1f\x7f]/.test(target)) throw new HttpParseError('invalid request target');
  let minorVersion: number;
  if (version === 'HTTP/1.1') minorVersion = 1;
  else if (version === 'HTTP/1.0') minorVersion = 0;
  else throw new HttpParseError('unsupported HTTP version', 505);
  const fields = splitHeaders(lines, 1);
  const f = framingOf(fields, true);
  if (minorVersion === 1 && f.hostCount !== 1) {
    throw new HttpParseError(f.hostCount === 0 ? 'missing Host header' : 'more than one Host header');
  }
  const framing: BodyFraming = f.chunked
    ? { kind: 'chunked' }
    : f.contentLength > 0
      ? { kind: 'length', length: f.contentLength }
      : { kind: 'none' };
  const wantsClose = f.connectionClose || (minorVersion === 0 && !f.connectionKeepAlive);
  // Explicit fields: an object spread followed by more keys takes V8's slow path (µs per request).
  return {
    lines: fields.lines,
    names: fields.names,
    values: fields.values,
    method,
    target,
    minorVersion,
    framing,
    wantsClose,
    upgrade: f.connectionUpgrade && f.upgradeHeader,
    host: f.host,
    hasHeader(lowerCaseName: string): boolean {
      return this.names.includes(lowerCaseName);
    },
  };
}

/** Where the line {@link checkHeaderLine} checked last ends (its CR). */
let checkedLineEnd = 0;

/** What {@link checkHeaderLine} returns when the line does not end before the limit. */
const INCOMPLETE = -1;

/**
 * Checks the header line that starts at `pos` in bytes that are complete up to `limit`,
 * the way splitHeaders checks a line (no bare CR, LF or NUL; no folding; a token name
 * before the first colon), and returns the colon's index, or {@link INCOMPLETE} when the
 * line's CRLF is not before `limit` yet; the line's end is left in
 * {@link checkedLineEnd} (no object per line on this hot path).
 */
function checkHeaderLine(buf: Buffer, pos: number, limit: number): number {
  let i = pos;
  let colon = -1;
  let bad = false;
  let badName = false;
  // The name, up to the first colon: one look-up per byte, which also checks it is a token.
  for (; i < limit; i++) {
    const c = buf[i] as number;
    if (TOKEN_BYTE[c] === 1) continue;
    if (c === 0x3a) {
      colon = i;
      i++;
      break;
    }
    if (c === 0x0d) {
      if (i + 1 >= limit) return INCOMPLETE;
      if (buf[i + 1] === 0x0a) break;
      bad = true;
    } else if (c === 0x0a || c === 0) bad = true;
    else badName = true;
  }
  // The value (when there was a colon), to the CRLF.
  if (colon >= 0) {
    for (; i < limit; i++) {
      const c = buf[i] as number;
      if (LINE_BYTE[c] === 0) continue; // the common case: one look-up per byte
      if (c === 0x0d) {
        if (i + 1 >= limit) return INCOMPLETE;
        if (buf[i + 1] === 0x0a) break;
        bad = true;
      } else if (c === 0x0a || c === 0) bad = true;
    }
  }
  if (i >= limit) return INCOMPLETE;
  if (bad) throw new HttpParseError('bare CR, LF or NUL in a header line');
  const c0 = buf[pos];
  if (c0 === 0x20 || c0 === 0x09) throw new HttpParseError('obsolete header line folding');
  if (colon <= pos) throw new HttpParseError('header line without a name');
  if (badName) throw new HttpParseError('invalid header name');
  checkedLineEnd = i;
  return colon;
}

/**
 * Where the head found by the last successful {@link scanRequestHead} or
 * {@link scanResponseHead} ends: the index of its final CRLFCRLF.
 */
export const scanned = { headEnd: 0 };

/**
 * The methods whose names are returned as constants (no string made per request); in the
 * order of head-scan.c's METHOD_* numbers.
 */
const KNOWN_METHODS = ['GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'PATCH', 'OPTIONS'];

function methodOf(buf: Buffer, from: number, to: number): string {
  for (const m of KNOWN_METHODS) {
    if (m.length !== to - from) continue;
    let same = true;
    for (let i = 0; i < m.length; i++) {
      if (buf[from + i] !== m.charCodeAt(i)) {
        same = false;
        break;
      }
    }
    if (same) return m;
  }
  return buf.toString('latin1', from, to);
}

/** Lower-case names of the headers that decide framing, Host and upgrades (see framingOf). */
function framingHeader(buf: Buffer, from: number, n: number): string | undefined {
  switch (n) {
    case 4:
      return nameIs(buf, from, n, 'host') ? 'host' : undefined;
    case 7:
      return nameIs(buf, from, n, 'upgrade') ? 'upgrade' : undefined;
    case 10:
      return nameIs(buf, from, n, 'connection') ? 'connection' : undefined;
    case 14:
      return nameIs(buf, from, n, 'content-length') ? 'content-length' : undefined;
    case 17:
      return nameIs(buf, from, n, 'transfer-encoding') ? 'transfer-encoding' : undefined;
    default:
      return undefined;
  }
}

/** A request head read from bytes; the header arrays are made only when asked for. */
class BytesRequestHead implements RequestHead {
  /** The bytes the head was read from (shared, not copied) and where its header lines are. */
  readonly #buf: Buffer;
  readonly #headersFrom: number;
  /** The index of the CRLF that ends the last header line (or the request line). */
  readonly #headersEnd: number;
  /** Bit (n & 31) is set when a header name of length n is present: most look-ups end here. */
  readonly #nameLengths: number;
  #fields: HeaderFields | undefined;

  constructor(
    buf: Buffer,
    headersFrom: number,
    headersEnd: number,
    nameLengths: number,
    readonly method: string,
    readonly target: string,
    readonly minorVersion: number,
    readonly framing: BodyFraming,
    readonly wantsClose: boolean,
    readonly upgrade: boolean,
    readonly host: string,
  ) {
    this.#buf = buf;
    this.#headersFrom = headersFrom;
    this.#headersEnd = headersEnd;
    this.#nameLengths = nameLengths;
  }

  #split(): HeaderFields {
    this.#fields ??=
      this.#headersFrom >= this.#headersEnd
        ? { lines: [], names: [], values: [] }
        : splitHeaders(this.#buf.toString('latin1', this.#headersFrom, this.#headersEnd).split('\r\n'), 0);
    return this.#fields;
  }

  get lines(): readonly string[] {
    return this.#split().lines;
  }

  get names(): readonly string[] {
    return this.#split().names;
  }

  get values(): readonly string[] {
    return this.#split().values;
  }

  hasHeader(lowerCaseName: string): boolean {
    const n = lowerCaseName.length;
    if ((this.#nameLengths & (1 << (n & 31))) === 0) return false;
    const buf = this.#buf;
    const end = this.#headersEnd;
    let pos = this.#headersFrom;
    while (pos < end) {
      if (pos + n < end && buf[pos + n] === 0x3a && nameIs(buf, pos, n, lowerCaseName)) return true;
      while (pos < end && buf[pos] !== 0x0a) pos++;
      pos++;
    }
    return false;
  }
}

/**
 * {@link parseRequestHead} for the proxy's hot path, reading buf[start, end) (the head
 * without its final empty line) as bytes: the same checks in the same order and the same
 * outcome, but strings are made only for the method, the target and the headers that
 * decide framing; the header arrays are built if something asks for them.
 */
export function parseRequestHeadBytes(buf: Buffer, start: number, end: number): RequestHead {
  return scanRequestHead(buf, start, end + 4) as RequestHead;
}

/**
 * The strings of a connection's last request head: a request that repeats them (the same
 * target, the same Host, as most requests on a connection do) gets the same strings
 * instead of new ones decoded from its bytes.
 */
export interface HeadStrings {
  target: string;
  host: string;
}

/** `s` when buf[from, to) holds its characters (latin1), else the bytes decoded (and remembered by the caller). */
function sameOrDecoded(s: string, buf: Buffer, from: number, to: number): string {
  const n = to - from;
  if (s.length === n) {
    let i = 0;
    while (i < n && s.charCodeAt(i) === buf[from + i]) i++;
    if (i === n) return s;
  }
  return buf.toString('latin1', from, to);
}

/** The Host value in buf[from, to) without surrounding spaces and tabs, as `trim()` leaves it in latin1 text. */
function hostValue(strings: HeadStrings | undefined, buf: Buffer, from: number, to: number): string {
  while (from < to && isTrimmed(buf[from] as number)) from++;
  while (to > from && isTrimmed(buf[to - 1] as number)) to--;
  if (strings === undefined) return buf.toString('latin1', from, to);
  const host = sameOrDecoded(strings.host, buf, from, to);
  strings.host = host;
  return host;
}

/** What String#trim removes that can appear in a latin1 header value: SP, HT, VT, FF and NBSP (CR, LF never reach here). */
function isTrimmed(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0b || c === 0x0c || c === 0xa0;
}

/**
 * Finds and parses the request head that starts at `start`, reading only bytes before
 * `limit`: the head, with its end (the index of its final CRLFCRLF) in
 * {@link scanned}.headEnd, or undefined when its empty line is not before `limit` yet.
 * One pass over the bytes finds the end and checks every line (what
 * {@link parseRequestHeadBytes} checks); a head that is wrong in its complete part
 * throws even before its end has arrived.
 */
export function scanRequestHead(
  buf: Buffer,
  start: number,
  limit: number,
  strings?: HeadStrings,
): RequestHead | undefined {
  if (scanRequestWords(buf, start, limit)) return acceptedRequestHead(buf, start, strings);
  let lineEnd = start;
  let sp1 = -1;
  let sp2 = -1;
  for (; lineEnd < limit; lineEnd++) {
    const c = buf[lineEnd];
    if (c === 0x20) {
      if (sp1 < 0) sp1 = lineEnd;
      sp2 = lineEnd;
    } else if (c === 0x0d) {
      if (lineEnd + 1 >= limit) return undefined;
      if (buf[lineEnd + 1] === 0x0a) break;
    }
  }
  if (lineEnd >= limit) return undefined;
  if (sp1 <= start || sp2 <= sp1) throw new HttpParseError('malformed request line');
  for (let i = start; i < sp1; i++) {
    if (TOKEN_BYTE[buf[i] as number] !== 1) throw new HttpParseError('invalid method');
  }
  // Not in a target: controls, space, DEL, and NBSP (what /[\s\0-\x1f\x7f]/ finds in latin1 text).
  if (sp2 === sp1 + 1) throw new HttpParseError('invalid request target');
  for (let i = sp1 + 1; i < sp2; i++) {
    const c = buf[i] as number;
    if (c <= 0x20 || c === 0x7f || c === 0xa0) throw new HttpParseError('invalid request target');
  }
  let minorVersion: number;
  if (
    lineEnd - sp2 === 9 &&
    buf[sp2 + 1] === 0x48 && // H
    buf[sp2 + 2] === 0x54 && // T
    buf[sp2 + 3] === 0x54 && // T
    buf[sp2 + 4] === 0x50 && // P
    buf[sp2 + 5] === 0x2f && // /
    buf[sp2 + 6] === 0x31 && // 1
    buf[sp2 + 7] === 0x2e && // .
    (buf[sp2 + 8] === 0x31 || buf[sp2 + 8] === 0x30)
  ) {
    minorVersion = (buf[sp2 + 8] as number) - 0x30;
  } else {
    throw new HttpParseError('unsupported HTTP version', 505);
  }
  const headersFrom = lineEnd + 2;
  let names: string[] | undefined;
  let values: string[] | undefined;
  let host = '';
  let hostCount = 0;
  let nameLengths = 0;
  let pos = headersFrom;
  for (;;) {
    if (pos + 1 >= limit) return undefined;
    if (buf[pos] === 0x0d && buf[pos + 1] === 0x0a) break; // the empty line: the head ends
    const colon = checkHeaderLine(buf, pos, limit);
    if (colon === INCOMPLETE) return undefined;
    const i = checkedLineEnd;
    nameLengths |= 1 << ((colon - pos) & 31);
    const name = framingHeader(buf, pos, colon - pos);
    if (name === 'host') {
      // Host decides nothing in framingOf but its count: kept here (no arrays for the common GET).
      host = hostValue(strings, buf, colon + 1, i);
      hostCount++;
    } else if (name !== undefined) {
      names ??= [];
      values ??= [];
      names.push(name);
      values.push(name === 'upgrade' ? '' : buf.toString('latin1', colon + 1, i).trim());
    }
    lineEnd = i;
    pos = i + 2;
  }
  const method = methodOf(buf, start, sp1);
  let target: string;
  if (strings === undefined) target = buf.toString('latin1', sp1 + 1, sp2);
  else {
    target = sameOrDecoded(strings.target, buf, sp1 + 1, sp2);
    strings.target = target;
  }
  return finishRequestHead(
    buf,
    headersFrom,
    lineEnd,
    nameLengths,
    minorVersion,
    method,
    target,
    names,
    values,
    host,
    hostCount,
  );
}

/**
 * The rest of {@link scanRequestHead} once the lines are read (by either path): the
 * strings, the framing checks and the head. `lineEnd` is the CR of the last line.
 */
function finishRequestHead(
  buf: Buffer,
  headersFrom: number,
  lineEnd: number,
  nameLengths: number,
  minorVersion: number,
  method: string,
  target: string,
  names: string[] | undefined,
  values: string[] | undefined,
  host: string,
  hostCount: number,
): RequestHead {
  scanned.headEnd = lineEnd;
  // No Content-Length, Transfer-Encoding, Connection or Upgrade: nothing for framingOf to decide.
  const f = names === undefined ? undefined : framingOf({ lines: names, names, values: values ?? [] }, true);
  if (minorVersion === 1 && hostCount !== 1) {
    throw new HttpParseError(hostCount === 0 ? 'missing Host header' : 'more than one Host header');
  }
  let framing: BodyFraming = NO_BODY;
  let wantsClose = minorVersion === 0;
  let upgrade = false;
  if (f !== undefined) {
    if (f.chunked) framing = CHUNKED;
    else if (f.contentLength > 0) framing = { kind: 'length', length: f.contentLength };
    wantsClose = f.connectionClose || (minorVersion === 0 && !f.connectionKeepAlive);
    upgrade = f.connectionUpgrade && f.upgradeHeader;
  }
  return new BytesRequestHead(
    buf,
    headersFrom,
    lineEnd,
    nameLengths,
    method,
    target,
    minorVersion,
    framing,
    wantsClose,
    upgrade,
    host,
  );
}

/** The names framing lines have in {@link headScanOut}, by kind. */
const FRAMING_NAMES: string[] = [];
FRAMING_NAMES[KIND_UPGRADE] = 'upgrade';
FRAMING_NAMES[KIND_CONNECTION] = 'connection';
FRAMING_NAMES[KIND_CONTENT_LENGTH] = 'content-length';
FRAMING_NAMES[KIND_TRANSFER_ENCODING] = 'transfer-encoding';

/**
 * The framing lines the scanner noted, as {@link framingOf} takes them: their names, and
 * their values trimmed (Upgrade's is not read). Positions are relative to `start`.
 */
function scannedFraming(buf: Buffer, start: number, count: number, names: string[], values: string[]): void {
  const o = headScanOut;
  for (let k = 0; k < count; k++) {
    const at = FRAMING_AT + FRAMING_WIDTH * k;
    const kind = o[at] as number;
    names.push(FRAMING_NAMES[kind] as string);
    values.push(
      kind === KIND_UPGRADE
        ? ''
        : buf.toString('latin1', start + (o[at + 1] as number) + 1, start + (o[at + 2] as number)).trim(),
    );
  }
}

/** {@link scanRequestHead} for a head the WebAssembly scanner accepted (see head-scan.ts). */
function acceptedRequestHead(buf: Buffer, start: number, strings: HeadStrings | undefined): RequestHead {
  const o = headScanOut;
  const sp1 = start + (o[0] as number);
  const sp2 = start + (o[1] as number);
  const count = o[8] as number;
  const names: string[] | undefined = count > 0 ? [] : undefined;
  const values: string[] | undefined = count > 0 ? [] : undefined;
  if (names !== undefined && values !== undefined) scannedFraming(buf, start, count, names, values);
  const target = scannedStrings.target;
  const hostCount = o[5] as number;
  const host = scannedStrings.host;
  if (strings !== undefined) {
    strings.target = target;
    if (hostCount > 0) strings.host = host;
  }
  const methodId = o[9] as number;
  return finishRequestHead(
    buf,
    start + (o[2] as number) + 2,
    start + (o[3] as number),
    o[4] as number,
    (buf[sp2 + 8] as number) - 0x30,
    methodId > 0 ? (KNOWN_METHODS[methodId - 1] as string) : buf.toString('latin1', start, sp1),
    target,
    names,
    values,
    host,
    hostCount,
  );
}

const CHUNKED: BodyFraming = Object.freeze({ kind: 'chunked' });
const NO_BODY: BodyFraming = Object.freeze({ kind: 'none' });

/** Parses a response head (status line and headers). */
export function parseResponseHead(text: string): ResponseHead {
  const lines = text.split('\r\n');
  const statusLine = lines[0] as string;
  if (!statusLine.startsWith('HTTP/1.') || statusLine.charCodeAt(8) !== 0x20) {
    throw new HttpParseError('malformed status line', 502);
  }
  const minorVersion = statusLine.charCodeAt(7) - 0x30;
  const status = Number(statusLine.slice(9, 12));
  if (!Number.isInteger(status) || status < 100 || status > 999) throw new HttpParseError('malformed status', 502);
  const fields = splitHeaders(lines, 1);
  const f = framingOf(fields, false);
  return {
    lines: fields.lines,
    names: fields.names,
    values: fields.values,
    status,
    minorVersion,
    connectionClose: f.connectionClose || (minorVersion === 0 && !f.connectionKeepAlive),
    contentLength: f.contentLength,
    chunked: f.chunked,
  };
}

/** What the relay needs of a response head: its status and how its body is delimited. */
export type ResponseFacts = Pick<
  ResponseHead,
  'status' | 'minorVersion' | 'connectionClose' | 'contentLength' | 'chunked'
>;

const LOWER = 0x20;

/** Whether buf[from, from + name.length) is `name` (lower-case ASCII), ignoring case. */
function nameIs(buf: Buffer, from: number, length: number, name: string): boolean {
  if (length !== name.length) return false;
  for (let i = 0; i < length; i++) if (((buf[from + i] as number) | LOWER) !== name.charCodeAt(i)) return false;
  return true;
}

/**
 * {@link parseResponseHead} for the proxy's hot path: reads the head straight from the
 * bytes `buf[0, end)` (without the final empty line), with the same checks and the same
 * outcome, but without making a string per header line — only the values of the headers
 * that decide framing (Content-Length, Transfer-Encoding, Connection) become strings.
 * The status must be three digits.
 */
export function parseResponseHeadBytes(buf: Buffer, end: number): ResponseFacts {
  return scanResponseHead(buf, end + 4) as ResponseFacts;
}

/** The facts of a complete head, by the string parser (which also throws what it finds wrong). */
function responseFactsOf(text: string): ResponseFacts {
  const r = parseResponseHead(text);
  return {
    status: r.status,
    minorVersion: r.minorVersion,
    connectionClose: r.connectionClose,
    contentLength: r.contentLength,
    chunked: r.chunked,
  };
}

/**
 * Finds and parses the response head at the start of `buf`, reading only bytes before
 * `limit`: its facts, with its end (the index of its final CRLFCRLF) in
 * {@link scanned}.headEnd, or undefined when its empty line is not before `limit` yet
 * (see {@link scanRequestHead}); the checks are {@link parseResponseHeadBytes}'s.
 */
export function scanResponseHead(buf: Buffer, limit: number): ResponseFacts | undefined {
  if (scanResponseWords(buf, limit)) return acceptedResponseHead(buf);
  let lineEnd = 0;
  for (; lineEnd < limit; lineEnd++) {
    if (buf[lineEnd] === 0x0d) {
      if (lineEnd + 1 >= limit) return undefined;
      if (buf[lineEnd + 1] === 0x0a) break;
    }
  }
  if (lineEnd >= limit) return undefined;
  // A status line this short is malformed: the string parser says how (it throws).
  if (lineEnd < 12) return responseFactsOf(buf.toString('latin1', 0, lineEnd));
  if (
    buf[0] !== 0x48 || // H
    buf[1] !== 0x54 || // T
    buf[2] !== 0x54 || // T
    buf[3] !== 0x50 || // P
    buf[4] !== 0x2f || // /
    buf[5] !== 0x31 || // 1
    buf[6] !== 0x2e || // .
    buf[8] !== 0x20
  ) {
    throw new HttpParseError('malformed status line', 502);
  }
  const minorVersion = (buf[7] as number) - 0x30;
  const d0 = (buf[9] as number) - 0x30;
  const d1 = (buf[10] as number) - 0x30;
  const d2 = (buf[11] as number) - 0x30;
  if (d0 < 0 || d0 > 9 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) throw new HttpParseError('malformed status', 502);
  const status = d0 * 100 + d1 * 10 + d2;
  if (status < 100) throw new HttpParseError('malformed status', 502);
  // Content-Length values that are plain digits are read here; the other framing headers
  // go through framingOf as strings. Anything else about Content-Length (a list, other
  // characters, values that disagree): the string parser decides, once the head is complete.
  let contentLength = -1;
  let byString = false;
  let names: string[] | undefined;
  let values: string[] | undefined;
  let pos = lineEnd + 2;
  for (;;) {
    if (pos + 1 >= limit) return undefined;
    if (buf[pos] === 0x0d && buf[pos + 1] === 0x0a) break; // the empty line: the head ends
    const colon = checkHeaderLine(buf, pos, limit);
    if (colon === INCOMPLETE) return undefined;
    const i = checkedLineEnd;
    const n = colon - pos;
    if (n === 14 && nameIs(buf, pos, n, 'content-length')) {
      const length = plainDigits(buf, colon + 1, i);
      if (length < 0 || (contentLength >= 0 && contentLength !== length)) byString = true;
      else contentLength = length;
    } else {
      const name =
        n === 17 && nameIs(buf, pos, n, 'transfer-encoding')
          ? 'transfer-encoding'
          : n === 10 && nameIs(buf, pos, n, 'connection')
            ? 'connection'
            : undefined;
      if (name !== undefined) {
        names ??= [];
        values ??= [];
        names.push(name);
        values.push(buf.toString('latin1', colon + 1, i).trim());
      }
    }
    lineEnd = i;
    pos = i + 2;
  }
  scanned.headEnd = lineEnd;
  if (byString) return responseFactsOf(buf.toString('latin1', 0, lineEnd));
  return finishResponseHead(status, minorVersion, contentLength, names, values);
}

/** The facts of a response head once its lines are read (by either path). */
function finishResponseHead(
  status: number,
  minorVersion: number,
  contentLength: number,
  names: string[] | undefined,
  values: string[] | undefined,
): ResponseFacts {
  if (names === undefined) {
    return { status, minorVersion, connectionClose: minorVersion === 0, contentLength, chunked: false };
  }
  const f = framingOf({ lines: [], names, values: values ?? [] }, false, contentLength);
  return {
    status,
    minorVersion,
    connectionClose: f.connectionClose || (minorVersion === 0 && !f.connectionKeepAlive),
    contentLength: f.contentLength,
    chunked: f.chunked,
  };
}

/** {@link scanResponseHead} for a head the WebAssembly scanner accepted (see head-scan.ts). */
function acceptedResponseHead(buf: Buffer): ResponseFacts {
  const o = headScanOut;
  scanned.headEnd = o[3] as number;
  const count = o[8] as number;
  const names: string[] | undefined = count > 0 ? [] : undefined;
  const values: string[] | undefined = count > 0 ? [] : undefined;
  if (names !== undefined && values !== undefined) scannedFraming(buf, 0, count, names, values);
  return finishResponseHead(o[0] as number, o[1] as number, o[5] as number, names, values);
}

/**
 * The value of buf[from, to) as a number when it is 1–15 digits between optional spaces
 * and tabs (what DIGITS accepts after trimming); -1 for anything else.
 */
function plainDigits(buf: Buffer, from: number, to: number): number {
  while (from < to && (buf[from] === 0x20 || buf[from] === 0x09)) from++;
  while (to > from && (buf[to - 1] === 0x20 || buf[to - 1] === 0x09)) to--;
  const n = to - from;
  if (n < 1 || n > 15) return -1;
  let value = 0;
  for (let i = from; i < to; i++) {
    const d = (buf[i] as number) - 0x30;
    if (d < 0 || d > 9) return -1;
    value = value * 10 + d;
  }
  return value;
}

/** How a message body is delimited, without the length (see {@link BodyFraming}). */
export type BodyKind = BodyFraming['kind'];

/**
 * How the body of a response to `method` with this head is delimited (RFC 9112 §6.3);
 * for `length`, the length is `head.contentLength`. (No object per response.)
 */
export function responseBodyKind(method: string, head: ResponseFacts): BodyKind {
  const status = head.status;
  if (method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200)) return 'none';
  if (method === 'CONNECT' && status >= 200 && status < 300) return 'none';
  if (head.chunked) return 'chunked';
  if (head.contentLength >= 0) return head.contentLength === 0 ? 'none' : 'length';
  return 'close';
}

/** How the body of a response to `method` with this head is delimited (RFC 9112 §6.3). */
export function responseFraming(method: string, head: ResponseFacts): BodyFraming {
  const kind = responseBodyKind(method, head);
  return kind === 'length' ? { kind, length: head.contentLength } : { kind };
}
