// Every error code that the code can raise is documented in docs/errors.md, and every
// documented code exists in the code (the fastify habit).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';

const root = resolve(import.meta.dirname, '..');

function files(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name === 'gen' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) files(p, out);
    else if (p.endsWith('.ts') && !p.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const CODE = /['"`](ERR_[A-Z0-9_]+)['"`]/g;
// Codes that belong to Node.js or OpenSSL (we only compare against them), not to us.
const FOREIGN = /^ERR_(SSL|TLS|OSSL|SOCKET|STREAM|HTTP2|INVALID_ARG|ASSERTION|TEST)(_|$)|_$/;

describe('docs/errors.md', () => {
  const inCode = new Set<string>();
  for (const f of files(join(root, 'packages'))) {
    for (const m of readFileSync(f, 'utf8').matchAll(CODE)) inCode.add(m[1] as string);
  }
  for (const c of [...inCode]) {
    // a prefix used with startsWith(), such as 'ERR_X509SVID', is not a code of its own
    const isPrefix = [...inCode].some((other) => other !== c && other.startsWith(`${c}_`));
    if (FOREIGN.test(c) || isPrefix) inCode.delete(c);
  }
  const doc = readFileSync(join(root, 'docs/errors.md'), 'utf8');
  const documented = new Set([...doc.matchAll(/^\|\s*`?(ERR_[A-Z0-9_]+)`?\s*\|/gm)].map((m) => m[1] as string));

  it('documents every error code used in the code', () => {
    const missing = [...inCode].filter((c) => !documented.has(c)).sort();
    assert.deepEqual(missing, [], `add these codes to docs/errors.md: ${missing.join(', ')}`);
  });

  it('documents no code that the code does not use', () => {
    const stale = [...documented].filter((c) => !inCode.has(c)).sort();
    assert.deepEqual(stale, [], `remove or fix these codes in docs/errors.md: ${stale.join(', ')}`);
  });
});
