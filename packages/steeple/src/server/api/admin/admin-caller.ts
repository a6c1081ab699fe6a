/**
 * Who is calling the admin API, as far as the transport can tell, for the audit log.
 *
 * Access control is by file permissions: the socket is 0600 in a 0700 directory owned by the
 * server's user, so only that user (and root) can connect at all. Peer credentials
 * (SO_PEERCRED) are not read yet; when a reader is plugged into the server (see
 * `StartAdminServerOptions.readPeerCredentials`) the uid, gid and pid appear here and in logs.
 * @module
 */
import { createContextKey } from '@connectrpc/connect';

/** The caller of one admin call. */
export interface AdminCaller {
  /** How the call arrived. */
  readonly transport: 'unix-socket' | 'in-process';
  readonly uid?: number;
  readonly gid?: number;
  readonly pid?: number;
}

/** Context key under which the admin server puts the caller of each call. */
export const adminCallerKey = createContextKey<AdminCaller>(
  { transport: 'in-process' },
  {
    description: 'steeple admin API caller',
  },
);

const JOIN_TOKEN_PATH = '/spire/agent/join_token/';

/**
 * A SPIFFE ID as it may appear in logs: the token in a join-token agent ID
 * (`spiffe://td/spire/agent/join_token/<token>`) is a secret until it is used, so it is cut.
 */
export function loggableId(id: string): string {
  const at = id.indexOf(JOIN_TOKEN_PATH);
  return at < 0 ? id : `${id.slice(0, at + JOIN_TOKEN_PATH.length)}[redacted]`;
}
