#!/usr/bin/env node
// Builds the `steeple` command for plain Node: esbuild bundles packages/steeple/src/cli/main.ts
// (and @steeple/spiffe from its TypeScript sources, through the "steeple-source" condition)
// into packages/steeple/dist/ as ES modules. Code splitting makes every `await import(…)` its
// own chunk, so `steeple proxy run` loads the proxy and never the server or the agent.
// npm dependencies are bundled too (one module graph, no per-file resolution at run time), except
// the ones that cannot be: native addons and packages that load files by path at run time.
//
// The launcher (packages/steeple/bin/steeple) runs dist/main.js while no source is newer
// than the build's stamp (dist/BUILD.json, written last), and the sources through tsx otherwise.
//
// Usage: node scripts/build.mjs [--outdir DIR]   (npm run build; `prepare` runs it on npm ci)
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build, version as esbuildVersion } from 'esbuild';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PACKAGE = join(ROOT, 'packages/steeple');
const ENTRY = join(PACKAGE, 'src/cli/main.ts');

/**
 * Left to Node's resolver at run time. better-sqlite3 and koffi are native addons (koffi is
 * also loaded through createRequire in agent/attestation/peer-credentials.ts); pg requires its
 * optional pg-native lazily; undici is the SDK's optional peer dependency.
 */
const EXTERNAL = ['better-sqlite3', 'koffi', 'pg', 'pg-native', 'undici'];

/**
 * Bundled CommonJS (prom-client, yaml's dependencies) calls `require` for Node's
 * built-in modules; an ES module has none, so each output file gets one.
 */
const BANNER =
  "import { createRequire as __steepleCreateRequire } from 'node:module';\nconst require = __steepleCreateRequire(import.meta.url);";

/**
 * zod 4 re-exports its 60 message locales as the namespace `z.locales`, and esbuild keeps a
 * namespace re-export whole: about 390 KB of code in every process that validates a config.
 * Steeple never calls `z.locales` (the English messages are imported on their own, from
 * `zod/v4/locales/en.js`), so the namespace is built empty. The build fails if a source starts
 * using it.
 */
const zodLocalesStub = {
  name: 'zod-locales-stub',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /[/\\]node_modules[/\\]zod[/\\]v4[/\\](classic|core|mini)[/\\]/.test(args.importer)
        ? { path: 'zod-locales', namespace: 'steeple-stub' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'steeple-stub' }, () => ({ contents: 'export {};', loader: 'js' }));
  },
};

/**
 * `node:tls` is loaded with `require`, not `import`. For an `import` Node builds an ES
 * module facade that reads every export once, getters included, and `tls.rootCertificates`
 * then parses the ~140 bundled root certificates into strings: ≈220 KiB of heap for the
 * life of every process, which never uses them (SPIFFE trust comes from bundles). The
 * other built-ins we import measured within ±30 KiB either way and are left as imports.
 * `node:tls` becomes a small module that `require`s it and re-exports its plain
 * (non-getter) properties, so sources keep their `import` statements; importing a getter
 * by name fails the build (esbuild: no matching export).
 */
const builtinsByRequire = {
  name: 'builtins-by-require',
  setup(b) {
    const nodeRequire = createRequire(import.meta.url);
    b.onResolve({ filter: /^node:tls$/ }, (args) =>
      args.namespace === 'steeple-builtin'
        ? { path: args.path, external: true }
        : { path: args.path, namespace: 'steeple-builtin' },
    );
    b.onLoad({ filter: /.*/, namespace: 'steeple-builtin' }, (args) => {
      const names = Object.entries(Object.getOwnPropertyDescriptors(nodeRequire(args.path)))
        .filter(([name, d]) => 'value' in d && name !== 'default' && /^[A-Za-z_$][\w$]*$/.test(name))
        .map(([name]) => name);
      return {
        contents: `const m = require(${JSON.stringify(args.path)});\nexport default m;\nexport const { ${names.join(', ')} } = m;\n`,
        loader: 'js',
      };
    });
  },
};

function sourcesUsingZodLocales() {
  const found = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (
        entry.name.endsWith('.ts') &&
        /\bz\.locales\b|['"]zod\/(v4\/)?locales(\/index\.js)?['"]/.test(readFileSync(path, 'utf8'))
      )
        found.push(relative(ROOT, path));
    }
  };
  for (const pkg of ['steeple', 'spiffe']) walk(join(ROOT, 'packages', pkg, 'src'));
  return found;
}

