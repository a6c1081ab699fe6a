import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { skipReadAhead } from './read-ahead.js';

async function pair(): Promise<{ reader: Socket; writer: Socket; close: () => void }> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const accepted = once(srv, 'connection');
  const writer = connect((srv.address() as { port: number }).port, '127.0.0.1');
  await once(writer, 'connect');
  const [reader] = (await accepted) as [Socket];
  return { reader, writer, close: () => srv.close() };
}

/** process.nextTick callbacks scheduled while `chunks` chunks go through a flowing socket. */
async function ticksWhileReading(pinned: boolean, chunks: number): Promise<number> {
  const { reader, writer, close } = await pair();
  if (pinned) skipReadAhead(reader);
  let received = 0;
  reader.on('data', (d: Buffer) => {
    received += d.length;
  });
  await tick();
  let ticks = 0;
  let counting = false;
  const hook = createHook({
    init(_id, type) {
      if (counting && type === 'TickObject') ticks++;
    },
  }).enable();
  for (let i = 0; i < chunks; i++) {
    const before = received;
    counting = false;
    writer.write('x'.repeat(100)); // the writer's own ticks are not counted
    counting = true;
    while (received === before) await tick();
  }
  counting = false;
  hook.disable();
  writer.destroy();
  reader.destroy();
  close();
  return ticks;
}

describe('skipReadAhead', () => {
  it('stops the Readable read-ahead tick that would follow every chunk', async () => {
    const chunks = 50;
    const plain = await ticksWhileReading(false, chunks);
    const pinned = await ticksWhileReading(true, chunks);
    assert.ok(plain - pinned >= chunks, `ticks without: ${plain}, with: ${pinned}`);
  });

  it('keeps every byte in order through pause() and resume() (backpressure)', async () => {
    const { reader, writer, close } = await pair();
    skipReadAhead(reader);
    const payload = randomBytes(4 * 1024 * 1024);
    const got: Buffer[] = [];
    let pauses = 0;
    reader.on('data', (d: Buffer) => {
      got.push(d);
      if (got.length % 7 === 0) {
        pauses++;
        reader.pause();
        setTimeout(() => reader.resume(), 2);
      }
    });
    writer.end(payload);
    await once(reader, 'end');
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    assert.equal(sha(Buffer.concat(got)), sha(payload));
    assert.ok(pauses > 0);
    reader.destroy();
    close();
  });

  it('a reader that starts listening late still gets what arrived before', async () => {
    const { reader, writer, close } = await pair();
    skipReadAhead(reader);
    writer.write('early ');
    await new Promise((r) => setTimeout(r, 50));
    const got: string[] = [];
    reader.on('data', (d: Buffer) => got.push(d.toString()));
    writer.end('late');
    await once(reader, 'end');
    assert.equal(got.join(''), 'early late');
    close();
  });
});
