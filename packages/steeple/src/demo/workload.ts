/**
 * A demo workload: it knows nothing but SPIFFE_ENDPOINT_SOCKET. `serve` holds an mTLS
 * server that only lets `allowed` in; `call` connects to it; `probe [WAIT_SECONDS]` asks
 * for an identity (waiting up to WAIT_SECONDS while the agent has none for it yet) and
 * prints it with its expiry and the trust domains of the bundles that came with it. Each
 * prints one JSON line per event for the demo driver.
 */
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import {
  authorizeId,
  getPeerId,
  mtlsClientOptions,
  mtlsServerOptions,
  serveMtls,
  WorkloadApiError,
  X509Source,
} from '@steeple/spiffe';
import { probeIdentity } from './identity-probe.js';

const say = (event: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(event)}\n`);
const [mode, peer, port] = process.argv.slice(2);

if (mode === 'probe') {
  try {
    say({ event: 'identity', ...(await probeIdentity(undefined, Number(peer ?? 0) * 1000)) });
  } catch (err) {
    const e = err as WorkloadApiError;
    say({
      event: 'refused',
      code: e instanceof WorkloadApiError ? e.code : 'error',
      grpcCode: e.grpcCode,
      message: e.message,
    });
  }
} else {
  // Several identities for one process (when the demo cannot use separate uids): pick by hint.
  const hint = process.env['DEMO_HINT'];
  const source = await X509Source.create({
    timeoutMs: 30_000,
    ...(hint ? { picker: (svids) => svids.find((s) => s.hint === hint) ?? (svids[0] as (typeof svids)[number]) } : {}),
  });
  const me = source.getX509Svid();
  say({ event: 'identity', id: me.id.toString(), expires: me.expiresAt.toISOString() });
  if (mode === 'serve') {
    const options = mtlsServerOptions({
      svid: source,
      bundles: source,
      authorize: authorizeId(peer as string),
      onReject: (err) => say({ event: 'rejected', code: err.code, message: err.message }),
    });
    const server = serveMtls(
      tls.createServer(options, (socket) => {
        const caller = getPeerId(socket)?.toString();
        say({ event: 'accepted', peer: caller });
        socket.once('data', (d) => socket.end(`hello ${caller}, ${me.id} here; you said "${d.toString().trim()}"`));
        socket.on('error', () => {});
      }),
      options,
    );
    server.listen(0, '127.0.0.1', () => say({ event: 'listening', port: (server.address() as AddressInfo).port }));
    process.on('SIGTERM', () => {
      server.close();
      void source.close().then(() => process.exit(0));
    });
  } else if (mode === 'call') {
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = tls.connect({
        host: '127.0.0.1',
        port: Number(port),
        ...mtlsClientOptions({ svid: source, bundles: source, authorize: authorizeId(peer as string) }),
      });
      let text = '';
      socket.on('secureConnect', () => socket.write(`hi from ${me.id}`));
      socket.on('data', (d) => {
        text += d;
      });
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
    }).catch((err: Error) => `error: ${err.message}`);
    say({ event: 'reply', reply: reply || 'connection closed without a reply' });
    await source.close();
  }
}
