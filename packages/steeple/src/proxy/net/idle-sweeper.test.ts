import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { IdleSweeper } from './idle-sweeper.js';

async function pair(): Promise<{ client: Socket; server: Socket; close: () => void }> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const accepted = once(srv, 'connection');
  const client = connect((srv.address() as { port: number }).port, '127.0.0.1');
  client.on('error', () => {});
  const [server] = (await accepted) as [Socket];
  server.on('error', () => {});
  return { client, server, close: () => srv.close() };
}

describe('IdleSweeper', () => {
  it('destroys a connection that carries no bytes for the timeout', async () => {
    const { client, server, close } = await pair();
    const sweeper = new IdleSweeper(100);
    sweeper.add(server);
    await once(server, 'close');
    assert.ok(server.destroyed);
    client.destroy();
    sweeper.close();
    close();
  });

  it('keeps a connection while bytes flow, and stops watching on close()', async () => {
    const { client, server, close } = await pair();
    const sweeper = new IdleSweeper(1000);
    sweeper.add(server);
    server.on('data', () => {});
    // Bytes every sweep keep it open; how long it stays idle afterwards is not asserted.
    for (let i = 0; i < 5; i++) {
      client.write('x');
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(!server.destroyed);
    sweeper.close();
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(!server.destroyed, 'a closed sweeper closes nothing');
    client.destroy();
    server.destroy();
    close();
  });
});
