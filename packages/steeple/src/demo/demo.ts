/**
 * `npm run demo`: the two-trust-domain demo (see two-domain-demo.ts). It walks through every
 * step, then keeps everything running, with commands to try, until Ctrl-C (SIGINT) or
 * SIGTERM; then it stops every process, removes its temp dir and exits 0. It exits 1 when a
 * step fails or a process of the demo dies, after cleaning up the same way.
 */
import { startTwoDomainDemo } from './two-domain-demo.js';

const stopRequested = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (!stopRequested.signal.aborted) console.log(`\n${sig === 'SIGINT' ? 'Ctrl-C' : sig}: stopping the demo…`);
    stopRequested.abort();
  });
}

const stopped = new Promise<void>((r) => stopRequested.signal.addEventListener('abort', () => r(), { once: true }));

try {
  const demo = await startTwoDomainDemo({ signal: stopRequested.signal });
  console.log('');
  console.log('Try these in another terminal (from this directory) while the demo runs:');
  for (const c of demo.commands) {
    console.log(`  # ${c.what}`);
    console.log(`  ${c.command}`);
  }
  console.log('');
  console.log(`Demo running (ready ${process.uptime().toFixed(1)} s after start) — press Ctrl-C to stop.`);
  const failure = await Promise.race([stopped.then(() => undefined), demo.failed]);
  if (failure !== undefined) {
    console.error(`demo failed: ${failure.message}`);
    process.exitCode = 1;
  }
  await demo.stop();
  console.log('Stopped every process and removed the temp dir.');
} catch (err) {
  if (stopRequested.signal.aborted) {
    console.log('Stopped every process and removed the temp dir.');
  } else {
    console.error(`demo failed: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}
