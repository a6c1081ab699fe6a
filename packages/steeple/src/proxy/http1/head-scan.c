/*
 * The common shape of HTTP/1.x request and response heads, read eight bytes at a time, for
 * the proxy's relay (compiled to WebAssembly by scripts/build-wasm.mjs into
 * head-scan-wasm.ts; loaded by head-scan.ts).
 *
 * Each scanner either accepts a head and reports where its parts are, or answers FALLBACK,
 * and the TypeScript parser in message-head.ts reads that head instead. A head is accepted
 * only when that parser would accept it with the same outcome, so every refusal, every
 * error message and every head that is not complete yet is the TypeScript parser's. What is
 * accepted:
 *
 *   request   METHOD SP TARGET SP HTTP/1.(0|1) CRLF *(header-line) CRLF
 *             METHOD: upper-case letters; TARGET: bytes 0x21-0x7e
 *   response  HTTP/1.(0|1) SP 3DIGIT (100 or more) reason CRLF *(header-line) CRLF
 *             reason: any bytes but CR, LF and NUL (the line is at least 12 bytes long)
 *   header-line  NAME ":" VALUE CRLF
 *             NAME: token bytes (RFC 9110 tchar); VALUE: any bytes but CR, LF and NUL
 *
 * A response's Content-Length values must each be 1-15 digits between optional spaces and
 * tabs, all equal and below 2^31; anything else about them is FALLBACK.
 *
 * The head is copied into `input` first (at most WINDOW bytes: a head that does not end
 * within them is FALLBACK). Results go to `out` (32-bit integers; layout below).
 */

typedef unsigned char u8;
typedef unsigned int u32;
typedef unsigned long long u64;

#define WINDOW 8192
#define OK 0
#define FALLBACK 1

/* The head's bytes; 8 more so that a word read never leaves the array (those are not used). */
u8 input[WINDOW + 8];

/*
 * Results, by index:
 *   request:  0 first space, 1 second space, 2 CR of the request line, 3 CR of the last
 *             line (where the final CRLFCRLF starts), 4 header-name lengths seen (bit n & 31),
 *             5 Host lines, 6 and 7 the last Host value's start and end without the spaces
 *             around it (what String#trim removes in latin1: SP, HT, VT, FF, NBSP),
 *             9 the method (METHOD_*; 0 for another), 10 and 11 the target's and the last
 *             Host value's place in the intern table (see intern())
 *   response: 0 status, 1 minor version, 3 CR of the last line, 5 Content-Length (-1: none)
 *   both:     8 framing lines, then for each (at most MAX_FRAMING) from index 16, three
 *             entries: its kind (KIND_*), its colon, its CR
 */
int out[16 + 3 * 8];

#define MAX_FRAMING 8

/* Methods named by number in out[9], in message-head.ts's order. */
#define METHOD_GET 1
#define METHOD_POST 2
#define METHOD_PUT 3
#define METHOD_HEAD 4
#define METHOD_DELETE 5
#define METHOD_PATCH 6
#define METHOD_OPTIONS 7
#define KIND_UPGRADE 1
#define KIND_CONNECTION 2
#define KIND_CONTENT_LENGTH 3
#define KIND_TRANSFER_ENCODING 4

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

static inline u64 load64(const u8 *p) {
  u64 x;
  __builtin_memcpy(&x, p, 8);
  return x;
}

/*
 * Byte masks over an 8-byte word: the high bit of each byte of the result says whether that
 * byte passes the test, exactly for every byte (no borrow or carry crosses bytes: the
 * high bit is cleared before adding).
 */
#define LOWS7 0x7f7f7f7f7f7f7f7fULL

/* Bytes that are at least lo (lo <= 0x80). */
static inline u64 at_least(u64 x, u64 lo) { return (((x & LOWS7) + ONES * (0x80 - lo)) | x) & HIGHS; }

/* Bytes that are at most hi (hi < 0x80). */
static inline u64 at_most(u64 x, u64 hi) { return ~(((x & LOWS7) + ONES * (0x7f - hi)) | x) & HIGHS; }

/* Bytes equal to b. */
static inline u64 equal_to(u64 x, u64 b) {
  u64 v = x ^ (ONES * b);
  return ~(((v & LOWS7) + LOWS7) | v) & HIGHS;
}

/* The index of the first byte whose high bit is set in a nonzero mask. */
static inline int first_byte(u64 mask) { return __builtin_ctzll(mask) >> 3; }

