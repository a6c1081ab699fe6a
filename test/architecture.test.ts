// Imports point one way only (see DESIGN.md). This test reads every import in the
// repository and fails with a message naming the file and the rule it breaks.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, it } from 'node:test';

const root = resolve(import.meta.dirname, '..');

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name === 'gen' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sourceFiles(p, out);
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

const IMPORT =
  /(?:^|\n)\s*(?:import|export)\s[^'"`;]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|(?:^|\n)\s*import\s+['"]([^'"]+)['"]/g;

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(IMPORT)].map((m) => (m[1] ?? m[2] ?? m[3]) as string);
}

function packageName(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? `${parts[0]}/${parts[1]}` : (parts[0] as string);
}

const builtins = new Set(builtinModules);
const isBuiltin = (spec: string) => spec.startsWith('node:') || builtins.has(spec);

// Layers inside the SDK: a layer may import itself and the layers listed for it.
const sdkLayers: Record<string, string[]> = {
  spiffeid: [],
  bundle: ['spiffeid'],
  svid: ['spiffeid', 'bundle'],
  'workload-api': ['spiffeid', 'bundle', 'svid', 'gen'],
  tls: ['spiffeid', 'bundle', 'svid'],
  grpc: ['spiffeid', 'bundle', 'svid', 'workload-api', 'tls'],
  undici: ['spiffeid', 'bundle', 'svid', 'workload-api', 'tls'],
  issuance: ['spiffeid', 'bundle', 'svid'],
  policy: ['spiffeid'],
  http: ['spiffeid', 'bundle', 'svid', 'tls', 'policy'],
  testing: ['spiffeid', 'bundle', 'svid', 'workload-api', 'tls', 'gen'],
  gen: [],
};
const sdkShared = new Set(['internal', 'errors.ts', 'clock.ts', 'index.ts', 'core.ts']);

// Across the product: a module may import only the areas listed for it.
const productAreas: Record<string, string[]> = {
  gen: [],
  common: ['gen'],
  server: ['common', 'gen'],
  agent: ['common', 'gen'],
  proxy: ['common', 'gen'],
  k8s: ['common', 'gen'],
  web: ['common', 'gen'],
  demo: ['common', 'gen', 'server', 'agent', 'proxy', 'cli'],
  cli: ['common', 'gen', 'server', 'agent', 'proxy', 'k8s', 'web', 'demo'],
};

function areaOf(base: string, file: string): string {
  return relative(base, file).split(sep)[0] as string;
}

