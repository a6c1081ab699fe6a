/**
 * A strict JSON parser for documents where `JSON.parse` is not good enough:
 *
 * - duplicate object member names are an error (B-8 requires rejecting a bundle map
 *   with a duplicate trust domain, and RFC 7519 lets a JWT parser reject duplicate
 *   claims — silently keeping the last one invites confusion attacks);
 * - integers keep their exact value: an integer literal outside the safe range
 *   (±(2^53−1)) becomes a `bigint` instead of a rounded `number`, and integer values of
 *   the member names in `bigintMembers` (such as `spiffe_sequence`, B-3) are always
 *   `bigint`, so the caller never has to guess which type it gets;
 * - input size and nesting depth are limited, so hostile input can neither hang the
 *   parser nor overflow the stack.
 *
 * Errors are {@link JsonSyntaxError}s naming the position; callers wrap them in their
 * own typed error (a bundle or JWT-SVID error). {@link stringifyJson} writes `bigint`
 * values back as exact integer literals.
 * @module
 */

/** A value produced by {@link parseStrictJson}. */
export type JsonValue = null | boolean | number | bigint | string | JsonValue[] | JsonObject;
/** A JSON object as returned by {@link parseStrictJson}: a plain object with own enumerable members. */
export interface JsonObject {
  [member: string]: JsonValue;
}

export interface StrictJsonOptions {
  /** Longest accepted input, in UTF-16 code units for strings and bytes for byte input. Default 4 MiB. */
  readonly maxLength?: number;
  /** Deepest accepted nesting of arrays and objects. Default 64. */
  readonly maxDepth?: number;
  /** Member names whose integer values are always returned as `bigint` (non-integer literals stay numbers). */
  readonly bigintMembers?: ReadonlySet<string>;
  /**
   * What to do with integer literals outside the safe range: `'bigint'` (default) keeps them
   * exact, `'number'` rounds them like `JSON.parse` (for documents handed on as plain JSON,
   * such as JWT claims).
   */
  readonly largeIntegers?: 'bigint' | 'number';
}

export const DEFAULT_MAX_JSON_LENGTH = 4 * 1024 * 1024;
export const DEFAULT_MAX_JSON_DEPTH = 64;

/** The text is not acceptable JSON; `position` is the offset (in UTF-16 code units) where the problem was found. */
export class JsonSyntaxError extends SyntaxError {
  readonly position: number;
  constructor(message: string, position: number) {
    super(message);
    this.name = 'JsonSyntaxError';
    this.position = position;
  }
}

/** Longest number literal accepted. */
const MAX_NUMBER_LENGTH = 1000;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = -MAX_SAFE;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Parses `input` strictly; see the module documentation for how it differs from `JSON.parse`. */
export function parseStrictJson(input: string | Uint8Array, options: StrictJsonOptions = {}): JsonValue {
  const maxLength = options.maxLength ?? DEFAULT_MAX_JSON_LENGTH;
  if (input.length > maxLength) {
    throw new JsonSyntaxError(`input is ${input.length} long, more than the limit of ${maxLength}`, 0);
  }
  let text: string;
  if (typeof input === 'string') {
    text = input;
  } else {
    try {
      text = utf8.decode(input);
    } catch {
      throw new JsonSyntaxError('input is not valid UTF-8', 0);
    }
  }
  return new Parser(text, options).parseDocument();
}

class Parser {
  readonly #text: string;
  readonly #maxDepth: number;
  readonly #bigintMembers: ReadonlySet<string> | undefined;
  readonly #largeAsBigint: boolean;
  #pos = 0;

  constructor(text: string, options: StrictJsonOptions) {
    this.#text = text;
    this.#maxDepth = options.maxDepth ?? DEFAULT_MAX_JSON_DEPTH;
    this.#bigintMembers = options.bigintMembers;
    this.#largeAsBigint = (options.largeIntegers ?? 'bigint') === 'bigint';
  }

  parseDocument(): JsonValue {
    this.#skipWhitespace();
    const value = this.#parseValue(0, undefined);
    this.#skipWhitespace();
    if (this.#pos < this.#text.length) this.#fail('unexpected data after the JSON value');
    return value;
  }

  #fail(what: string, at = this.#pos): never {
    const before = this.#text.slice(0, at);
    const line = before.split('\n').length;
    const column = at - before.lastIndexOf('\n');
    throw new JsonSyntaxError(`${what} at line ${line} column ${column} (offset ${at})`, at);
  }

