/**
 * A raw Workload API client for the agent's tests: the generated `SpiffeWorkloadAPI`
 * client over HTTP/2 on the agent's Unix socket, with the `workload.spiffe.io` header set
 * as the test chooses (to test the agent's refusal of requests without it). It decodes
 * nothing: tests look at the wire messages themselves.
 * @module
 */
import { connect } from 'node:net';
import { type Client, createClient, type Interceptor } from '@connectrpc/connect';
import { createGrpcTransport, Http2SessionManager } from '@connectrpc/connect-node';
import { SpiffeWorkloadAPI } from '../../gen/spiffe/workload/workload_pb.js';

export interface RawWorkloadClient {
  readonly api: Client<typeof SpiffeWorkloadAPI>;
  close(): void;
}

/**
 * @param header - the value of `workload.spiffe.io` to send; `null` sends none. Default `'true'`.
 */
export function createRawWorkloadClient(socketPath: string, header: string | null = 'true'): RawWorkloadClient {
  const sessions = new Http2SessionManager('http://localhost', {}, { createConnection: () => connect(socketPath) });
  const setHeader: Interceptor = (next) => (req) => {
    if (header !== null) req.header.set('workload.spiffe.io', header);
    return next(req);
  };
  const transport = createGrpcTransport({
    baseUrl: 'http://localhost',
    sessionManager: sessions,
    interceptors: [setHeader],
    acceptCompression: [],
  });
  return { api: createClient(SpiffeWorkloadAPI, transport), close: () => sessions.abort() };
}