/* Bytes that are not letters or hyphens (the usual header-name bytes). */
static inline u64 not_name_letters(u64 x) {
  u64 y = x | (ONES * 0x20);
  return ~((at_least(y, 0x61) & at_most(y, 0x7a)) | equal_to(x, '-')) & HIGHS;
}

/* Bytes outside 0x21-0x7e. */
static inline u64 not_target_bytes(u64 x) { return ~(at_least(x, 0x21) & at_most(x, 0x7e)) & HIGHS; }

/* Bytes below 0x0e: CR, LF and NUL among them (and TAB and other controls, which a value may hold). */
static inline u64 low_controls(u64 x) { return ~at_least(x, 0x0e) & HIGHS; }

/* RFC 9110 tchar: what a header name is made of. */
static inline int is_token(u32 c) {
  if (((c | 0x20) - 0x61) <= 25 || c - (u32)'0' <= 9) return 1;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return 1;
    default:
      return 0;
  }
}
static inline int is_target_byte(u32 c) { return c > 0x20 && c < 0x7f; }
static inline int is_value_byte(u32 c) { return c != '\r' && c != '\n' && c != 0; }

/* The index of the first byte from i (before limit) that is not a token byte, or limit. */
static int name_end(int i, int limit) {
  for (;;) {
    while (i + 8 <= limit) {
      u64 m = not_name_letters(load64(input + i));
      if (m != 0) {
        i += first_byte(m);
        break;
      }
      i += 8;
    }
    if (i >= limit) return limit;
    /* Not a letter or hyphen: a token byte of another kind goes on, anything else ends the name. */
    if (!is_token(input[i])) return i;
    i++;
  }
}

/* The index of the first byte from i (before limit) outside 0x21-0x7e, or limit. */
static int target_end(int i, int limit) {
  for (;;) {
    while (i + 8 <= limit) {
      u64 m = not_target_bytes(load64(input + i));
      if (m != 0) return i + first_byte(m);
      i += 8;
    }
    if (i >= limit) return limit;
    if (!is_target_byte(input[i])) return i;
    i++;
  }
}

/* The index of the first CR, LF or NUL from i (before limit), or limit. */
static int value_end(int i, int limit) {
  for (;;) {
    while (i + 8 <= limit) {
      u64 m = low_controls(load64(input + i));
      if (m != 0) {
        i += first_byte(m);
        break;
      }
      i += 8;
    }
    if (i >= limit) return limit;
    if (!is_value_byte(input[i])) return i;
    i++;
  }
}

static inline u32 load32(const u8 *p) {
  u32 x;
  __builtin_memcpy(&x, p, 4);
  return x;
}

/*
 * Whether input[at, at + n) is `name` (lower-case, 4 or more bytes), ignoring the case of
 * letters: word by word, the last word ending where the name ends. OR-ing 0x20 into every
 * byte folds case as message-head.ts's nameIs does (a name here holds token bytes only).
 */
static inline __attribute__((always_inline)) int name_is(int at, int n, const char *name, int length) {
  if (n != length) return 0;
  const u8 *p = input + at;
  const u8 *q = (const u8 *)name;
  if (length >= 8) {
    for (int k = 0; k + 8 < length; k += 8) {
      if ((load64(p + k) | (ONES * 0x20)) != load64(q + k)) return 0;
    }
    return (load64(p + length - 8) | (ONES * 0x20)) == load64(q + length - 8);
  }
  return (load32(p) | 0x20202020u) == load32(q) && (load32(p + length - 4) | 0x20202020u) == load32(q + length - 4);
}

/*
 * The intern table: the bytes of targets and Host values seen lately, each in the slot its
 * hash picks, so that the TypeScript side can hand out the string it made for the same
 * bytes before instead of decoding them again (requests mostly repeat them). A hit needs
 * the same length and the same bytes, compared in full; the hash only picks the slot.
 */
#define INTERN_SLOTS 64
#define INTERN_MAX 128
/* One spare row after the slots: a masked word read past the last slot's bytes stays inside. */
static u8 intern_bytes[INTERN_SLOTS + 1][INTERN_MAX];
static int intern_length[INTERN_SLOTS];

/*
 * input[from, to) in the intern table: k + 1 when slot k holds these bytes already, -(k + 1)
 * when they were stored in slot k just now (its string must be made and kept), 0 when they
 * are not kept (empty or longer than INTERN_MAX).
 */
