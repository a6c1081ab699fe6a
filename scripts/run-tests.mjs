#!/usr/bin/env node
// Runs every *.test.ts under packages/*/src, packages/*/test and test/ with node:test
// through tsx (Node 20's --test does not expand globs, so the list is built here).
// Extra arguments narrow the run: `npm run test:unit -- packages/spiffe/src/svid`.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const roots = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const flags = process.argv.slice(2).filter((a) => a.startsWith('-'));
const start = roots.length > 0 ? roots : ['packages', 'test'];

function walk(dir, out) {
  let st;
  try {
    st = statSync(dir);
  } catch {
    return;
  }
  if (st.isFile()) {
    if (dir.endsWith('.test.ts')) out.push(dir);
    return;
  }
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
    walk(join(dir, name), out);
  }
}

const files = [];
for (const r of start) walk(r, files);
files.sort();
if (files.length === 0) {
  console.error(`no *.test.ts files under ${start.join(', ')}`);
  process.exit(1);
}
const args = [
  '--conditions=steeple-source',
  '--import',
  'tsx',
  '--test',
  `--test-concurrency=${process.env.TEST_CONCURRENCY ?? 2}`,
  ...flags,
  ...files,
];
const res = spawnSync(process.execPath, args, { stdio: 'inherit' });
process.exit(res.status ?? 1);
