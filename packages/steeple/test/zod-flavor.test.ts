/**
 * The sources use zod 4 "mini" (`import * as z from 'zod/mini'`), never zod "classic"
 * (`'zod'`): the proxy keeps every module it loads for its whole life, and classic's methods
 * on every schema cost ≈ 280 KB of bundled code (≈ 4 MiB of RSS) where mini costs ≈ 45 KB.
 * One classic import anywhere in the product would bring all of it back. Tests may use either.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

/** zod entry points the sources may import: mini, its shared core, and the English messages alone. */
const ALLOWED = new Set(['zod/mini', 'zod/v4/mini', 'zod/v4/core', 'zod/v4/locales/en.js']);

const IMPORT = /\b(?:from|import)\s*\(?\s*['"](zod(?:\/[^'"]*)?)['"]/g;

function sources(dir: string, out: string[] = []): string[] {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) sources(path, out);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

describe('zod flavor', () => {
  it('no source under packages/*/src imports zod classic', () => {
    const files = readdirSync(join(ROOT, 'packages')).flatMap((pkg) => {
      try {
        return sources(join(ROOT, 'packages', pkg, 'src'));
      } catch {
        return []; // a package without src/
      }
    });
    const offenders: string[] = [];
    let miniUsers = 0;
    for (const file of files) {
      for (const [, spec] of readFileSync(file, 'utf8').matchAll(IMPORT)) {
        if (spec === undefined) continue;
        if (ALLOWED.has(spec)) miniUsers++;
        else
          offenders.push(`${relative(ROOT, file)} imports '${spec}'; use 'zod/mini' (import * as z from 'zod/mini')`);
      }
    }
    assert.deepEqual(offenders, []);
    assert.ok(miniUsers > 5, `found only ${miniUsers} zod/mini imports: is the walk still finding the sources?`);
  });
});
