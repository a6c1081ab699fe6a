/**
 * Where the Workload API listens: the address rules of the SPIFFE Workload Endpoint
 * spec §4 (conformance E-4), and the `SPIFFE_ENDPOINT_SOCKET` fallback.
 * @module
 */
import { isIPv4, isIPv6 } from 'node:net';
import { quote, WorkloadApiError } from '../errors.js';

/** The environment variable clients fall back to when no address is configured (E-4). */
export const SPIFFE_ENDPOINT_SOCKET = 'SPIFFE_ENDPOINT_SOCKET';

/** A parsed Workload API address: a Unix domain socket or a TCP endpoint on an IP literal. */
export type WorkloadApiAddress =
  | {
      readonly network: 'unix';
      /** Absolute path of the socket, percent-escapes decoded. */
      readonly path: string;
      /** The address as given. */
      readonly uri: string;
    }
  | {
      readonly network: 'tcp';
      /** The IP literal without brackets, e.g. `127.0.0.1` or `::1`. */
      readonly host: string;
      readonly port: number;
      /** The address as given. */
      readonly uri: string;
    };

// RFC 3986 appendix B, split into scheme, authority (with its "//" marker), path, query, fragment.
const URI_PARTS = /^(?:([^:/?#]+):)?(\/\/([^/?#]*))?([^?#]*)(\?[^#]*)?(#.*)?$/;
// Characters a URI may hold (RFC 3986 §2): unreserved, reserved and "%" for escapes.
const URI_CHARS = /^[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]*$/;
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*$/;

function refuse(value: string, rule: string): WorkloadApiError {
  return new WorkloadApiError('ERR_WORKLOADAPI_ADDRESS', `invalid Workload API address ${quote(value)}: ${rule} (E-4)`);
}

function decodePercent(value: string, part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw refuse(value, 'it holds an invalid percent-escape');
  }
}

/**
 * Parses a Workload API address as the SPIFFE Workload Endpoint spec allows it (E-4):
 *
 * - `unix:///absolute/path/to/api.sock` — no authority, an absolute path, nothing else;
 *   `unix:/absolute/path` is accepted too, as go-spiffe does.
 * - `tcp://<IP>:<port>` — an IPv4 or bracketed IPv6 literal and a port, nothing else
 *   (`tcp://127.0.0.1:8000/foo` and `tcp://localhost:8000` are invalid).
 *
 * Throws a {@link WorkloadApiError} (`ERR_WORKLOADAPI_ADDRESS`) naming the value and the rule.
 *
 * @example
 * parseWorkloadApiAddress('unix:///tmp/steeple-agent/public/api.sock') // { network: 'unix', path: '/tmp/…' }
 */
export function parseWorkloadApiAddress(value: string): WorkloadApiAddress {
  if (typeof value !== 'string') throw new TypeError('parseWorkloadApiAddress expects a string');
  if (value === '') throw refuse(value, 'the address is empty');
  if (!URI_CHARS.test(value)) {
    throw refuse(value, 'a URI must not contain spaces, control or non-ASCII characters (percent-encode them)');
  }
  const m = URI_PARTS.exec(value) as RegExpExecArray;
  const [, scheme, slashes, authority, path = '', query, fragment] = m;
  if (scheme === undefined || !SCHEME.test(scheme)) {
    throw refuse(value, 'the scheme must be "unix" or "tcp", as in unix:///path/to/api.sock or tcp://127.0.0.1:8000');
  }
  const kind = scheme.toLowerCase();
  if (kind === 'unix') {
    if (query !== undefined) throw refuse(value, 'a unix address must not include a query');
    if (fragment !== undefined) throw refuse(value, 'a unix address must not include a fragment');
    if (authority !== undefined && authority !== '') {
      throw refuse(value, 'a unix address must not include an authority; write unix:///absolute/path');
    }
    if (path === '') throw refuse(value, 'a unix address must include the absolute path of the socket');
    if (!path.startsWith('/')) {
      throw refuse(value, 'the socket path must be absolute, as in unix:///absolute/path');
    }
    const decoded = decodePercent(value, path);
    if (decoded.includes('\0')) throw refuse(value, 'the socket path must not contain a NUL byte');
    if (decoded.endsWith('/')) throw refuse(value, 'the socket path must name a socket file, not a directory');
    return Object.freeze({ network: 'unix', path: decoded, uri: value });
  }
  if (kind === 'tcp') {
    if (slashes === undefined || authority === undefined || authority === '') {
      throw refuse(value, 'a tcp address must be tcp://<IP>:<port>');
    }
    if (authority.includes('@')) throw refuse(value, 'a tcp address must not include user info');
    if (path !== '') throw refuse(value, 'a tcp address must not include a path');
    if (query !== undefined) throw refuse(value, 'a tcp address must not include a query');
    if (fragment !== undefined) throw refuse(value, 'a tcp address must not include a fragment');
    const hostPort = /^(\[[^\]]*\]|[^:[\]]*)(?::([^:]*))?$/.exec(authority);
    if (!hostPort) throw refuse(value, 'the host must be an IP address; write IPv6 addresses in brackets, as [::1]');
    const rawHost = hostPort[1] as string;
    const rawPort = hostPort[2];
    let host: string;
    if (rawHost.startsWith('[')) {
      host = decodePercent(value, rawHost.slice(1, -1));
      if (!isIPv6(host)) throw refuse(value, 'the host in brackets must be an IPv6 address');
    } else {
      host = rawHost;
      if (!isIPv4(host)) throw refuse(value, 'the host must be an IP address, not a name');
    }
    if (rawPort === undefined || rawPort === '') throw refuse(value, 'a tcp address must include a port');
    const port = /^[0-9]{1,5}$/.test(rawPort) ? Number(rawPort) : Number.NaN;
    if (!(port >= 1 && port <= 65535)) throw refuse(value, 'the port must be a number from 1 to 65535');
    return Object.freeze({ network: 'tcp', host, port, uri: value });
  }
  throw refuse(value, `the scheme must be "unix" or "tcp", not ${JSON.stringify(scheme)}`);
}

/** The value of `SPIFFE_ENDPOINT_SOCKET`, or undefined when it is unset or empty. */
export function defaultWorkloadApiAddress(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env[SPIFFE_ENDPOINT_SOCKET];
  return value === undefined || value === '' ? undefined : value;
}

/**
 * The address to dial: `address` when given, else `SPIFFE_ENDPOINT_SOCKET` (E-4: clients
 * MUST fall back to it). Throws a {@link WorkloadApiError} (`ERR_WORKLOADAPI_ADDRESS`) when
 * neither is set or the value is invalid.
 */
export function resolveWorkloadApiAddress(address?: string, env: NodeJS.ProcessEnv = process.env): WorkloadApiAddress {
  const value = address ?? defaultWorkloadApiAddress(env);
  if (value === undefined) {
    throw new WorkloadApiError(
      'ERR_WORKLOADAPI_ADDRESS',
      `no Workload API address: pass one, or set ${SPIFFE_ENDPOINT_SOCKET} (e.g. unix:///tmp/steeple-agent/public/api.sock) (E-4)`,
    );
  }
  return parseWorkloadApiAddress(value);
}
