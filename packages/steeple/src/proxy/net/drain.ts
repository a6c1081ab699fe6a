import type { Socket } from 'node:net';

/** Waits until every socket in `sockets` has closed, or `graceMs` has passed. */
export async function drain(sockets: ReadonlySet<Socket>, graceMs: number): Promise<void> {
  const deadline = Date.now() + graceMs;
  while (sockets.size > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, Math.min(50, Math.max(1, deadline - Date.now()))));
  }
}
