/**
 * Defaults shared by the server and the tools that talk to it, so both sides agree
 * without one importing the other.
 * @module
 */

/**
 * Where the server's admin API listens (config `socket_path`, CLI `-socketPath`) unless told
 * otherwise. SPIRE uses `/tmp/spire-server/private/api.sock`; Steeple keeps the same layout
 * under its own name, so both can run on one machine.
 */
export const DEFAULT_SERVER_SOCKET_PATH = '/tmp/steeple-server/private/api.sock';
