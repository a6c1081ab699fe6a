#!/usr/bin/env node
// Development launcher: runs the TypeScript sources through tsx, resolving
// @steeple/spiffe to its sources (the "steeple-source" export condition).
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const main = join(here, '..', 'src', 'cli', 'main.ts');
const res = spawnSync(
  process.execPath,
  ['--conditions=steeple-source', '--import', 'tsx', main, ...process.argv.slice(2)],
  {
    stdio: 'inherit',
  },
);
process.exit(res.status ?? (res.signal ? 1 : 0));