describe('architecture', () => {
  const sdkSrc = join(root, 'packages/spiffe/src');
  const sdkPkg = JSON.parse(readFileSync(join(root, 'packages/spiffe/package.json'), 'utf8'));
  const sdkDeps = new Set([
    ...Object.keys(sdkPkg.dependencies ?? {}),
    ...Object.keys(sdkPkg.peerDependencies ?? {}),
    ...Object.keys(sdkPkg.devDependencies ?? {}),
  ]);
  const sdkRuntimeDeps = new Set([
    ...Object.keys(sdkPkg.dependencies ?? {}),
    ...Object.keys(sdkPkg.peerDependencies ?? {}),
  ]);

  it('the SDK imports only node builtins and packages declared in its own package.json', () => {
    const problems: string[] = [];
    for (const file of sourceFiles(join(root, 'packages/spiffe'))) {
      const isTest = file.endsWith('.test.ts') || file.includes(`${sep}test${sep}`);
      for (const spec of importsOf(file)) {
        if (spec.startsWith('.') || isBuiltin(spec)) continue;
        const name = packageName(spec);
        if (name === '@steeple/spiffe') continue;
        const allowed = isTest ? sdkDeps : sdkRuntimeDeps;
        if (!allowed.has(name)) {
          problems.push(
            `${relative(root, file)} imports "${spec}": every SDK import must be declared in packages/spiffe/package.json${isTest ? '' : ' (dependencies or peerDependencies)'}`,
          );
        }
      }
    }
    assert.deepEqual(problems, []);
  });

  it('the SDK never imports the product, @peculiar/x509 or reflect-metadata', () => {
    const problems: string[] = [];
    for (const file of sourceFiles(join(root, 'packages/spiffe'))) {
      for (const spec of importsOf(file)) {
        if (
          ['steeple', '@peculiar/x509', 'reflect-metadata'].includes(packageName(spec)) ||
          spec.includes('packages/steeple')
        ) {
          problems.push(
            `${relative(root, file)} imports "${spec}": the SDK must not depend on the product or on polyfill-needing libraries`,
          );
        }
      }
    }
    assert.deepEqual(problems, []);
  });

  it('nothing reachable from @steeple/spiffe/core loads @peculiar/* (certificates are read with our own DER code)', () => {
    // asn1-x509/asn1-schema (with asn1js, tslib, pvtsutils) cost the mTLS proxy 6–10 MiB
    // resident; only the issuing side (certificate-builder.ts) may use them.
    const STATIC =
      /(?:^|\n)\s*(?:import|export)\s(?!type\s)[^'"`;]*?from\s+['"]([^'"]+)['"]|(?:^|\n)\s*import\s+['"]([^'"]+)['"]/g;
    const sdkSource = (spec: string): string | undefined => {
      const entry = sdkPkg.exports[`.${spec.slice('@steeple/spiffe'.length)}`]?.['steeple-source'];
      return entry ? join(root, 'packages/spiffe', entry) : undefined;
    };
    const start = join(sdkSrc, 'core.ts');
    const via = new Map<string, string | undefined>([[start, undefined]]);
    const queue = [start];
    const problems: string[] = [];
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
      for (const m of readFileSync(file, 'utf8').matchAll(STATIC)) {
        const spec = (m[1] ?? m[2]) as string;
        let target: string | undefined;
        if (spec.startsWith('.')) target = resolve(dirname(file), spec).replace(/\.js$/, '.ts');
        else if (packageName(spec) === '@steeple/spiffe') target = sdkSource(spec);
        else if (spec.startsWith('@peculiar/')) {
          const chain: string[] = [];
          for (let f: string | undefined = file; f !== undefined; f = via.get(f)) chain.unshift(relative(root, f));
          problems.push(
            `${relative(root, file)} imports "${spec}" and is loaded by @steeple/spiffe/core (${chain.join(' → ')}): read certificates with internal/der.ts and internal/x509-extensions.ts; @peculiar belongs to the issuing side`,
          );
        }
        if (target?.endsWith('.ts') && !via.has(target)) {
          via.set(target, file);
          queue.push(target);
        }
      }
    }
    assert.ok(via.size > 10, `expected to follow core.ts's imports, reached only ${via.size} files`);
    assert.deepEqual(problems, []);
  });

  it('SDK layers only look down: spiffeid ← bundle ← svid ← {workload-api, tls} ← {grpc, undici}', () => {
    const problems: string[] = [];
    for (const file of sourceFiles(sdkSrc)) {
      const from = areaOf(sdkSrc, file);
      // Tests may use any layer (the test CA, the undici adapter…); only shipped code is layered.
      if (sdkShared.has(from) || file.endsWith('.test.ts')) continue;
      const allowed = sdkLayers[from];
      if (!allowed) {
        problems.push(
          `${relative(root, file)}: folder "${from}" is not a known SDK layer; add it to test/architecture.test.ts`,
        );
        continue;
      }
      for (const spec of importsOf(file)) {
        if (!spec.startsWith('.')) continue;
        const target = resolve(dirname(file), spec);
        if (!target.startsWith(sdkSrc)) continue;
        const to = areaOf(sdkSrc, target);
        if (to === from || sdkShared.has(to) || to.endsWith('.js')) continue;
        if (!allowed.includes(to))
          problems.push(`${relative(root, file)} imports ${spec}: ${from} must not import ${to}`);
      }
    }
    assert.deepEqual(problems, []);
  });

  it('server, agent, proxy and k8s never import each other; common imports none of them', () => {
    const src = join(root, 'packages/steeple/src');
    const problems: string[] = [];
    for (const file of sourceFiles(src)) {
      const from = areaOf(src, file);
      const allowed = productAreas[from];
      if (!allowed) {
        problems.push(
          `${relative(root, file)}: folder "${from}" is not a known product area; add it to test/architecture.test.ts`,
        );
        continue;
      }
      for (const spec of importsOf(file)) {
        if (spec.includes('packages/spiffe/src')) {
          problems.push(
            `${relative(root, file)} imports ${spec}: use the package "@steeple/spiffe", not its source path`,
          );
        }
        if (!spec.startsWith('.')) continue;
        const target = resolve(dirname(file), spec);
        if (!target.startsWith(src)) {
          problems.push(`${relative(root, file)} imports ${spec}: reaches outside packages/steeple/src`);
          continue;
        }
        const to = areaOf(src, target);
        if (to === from || to.endsWith('.js')) continue;
        if (!allowed.includes(to))
          problems.push(`${relative(root, file)} imports ${spec}: ${from} must not import ${to}`);
      }
    }
    assert.deepEqual(problems, []);
  });

  it('the proxy loads the Workload API client only when its identity comes from the Workload API', () => {
    // Static imports of the package root would load the gRPC stack (≈17 MiB) into every proxy.
    const src = join(root, 'packages/steeple/src/proxy');
    const STATIC_ROOT = /(?:^|\n)\s*import\s(?!type\s)[^'"`;]*?from\s+['"]@steeple\/spiffe['"]/;
    const problems = sourceFiles(src)
      .filter((f) => !f.endsWith('.test.ts') && STATIC_ROOT.test(readFileSync(f, 'utf8')))
      .map(
        (f) =>
          `${relative(root, f)} imports "@steeple/spiffe": use "@steeple/spiffe/core" (or import() it where the Workload API is configured)`,
      );
    assert.deepEqual(problems, []);
  });
});