static int intern(int from, int to) {
  int n = to - from;
  if (n <= 0 || n > INTERN_MAX) return 0;
  const u8 *p = input + from;
  /* Eight bytes at a time (the last word masked to the bytes that belong: input has slack after them). */
  u64 h = (u64)n * 0x9e3779b97f4a7c15ULL;
  int i = 0;
  for (; i + 8 <= n; i += 8) h = (h ^ load64(p + i)) * 0xff51afd7ed558ccdULL;
  if (i < n) h = (h ^ (load64(p + i) & (~0ULL >> (8 * (8 - (n - i)))))) * 0xff51afd7ed558ccdULL;
  int k = (int)((h >> 58) & (INTERN_SLOTS - 1));
  u8 *slot = intern_bytes[k];
  if (intern_length[k] == n) {
    /* Word by word, the last one masked like the hash's (slot and input have slack after the bytes). */
    u64 diff = 0;
    for (i = 0; i + 8 <= n; i += 8) diff |= load64(slot + i) ^ load64(p + i);
    if (i < n) diff |= (load64(slot + i) ^ load64(p + i)) & (~0ULL >> (8 * (8 - (n - i))));
    if (diff == 0) return k + 1;
  }
  __builtin_memcpy(slot, p, (unsigned long)n);
  intern_length[k] = n;
  return -(k + 1);
}

/* What String#trim removes from a latin1 header value: SP, HT, VT, FF and NBSP (CR and LF never reach here). */
static inline int is_trimmed(u32 c) { return c == ' ' || c == '\t' || c == 0x0b || c == 0x0c || c == 0xa0; }

/* Whether p[0, n) is `text`, exactly. */
static inline __attribute__((always_inline)) int same_bytes(const u8 *p, const char *text, int n) {
  for (int k = 0; k < n; k++) {
    if (p[k] != (u8)text[k]) return 0;
  }
  return 1;
}

/* Which of the methods named by number input[0, n) is (METHOD_*), or 0. */
static int method_of(int n) {
  switch (n) {
    case 3:
      return same_bytes(input, "GET", 3) ? METHOD_GET : same_bytes(input, "PUT", 3) ? METHOD_PUT : 0;
    case 4:
      return same_bytes(input, "POST", 4) ? METHOD_POST : same_bytes(input, "HEAD", 4) ? METHOD_HEAD : 0;
    case 5:
      return same_bytes(input, "PATCH", 5) ? METHOD_PATCH : 0;
    case 6:
      return same_bytes(input, "DELETE", 6) ? METHOD_DELETE : 0;
    case 7:
      return same_bytes(input, "OPTIONS", 7) ? METHOD_OPTIONS : 0;
    default:
      return 0;
  }
}

/* Whether a CRLF starts at i (both before limit). */
static inline int crlf_at(int i, int limit) { return i + 1 < limit && input[i] == '\r' && input[i + 1] == '\n'; }

/* 1-15 digits between optional spaces and tabs in input[from, to), as a number below 2^31; -1 otherwise. */
static int plain_digits(int from, int to) {
  while (from < to && (input[from] == ' ' || input[from] == '\t')) from++;
  while (to > from && (input[to - 1] == ' ' || input[to - 1] == '\t')) to--;
  if (to - from < 1 || to - from > 15) return -1;
  u64 value = 0;
  for (int i = from; i < to; i++) {
    u32 d = input[i] - (u32)'0';
    if (d > 9) return -1;
    value = value * 10 + d;
  }
  return value > 0x7fffffffULL ? -1 : (int)value;
}

static int framing_line(int kind, int colon, int end) {
  int k = out[8];
  if (k >= MAX_FRAMING) return FALLBACK;
  out[16 + 3 * k] = kind;
  out[17 + 3 * k] = colon;
  out[18 + 3 * k] = end;
  out[8] = k + 1;
  return OK;
}

/*
 * The header lines from pos to the empty line. Request heads note Host and the framing
 * headers (Upgrade, Connection, Content-Length, Transfer-Encoding); response heads read
 * Content-Length and note Transfer-Encoding and Connection. Sets out[3] (the CR where the
 * final CRLFCRLF starts: `last`, the previous line's CR, when there are no header lines).
 */
