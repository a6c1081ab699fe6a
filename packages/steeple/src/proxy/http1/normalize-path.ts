/**
 * The path that policy sees and the app receives must be the same string, or a policy on
 * `/admin*` could be passed with `/./admin`, `//admin` or `/%61dmin`. Requests are
 * normalised the way Istio's recommended settings do: percent-encoded unreserved
 * characters decoded (RFC 3986 §6.2.2.2), dot segments removed (§5.2.4), and repeated
 * slashes merged. Encoded slashes (`%2F`) are left encoded.
 * @module
 */

const UNRESERVED = /[A-Za-z0-9\-._~]/;

export interface NormalizedTarget {
  /** Normalised path, without the query. */
  readonly path: string;
  /** The request target to forward (normalised path plus the original query). */
  readonly target: string;
  /** Whether `target` differs from the one received. */
  readonly changed: boolean;
  /** The authority of an absolute-form target, when there was one. */
  readonly authority?: string;
}

function decodeUnreserved(path: string): string {
  if (!path.includes('%')) return path;
  return path.replace(/%([0-9A-Fa-f]{2})/g, (whole, hex: string) => {
    const ch = String.fromCharCode(Number.parseInt(hex, 16));
    return UNRESERVED.test(ch) ? ch : whole.toUpperCase();
  });
}

function removeDotSegments(path: string): string {
  const out: string[] = [];
  const segments = path.split('/');
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i] as string;
    if (s === '.' || s === '..') {
      if (s === '..') out.pop();
      if (i === segments.length - 1) out.push('');
    } else {
      out.push(s);
    }
  }
  return `/${out.join('/')}`;
}

/** Whether the path may need work (most do not: a fast check keeps them on the fast path). */
function needsNormalizing(path: string): boolean {
  return path.includes('%') || path.includes('/.') || path.includes('//');
}

/**
 * Normalises an HTTP/1.1 request target (origin-form `/a/b?q` or absolute-form
 * `http://host/a`). `*` (OPTIONS) and authority-form (CONNECT) are returned as they are.
 * @returns undefined when the target is none of those forms.
 */
export function normalizeTarget(target: string): NormalizedTarget | undefined {
  let authority: string | undefined;
  let rest = target;
  if (target.charCodeAt(0) !== 0x2f /* / */) {
    if (target === '*') return { path: '*', target, changed: false };
    const scheme = /^https?:\/\/([^/?#]*)/i.exec(target);
    if (scheme === null) return /^[^/?#\s]+:\d+$/.test(target) ? { path: '', target, changed: false } : undefined;
    authority = scheme[1] as string;
    rest = target.slice(scheme[0].length) || '/';
    if (rest.charCodeAt(0) !== 0x2f) rest = `/${rest}`;
  }
  const q = rest.indexOf('?');
  const hash = rest.indexOf('#');
  const end = q >= 0 ? q : hash >= 0 ? hash : rest.length;
  const rawPath = rest.slice(0, end);
  const query = q >= 0 ? rest.slice(q, hash > q ? hash : rest.length) : '';
  if (!needsNormalizing(rawPath)) {
    const base = { path: rawPath, target: rawPath + query, changed: rawPath + query !== target };
    return authority === undefined ? base : { ...base, authority };
  }
  const path = removeDotSegments(decodeUnreserved(rawPath).replace(/\/{2,}/g, '/'));
  const next = path + query;
  const result = { path, target: next, changed: next !== target };
  return authority === undefined ? result : { ...result, authority };
}
