import { isIP } from 'node:net';

/** A parsed `host:port`. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
  /** The text as given, for logs and audit records. */
  readonly text: string;
}

/**
 * Parses `host:port`, `[v6]:port` or `:port` (all interfaces). Returns the reason as a
 * string when the text is not one.
 */
export function parseHostPort(text: string, options: { allowPortZero?: boolean } = {}): HostPort | string {
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end < 0 || text[end + 1] !== ':') return 'expected "[address]:port"';
    host = text.slice(1, end);
    if (isIP(host) !== 6) return `"${host}" is not an IPv6 address`;
    portText = text.slice(end + 2);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return 'expected "host:port"';
    host = text.slice(0, colon);
    if (host.includes(':')) return 'write IPv6 addresses in brackets, "[::1]:8080"';
    portText = text.slice(colon + 1);
    if (host === '') host = '0.0.0.0';
    if (!/^[a-zA-Z0-9.-]+$/.test(host)) return `"${host}" is not a host name or address`;
  }
  if (!/^\d{1,5}$/.test(portText)) return `port "${portText}" is not a number`;
  const port = Number(portText);
  const min = options.allowPortZero ? 0 : 1;
  if (port < min || port > 65_535) return `port ${port} is outside ${min}-65535`;
  return { host, port, text };
}