static int header_lines(int pos, int last, int limit, int request) {
  int lengths = 0;
  int content_length = -1;
  for (;;) {
    if (crlf_at(pos, limit)) break;
    int colon = name_end(pos, limit);
    if (colon == pos || colon >= limit || input[colon] != ':') return FALLBACK;
    int end = value_end(colon + 1, limit);
    if (!crlf_at(end, limit)) return FALLBACK;
    int n = colon - pos;
    lengths |= 1 << (n & 31);
    if (request) {
      if (name_is(pos, n, "host", 4)) {
        int from = colon + 1;
        int to = end;
        while (from < to && is_trimmed(input[from])) from++;
        while (to > from && is_trimmed(input[to - 1])) to--;
        out[5]++;
        out[6] = from;
        out[7] = to;
      } else if (name_is(pos, n, "upgrade", 7)) {
        if (framing_line(KIND_UPGRADE, colon, end) != OK) return FALLBACK;
      } else if (name_is(pos, n, "connection", 10)) {
        if (framing_line(KIND_CONNECTION, colon, end) != OK) return FALLBACK;
      } else if (name_is(pos, n, "content-length", 14)) {
        if (framing_line(KIND_CONTENT_LENGTH, colon, end) != OK) return FALLBACK;
      } else if (name_is(pos, n, "transfer-encoding", 17)) {
        if (framing_line(KIND_TRANSFER_ENCODING, colon, end) != OK) return FALLBACK;
      }
    } else if (name_is(pos, n, "content-length", 14)) {
      int length = plain_digits(colon + 1, end);
      if (length < 0 || (content_length >= 0 && content_length != length)) return FALLBACK;
      content_length = length;
    } else if (name_is(pos, n, "transfer-encoding", 17)) {
      if (framing_line(KIND_TRANSFER_ENCODING, colon, end) != OK) return FALLBACK;
    } else if (name_is(pos, n, "connection", 10)) {
      if (framing_line(KIND_CONNECTION, colon, end) != OK) return FALLBACK;
    }
    last = end;
    pos = end + 2;
  }
  out[3] = last;
  out[4] = lengths;
  if (!request) out[5] = content_length;
  return OK;
}

/* Reads the request head in input[0, limit). */
int scan_request(int limit) {
  out[5] = 0;
  out[8] = 0;
  int i = 0;
  while (i < limit && input[i] - (u32)'A' <= 25) i++;
  if (i == 0 || i >= limit || input[i] != ' ') return FALLBACK;
  int sp1 = i;
  int sp2 = target_end(sp1 + 1, limit);
  if (sp2 == sp1 + 1 || sp2 + 11 > limit || input[sp2] != ' ') return FALLBACK;
  const u8 *v = input + sp2 + 1;
  if (v[0] != 'H' || v[1] != 'T' || v[2] != 'T' || v[3] != 'P' || v[4] != '/' || v[5] != '1' || v[6] != '.' ||
      (v[7] != '0' && v[7] != '1') || v[8] != '\r' || v[9] != '\n') {
    return FALLBACK;
  }
  out[0] = sp1;
  out[1] = sp2;
  out[2] = sp2 + 9;
  if (header_lines(sp2 + 11, sp2 + 9, limit, 1) != OK) return FALLBACK;
  // Only an accepted head touches the intern table: the TypeScript side reads every one.
  out[9] = method_of(sp1);
  out[10] = intern(sp1 + 1, sp2);
  out[11] = out[5] > 0 ? intern(out[6], out[7]) : 0;
  return OK;
}

/* Reads the response head in input[0, limit). */
int scan_response(int limit) {
  out[8] = 0;
  if (limit < 14) return FALLBACK;
  const u8 *v = input;
  if (v[0] != 'H' || v[1] != 'T' || v[2] != 'T' || v[3] != 'P' || v[4] != '/' || v[5] != '1' || v[6] != '.' ||
      (v[7] != '0' && v[7] != '1') || v[8] != ' ') {
    return FALLBACK;
  }
  u32 d0 = v[9] - (u32)'0';
  u32 d1 = v[10] - (u32)'0';
  u32 d2 = v[11] - (u32)'0';
  if (d0 > 9 || d1 > 9 || d2 > 9 || d0 == 0) return FALLBACK;
  int line_end = value_end(12, limit);
  if (!crlf_at(line_end, limit)) return FALLBACK;
  out[0] = (int)(d0 * 100 + d1 * 10 + d2);
  out[1] = v[7] - '0';
  return header_lines(line_end + 2, line_end, limit, 0);
}
