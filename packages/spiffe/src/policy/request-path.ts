/**
 * The path a policy looks at must be the path the application serves, or a rule on
 * `/admin*` could be dodged with `/./admin`, `//admin` or `/%61dmin`. Paths are normalised
 * as Istio's recommended settings do (and as the Steeple proxy does): percent-encoded
 * unreserved characters decoded (RFC 3986 §2.3, §6.2.2.2), `%xx` escapes upper-cased,
 * repeated slashes merged, and dot segments removed (§5.2.4). `%2F` stays encoded.
 * @module
 */

/** A request target split for policy: the normalised path, and the target to serve. */
export interface NormalizedRequestTarget {
  /** The normalised path, without query or fragment (what `paths` rules match). */
  readonly path: string;
  /** The normalised path followed by the original query (what the application should see). */
  readonly target: string;
  /** The authority of an absolute-form target (`http://host:port/x`), if it was one. */
  readonly authority?: string;
}

const isUnreserved = (code: number) =>
  (code >= 0x41 && code <= 0x5a) || // A-Z
  (code >= 0x61 && code <= 0x7a) || // a-z
  (code >= 0x30 && code <= 0x39) || // 0-9
  code === 0x2d || // -
  code === 0x2e || // .
  code === 0x5f || // _
  code === 0x7e; // ~

function normalizePath(raw: string): string {
  if (!raw.includes('%') && !raw.includes('//') && !raw.includes('/.')) return raw;
  const decoded = raw.replace(/%([0-9A-Fa-f]{2})/g, (pct, hex: string) => {
    const code = Number.parseInt(hex, 16);
    return isUnreserved(code) ? String.fromCharCode(code) : pct.toUpperCase();
  });
  const input = decoded
    .replace(/\/{2,}/g, '/')
    .split('/')
    .slice(1);
  const output: string[] = [];
  input.forEach((segment, i) => {
    const last = i === input.length - 1;
    if (segment === '..') output.pop();
    if (segment === '.' || segment === '..') {
      if (last) output.push(''); // "/a/.." is the directory "/", with its trailing slash
    } else {
      output.push(segment);
    }
  });
  return `/${output.join('/')}`;
}

/**
 * Normalises an origin-form (`/a/./b?q=1`) or absolute-form (`https://host/a`) request
 * target; `*` (server-wide OPTIONS) stays `*`.
 * @returns undefined for anything else (an authority-form CONNECT target, garbage).
 * @example
 * normalizeRequestTarget('/api//v1/../%61dmin?x=1'); // { path: '/api/admin', target: '/api/admin?x=1' }
 */
export function normalizeRequestTarget(target: string): NormalizedRequestTarget | undefined {
  if (target === '*') return { path: '*', target };
  let rest = target;
  let authority: string | undefined;
  if (!target.startsWith('/')) {
    const absolute = /^https?:\/\/([^/?#]*)/i.exec(target);
    if (absolute === null) return undefined;
    authority = absolute[1] as string;
    rest = target.slice(absolute[0].length);
    if (!rest.startsWith('/')) rest = `/${rest}`;
  }
  const end = rest.search(/[?#]/);
  const rawPath = end < 0 ? rest : rest.slice(0, end);
  const hash = rest.indexOf('#');
  const query = end >= 0 && rest[end] === '?' ? rest.slice(end, hash > end ? hash : rest.length) : '';
  const path = normalizePath(rawPath);
  return authority === undefined ? { path, target: path + query } : { path, target: path + query, authority };
}