/** Empties `outdir` if it is a previous build (or does not exist); refuses to clear anything else. */
function prepareOutdir(outdir) {
  if (existsSync(outdir) && readdirSync(outdir).length > 0) {
    if (!existsSync(join(outdir, 'BUILD.json')) && !existsSync(join(outdir, 'main.js'))) {
      throw new Error(`--outdir ${outdir}: not empty and not a previous build; refusing to clear it`);
    }
    rmSync(outdir, { recursive: true, force: true });
  }
  mkdirSync(outdir, { recursive: true });
}

export async function buildCli(outdir) {
  const users = sourcesUsingZodLocales();
  if (users.length > 0) {
    throw new Error(`${users.join(', ')} use(s) z.locales, which scripts/build.mjs builds empty: drop zodLocalesStub`);
  }
  const startedAtMs = Date.now();
  prepareOutdir(outdir);
  const { version } = JSON.parse(readFileSync(join(PACKAGE, 'package.json'), 'utf8'));
  const result = await build({
    entryPoints: { main: ENTRY },
    outdir,
    absWorkingDir: ROOT, // metafile paths relative to the repository, wherever the build runs from
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    conditions: ['steeple-source'],
    external: EXTERNAL,
    plugins: [zodLocalesStub, builtinsByRequire],
    banner: { js: BANNER },
    define: { STEEPLE_BUILD_VERSION: JSON.stringify(version) },
    chunkNames: 'chunks/[name]-[hash]',
    // Separate .map files, named by a comment: `NODE_OPTIONS=--enable-source-maps` maps stack
    // traces to the TypeScript sources, which stay in the repository (so no sourcesContent).
    sourcemap: 'linked',
    sourcesContent: false,
    minifyWhitespace: true,
    minifySyntax: true,
    minifyIdentifiers: false,
    keepNames: false,
    legalComments: 'none',
    metafile: true,
    logLevel: 'warning',
  });
  writeFileSync(join(outdir, 'metafile.json'), JSON.stringify(result.metafile));
  const outputs = Object.keys(result.metafile.outputs).map((o) => relative(outdir, resolve(ROOT, o)));
  const stamp = {
    // The launcher treats the build as stale when a source was modified after this moment.
    startedAtMs,
    startedAt: new Date(startedAtMs).toISOString(),
    durationMs: Date.now() - startedAtMs,
    version,
    node: process.version,
    esbuild: esbuildVersion,
    entry: 'main.js',
    // What packages/steeple/bin/steeple compares with this file's modification time (startedAtMs).
    sources: [
      'packages/steeple/src',
      'packages/spiffe/src',
      'packages/steeple/package.json',
      'packages/spiffe/package.json',
      'node_modules/.package-lock.json',
    ],
    inputs: Object.keys(result.metafile.inputs).length,
    external: EXTERNAL,
    outputs: outputs.filter((o) => !o.endsWith('.map')).sort(),
  };
  // Written last, through a rename: a build that failed half-way has no stamp, so it is not used.
  writeFileSync(join(outdir, 'BUILD.json.tmp'), `${JSON.stringify(stamp, null, 2)}\n`);
  // Its modification time is the build's start: `find -newer` in the launcher then also sees
  // a source saved while the build ran.
  utimesSync(join(outdir, 'BUILD.json.tmp'), startedAtMs / 1000, startedAtMs / 1000);
  renameSync(join(outdir, 'BUILD.json.tmp'), join(outdir, 'BUILD.json'));
  return stamp;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { outdir: { type: 'string' } } });
  const outdir = resolve(values.outdir ?? join(PACKAGE, 'dist'));
  try {
    const stamp = await buildCli(outdir);
    process.stdout.write(
      `steeple: built ${relative(process.cwd(), join(outdir, stamp.entry)) || stamp.entry} (${stamp.outputs.length} files, ${stamp.inputs} inputs) in ${stamp.durationMs} ms\n`,
    );
  } catch (err) {
    process.stderr.write(`steeple build: ${err.message}\n`);
    process.exitCode = 1;
  }
}
