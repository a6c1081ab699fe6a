/**
 * The SDK demo: two workloads with X.509-SVIDs from a local test CA hold an mTLS
 * conversation authorized by SPIFFE ID, and a third identity is refused. It prints
 * every step. Until the server and agent exist this is what `npm run demo` shows.
 */
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import {
  authorizeId,
  getPeerId,
  mtlsClientOptions,
  mtlsServerOptions,
  type SpiffeError,
  serveMtls,
  type X509BundleSetSource,
  type X509Svid,
} from '@steeple/spiffe';
import { createTestCa } from '@steeple/spiffe/testing';

type Print = (line: string) => void;

function call(svid: X509Svid, bundles: X509BundleSetSource, port: number, serverId: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ...mtlsClientOptions({ svid, bundles, authorize: authorizeId(serverId) }),
    });
    let reply = '';
    socket.on('secureConnect', () => socket.write('hello from the client\n'));
    socket.on('data', (d) => {
      reply += d.toString();
    });
    socket.on('end', () => resolve(reply.trim()));
    socket.on('close', () => resolve(reply.trim()));
    socket.on('error', reject);
  });
}

export async function runSdkDemo(print: Print = console.log): Promise<{ allowed: string; refused: string }> {
  print('1. Creating a test CA for trust domain example.org');
  const ca = createTestCa({ trustDomain: 'example.org' });
  const bundle = ca.x509Bundle();
  const serverId = 'spiffe://example.org/billing/api';
  const clientId = 'spiffe://example.org/frontend/web';
  const intruderId = 'spiffe://example.org/batch/report';
  const serverSvid = ca.issueX509Svid(serverId, { ttlSeconds: 600 });
  const clientSvid = ca.issueX509Svid(clientId, { ttlSeconds: 600 });
  const intruderSvid = ca.issueX509Svid(intruderId, { ttlSeconds: 600 });
  print(`   issued ${serverId}   (expires ${serverSvid.expiresAt.toISOString()})`);
  print(`   issued ${clientId}  (expires ${clientSvid.expiresAt.toISOString()})`);
  print(`   issued ${intruderId}  (expires ${intruderSvid.expiresAt.toISOString()})`);

  let refusal = '';
  const options = mtlsServerOptions({
    svid: serverSvid,
    bundles: bundle,
    authorize: authorizeId(clientId),
    onReject: (err: SpiffeError) => {
      refusal = `${err.code}: ${err.message}`;
      print(`   server refused a connection: ${refusal}`);
    },
  });
  const server = serveMtls(
    tls.createServer(options, (socket) => {
      const peer = getPeerId(socket);
      print(`   server accepted a connection from ${peer}`);
      socket.once('data', (d) => socket.end(`hello ${peer}, you said: ${d.toString().trim()}\n`));
    }),
    options,
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  print(`2. ${serverId} listens on 127.0.0.1:${port}, allowing only ${clientId}`);

  print(`3. ${clientId} calls it over mTLS`);
  const allowed = await call(clientSvid, bundle, port, serverId);
  print(`   client got: ${allowed}`);

  print(`4. ${intruderId} calls it over mTLS`);
  const refusedReply = await call(intruderSvid, bundle, port, serverId).catch((e: Error) => `error: ${e.message}`);
  print(`   client got: ${refusedReply || 'connection closed without a reply'}`);
  server.close();
  print('Done: the allowed identity talked, the other was refused by SPIFFE ID.');
  return { allowed, refused: refusal };
}