  #describe(at: number): string {
    if (at >= this.#text.length) return 'end of input';
    return `character ${JSON.stringify(this.#text[at])}`;
  }

  #skipWhitespace(): void {
    const t = this.#text;
    let p = this.#pos;
    for (;;) {
      const c = t.charCodeAt(p);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) p++;
      else break;
    }
    this.#pos = p;
  }

  #parseValue(depth: number, member: string | undefined): JsonValue {
    const c = this.#text.charCodeAt(this.#pos);
    switch (c) {
      case 0x7b: // {
        return this.#parseObject(depth + 1);
      case 0x5b: // [
        return this.#parseArray(depth + 1);
      case 0x22: // "
        return this.#parseString();
      case 0x74: // t
        return this.#parseLiteral('true', true);
      case 0x66: // f
        return this.#parseLiteral('false', false);
      case 0x6e: // n
        return this.#parseLiteral('null', null);
      default:
        if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.#parseNumber(member);
        return this.#fail(`unexpected ${this.#describe(this.#pos)}, expected a value`);
    }
  }

  #parseLiteral<T extends JsonValue>(word: string, value: T): T {
    if (!this.#text.startsWith(word, this.#pos))
      this.#fail(`unexpected ${this.#describe(this.#pos)}, expected a value`);
    this.#pos += word.length;
    return value;
  }

  #enter(depth: number): void {
    if (depth > this.#maxDepth) this.#fail(`nesting deeper than ${this.#maxDepth} levels`);
  }

  #parseObject(depth: number): JsonObject {
    this.#enter(depth);
    this.#pos++; // {
    const obj: JsonObject = {};
    this.#skipWhitespace();
    if (this.#text.charCodeAt(this.#pos) === 0x7d) {
      this.#pos++;
      return obj;
    }
    for (;;) {
      if (this.#text.charCodeAt(this.#pos) !== 0x22) {
        this.#fail(`unexpected ${this.#describe(this.#pos)}, expected a member name in double quotes`);
      }
      const keyAt = this.#pos;
      const key = this.#parseString();
      if (Object.hasOwn(obj, key)) this.#fail(`duplicate member name ${JSON.stringify(key.slice(0, 100))}`, keyAt);
      this.#skipWhitespace();
      if (this.#text.charCodeAt(this.#pos) !== 0x3a)
        this.#fail(`unexpected ${this.#describe(this.#pos)}, expected ":"`);
      this.#pos++;
      this.#skipWhitespace();
      const value = this.#parseValue(depth, key);
      // Assigning "__proto__" would replace the prototype instead of adding a member.
      if (key === '__proto__') {
        Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
      } else {
        obj[key] = value;
      }
      this.#skipWhitespace();
      const c = this.#text.charCodeAt(this.#pos);
      if (c === 0x2c) {
        this.#pos++;
        this.#skipWhitespace();
      } else if (c === 0x7d) {
        this.#pos++;
        return obj;
      } else {
        this.#fail(`unexpected ${this.#describe(this.#pos)}, expected "," or "}"`);
      }
    }
  }

  #parseArray(depth: number): JsonValue[] {
    this.#enter(depth);
    this.#pos++; // [
    const arr: JsonValue[] = [];
    this.#skipWhitespace();
    if (this.#text.charCodeAt(this.#pos) === 0x5d) {
      this.#pos++;
      return arr;
    }
    for (;;) {
      arr.push(this.#parseValue(depth, undefined));
      this.#skipWhitespace();
      const c = this.#text.charCodeAt(this.#pos);
      if (c === 0x2c) {
        this.#pos++;
        this.#skipWhitespace();
      } else if (c === 0x5d) {
        this.#pos++;
        return arr;
      } else {
        this.#fail(`unexpected ${this.#describe(this.#pos)}, expected "," or "]"`);
      }
    }
  }

  #parseString(): string {
    const t = this.#text;
    const start = this.#pos;
    let p = start + 1; // after the opening quote
    let out = '';
    let runStart = p;
    for (;;) {
      if (p >= t.length) this.#fail('unterminated string', start);
      const c = t.charCodeAt(p);
      if (c === 0x22) {
        out += t.slice(runStart, p);
        this.#pos = p + 1;
        return out;
      }
      if (c < 0x20) this.#fail('control character in string (must be escaped)', p);
      if (c !== 0x5c) {
        p++;
        continue;
      }
      out += t.slice(runStart, p);
      const e = t.charCodeAt(p + 1);
      switch (e) {
        case 0x22:
          out += '"';
          break;
        case 0x5c:
          out += '\\';
          break;
        case 0x2f:
          out += '/';
          break;
        case 0x62:
          out += '\b';
          break;
        case 0x66:
          out += '\f';
          break;
        case 0x6e:
          out += '\n';
          break;
        case 0x72:
          out += '\r';
          break;
        case 0x74:
          out += '\t';
          break;
        case 0x75: {
          const hex = t.slice(p + 2, p + 6);
          if (!/^[0-9A-Fa-f]{4}$/.test(hex)) this.#fail('invalid \\u escape in string', p);
          out += String.fromCharCode(Number.parseInt(hex, 16));
          p += 4;
          break;
        }
        default:
          this.#fail('invalid escape in string', p);
      }
      p += 2;
      runStart = p;
    }
  }

  #parseNumber(member: string | undefined): number | bigint {
    const t = this.#text;
    const start = this.#pos;
    let p = start;
    if (t.charCodeAt(p) === 0x2d) p++;
    const firstDigit = t.charCodeAt(p);
    if (firstDigit === 0x30) {
      p++;
    } else if (firstDigit >= 0x31 && firstDigit <= 0x39) {
      while (isDigit(t.charCodeAt(p))) p++;
    } else {
      this.#fail('invalid number: expected a digit', p);
    }
    let integer = true;
    if (t.charCodeAt(p) === 0x2e) {
      integer = false;
      p++;
      if (!isDigit(t.charCodeAt(p))) this.#fail('invalid number: expected a digit after "."', p);
      while (isDigit(t.charCodeAt(p))) p++;
    }
    const e = t.charCodeAt(p);
    if (e === 0x65 || e === 0x45) {
      integer = false;
      p++;
      const sign = t.charCodeAt(p);
      if (sign === 0x2b || sign === 0x2d) p++;
      if (!isDigit(t.charCodeAt(p))) this.#fail('invalid number: expected a digit in the exponent', p);
      while (isDigit(t.charCodeAt(p))) p++;
    }
    this.#pos = p;
    // No document of ours needs more; BigInt conversion of megabytes of digits costs seconds.
    if (p - start > MAX_NUMBER_LENGTH) this.#fail(`number literal longer than ${MAX_NUMBER_LENGTH} characters`, start);
    const literal = t.slice(start, p);
    if (integer) {
      const forceBigint = member !== undefined && this.#bigintMembers?.has(member) === true;
      // Up to 15 digits always fits a double exactly; longer literals are checked exactly.
      if (forceBigint || (this.#largeAsBigint && literal.length > 15)) {
        const big = BigInt(literal);
        if (forceBigint || big > MAX_SAFE || big < MIN_SAFE) return big;
        return Number(big);
      }
    }
    const n = Number(literal);
    if (!Number.isFinite(n)) this.#fail('number is out of range', start);
    return n;
  }
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/**
 * Serializes a JSON value like `JSON.stringify` (compact), writing `bigint` values as exact
 * integer literals. Members whose value is `undefined` are left out, as `JSON.stringify` does.
 */
export function stringifyJson(value: unknown): string {
  if (typeof value === 'bigint') return value.toString();
  if (value === null || typeof value !== 'object') {
    const s = JSON.stringify(value);
    if (s === undefined) throw new TypeError(`cannot serialize a ${typeof value} as JSON`);
    return s;
  }
  if (Array.isArray(value)) {
    return `[${value.map((v) => (v === undefined ? 'null' : stringifyJson(v))).join(',')}]`;
  }
  const parts: string[] = [];
  for (const [k, v] of Object.entries(value)) {
    if (v === undefined) continue;
    parts.push(`${JSON.stringify(k)}:${stringifyJson(v)}`);
  }
  return `{${parts.join(',')}}`;
}
