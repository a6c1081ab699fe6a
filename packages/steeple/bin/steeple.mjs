#!/usr/bin/env node
// Development launcher: runs the TypeScript sources through tsx, resolving
// @steeple/spiffe to its sources (the "steeple-source" export condition). Signals are
// passed on to the child, and the launcher exits with the child's status once it has
// stopped, so `kill <pid>` and Ctrl-C stop a running server or agent cleanly.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const main = join(here, '..', 'src', 'cli', 'main.ts');
const child = spawn(
  process.execPath,
  ['--conditions=steeple-source', '--import', 'tsx', main, ...process.argv.slice(2)],
  {
    stdio: 'inherit',
  },
);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  });
}
child.on('exit', (code, signal) => {
  process.exitCode = code ?? (signal ? 128 + ({ SIGINT: 2, SIGTERM: 15, SIGHUP: 1 }[signal] ?? 0) : 0);
});
