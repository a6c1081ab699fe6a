import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseHostPort } from '../net/host-port.js';
import { connectPlain } from './app-connection.js';

async function listen(onConnection: (s: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer(onConnection);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port };
}

function open(port: number): Promise<Socket> {
  const target = parseHostPort(`127.0.0.1:${port}`, { allowPortZero: false });
  if (typeof target === 'string') throw new Error(target);
  return new Promise((resolve, reject) => {
    connectPlain(target, 2000, (err, socket) => (err ? reject(err) : resolve(socket as Socket)));
  });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('connectPlain (reads through one shared buffer)', () => {
  it('holds bytes the app sends before anyone listens and delivers them first, in order', async () => {
    // A server-speaks-first app (SMTP, MySQL): its greeting arrives before the relay attaches.
    const { server, port } = await listen((s) => {
      s.write('220 greeting\r\n');
      s.on('data', (d) => s.write(`echo ${d}`));
    });
    const socket = await open(port);
    await sleep(100); // the greeting is read (and held) with no 'data' listener yet
    const got: string[] = [];
    socket.on('data', (d: Buffer) => got.push(d.toString()));
    await sleep(50);
    socket.write('hello');
    await sleep(100);
    assert.equal(got.join(''), '220 greeting\r\necho hello');
    socket.destroy();
    server.close();
  });

  it('carries many reads intact, each its own copy, across connections sharing the buffer', async () => {
    const payloads = [randomBytes(1024 * 1024 + 17), randomBytes(300 * 1024 + 1)];
    let next = 0;
    const { server, port } = await listen((s) => {
      s.end(payloads[next++] as Buffer);
    });
    const sockets = [await open(port), await open(port)];
    const results = await Promise.all(
      sockets.map(async (socket) => {
        const chunks: Buffer[] = [];
        socket.on('data', (d: Buffer) => chunks.push(d)); // kept, not copied: must not be overwritten later
        await once(socket, 'end');
        socket.destroy();
        return Buffer.concat(chunks);
      }),
    );
    assert.deepEqual(results.map(sha), payloads.map(sha));
    server.close();
  });

  it('pause() stops reading and resume() continues where it stopped (backpressure)', async () => {
    const payload = randomBytes(2 * 1024 * 1024);
    const { server, port } = await listen((s) => {
      s.end(payload);
    });
    const socket = await open(port);
    const chunks: Buffer[] = [];
    let pausedOnce = false;
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      if (!pausedOnce) {
        pausedOnce = true;
        socket.pause();
        setTimeout(() => socket.resume(), 100);
      }
    });
    await sleep(50);
    // Paused: only the first chunk arrived while the app has sent far more.
    assert.equal(chunks.length, 1);
    await once(socket, 'end');
    assert.equal(sha(Buffer.concat(chunks)), sha(payload));
    socket.destroy();
    server.close();
  });
});
