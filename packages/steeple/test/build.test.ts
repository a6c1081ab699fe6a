/**
 * The production build (scripts/build.mjs) and the launcher's choice between it and the
 * sources: the CLI is built into a temp dir and run with plain `node`, no tsx — version, help,
 * `proxy check`, a `proxy run` that serves one mTLS request and stops on SIGTERM without
 * loading any server or agent code, and `server validate`.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { authorizeId, BundleSet } from '@steeple/spiffe';
import { createTestCa } from '@steeple/spiffe/testing';
import { connectMtls, eventually, startHttpApp, tempDir, writeIdentity } from './support/proxy-fixtures.js';

const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'packages/steeple/package.json'), 'utf8')) as { version: string })
  .version;

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Plain node: no tsx, no inherited NODE_OPTIONS. */
function plainEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env.NODE_OPTIONS;
  if (!('MALLOC_ARENA_MAX' in extra)) delete env.MALLOC_ARENA_MAX;
  return env;
}

/** Runs `command` to its end, collecting its output. */
function run(command: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<Run> {
  const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  return new Promise((r) => child.on('close', (code) => r({ code, stdout, stderr })));
}

function runNode(args: readonly string[], env: NodeJS.ProcessEnv = plainEnv()): Promise<Run> {
  return run(process.execPath, args, env);
}

function freePort(): Promise<number> {
  return new Promise((r) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => r(port));
    });
  });
}

describe('bin/steeple: the built CLI while it is fresh, the sources otherwise', () => {
  // A copy of the launcher in a repository-shaped temp dir, whose "build" and "sources" are
  // stubs that print which of them ran (tsx is the real one, linked in).
  const root = mkdtempSync(join(tmpdir(), 'steeple-launcher-'));
  const pkg = join(root, 'packages', 'steeple');
  const src = join(pkg, 'src');
  const file = join(src, 'proxy', 'proxy.ts');
  const testFile = join(src, 'proxy', 'proxy.test.ts');
  const sdkFile = join(root, 'packages', 'spiffe', 'src', 'index.ts');
  const lock = join(root, 'node_modules', '.package-lock.json');
  const bin = join(pkg, 'bin', 'steeple');
  const stamp = join(pkg, 'dist', 'BUILD.json');
  const builtAt = new Date(Date.now() - 60_000);
  const earlier = new Date(builtAt.getTime() - 60_000);

  before(() => {
    for (const d of [join(src, 'proxy'), join(src, 'cli'), join(pkg, 'bin'), join(pkg, 'dist'), dirname(sdkFile)]) {
      mkdirSync(d, { recursive: true });
    }
    mkdirSync(join(root, 'node_modules'), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules', 'tsx'), join(root, 'node_modules', 'tsx'));
    copyFileSync(join(ROOT, 'packages/steeple/bin/steeple'), bin);
    chmodSync(bin, 0o755);
    const report = (what: string) =>
      `process.stdout.write(${JSON.stringify(what)} + ' ' + JSON.stringify({ args: process.argv.slice(2), semi: process.execArgv.filter((a) => a.startsWith('--max-semi') || a.startsWith('--heap-growing')), arena: process.env.MALLOC_ARENA_MAX ?? null }) + '\\n');\n`;
    writeFileSync(join(pkg, 'dist', 'main.js'), report('build'));
    writeFileSync(join(src, 'cli', 'main.ts'), report('sources'));
    for (const f of [file, testFile, sdkFile, lock, join(pkg, 'package.json')]) writeFileSync(f, '{}');
    writeFileSync(join(root, 'packages', 'spiffe', 'package.json'), '{}');
    writeFileSync(stamp, '{}');
    utimesSync(stamp, builtAt, builtAt);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  /** Sets every source file and directory to before the build. */
  const age = () => {
    const paths = [
      file,
      testFile,
      sdkFile,
      lock,
      join(pkg, 'package.json'),
      join(root, 'packages/spiffe/package.json'),
    ];
    paths.push(join(src, 'proxy'), join(src, 'cli'), join(src, 'cli', 'main.ts'), src, dirname(sdkFile));
    for (const p of paths) utimesSync(p, earlier, earlier);
  };
  const launch = (args: string[], env: Record<string, string> = {}) =>
    run(bin, args, { ...plainEnv(), STEEPLE_LAUNCHER_TRACE: '1', ...env });
  const touch = (p: string) => {
    const now = new Date();
    utimesSync(p, now, now);
  };

  it('runs the build when nothing changed after it started, passing the arguments on', async () => {
    age();
    const r = await launch(['agent', 'api', 'fetch', 'x509']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^build \{"args":\["agent","api","fetch","x509"\],"semi":\[\],"arena":null\}/);
    assert.match(r.stderr, /steeple launcher: build/);
  });

  it('gives the proxy 1 MiB semi-spaces and 20 % old-generation growth, semi-spaces unless NODE_OPTIONS sets its own', async () => {
    age();
    assert.match(
      (await launch(['proxy', 'run'])).stdout,
      /"semi":\["--max-semi-space-size=1","--heap-growing-percent=20"\]/,
    );
    const own = await launch(['proxy', 'run'], { NODE_OPTIONS: '--max-semi-space-size=8' });
    assert.match(own.stdout, /"semi":\["--heap-growing-percent=20"\]/);
  });

  it('gives the proxy 2 malloc arenas unless MALLOC_ARENA_MAX is set, and leaves other commands alone', async () => {
    age();
    assert.match((await launch(['proxy', 'run'])).stdout, /"arena":"2"/);
    assert.match((await launch(['proxy', 'run'], { MALLOC_ARENA_MAX: '4' })).stdout, /"arena":"4"/);
    assert.match((await launch(['server', 'run'])).stdout, /"arena":null/);
  });

  it('runs the sources when a source file, a directory, the SDK, a package.json or an install is newer', async () => {
    for (const changed of [file, join(src, 'proxy'), sdkFile, join(pkg, 'package.json'), lock]) {
      age();
      touch(changed);
      const r = await launch(['--version']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^sources /, changed);
      assert.ok(r.stderr.includes(`${changed} is newer than the build`), r.stderr);
    }
  });

  it('ignores test files, which are never built', async () => {
    age();
    touch(testFile);
    assert.match((await launch(['--version'])).stdout, /^build /);
  });

  it('runs the sources without a build, or when STEEPLE_FROM_SOURCE=1', async () => {
    age();
    assert.match((await launch(['--version'], { STEEPLE_FROM_SOURCE: '1' })).stdout, /^sources /);
    rmSync(stamp);
    const r = await launch(['--version']);
    assert.match(r.stdout, /^sources /);
    assert.match(r.stderr, /no build in .*npm run build/);
    writeFileSync(stamp, '{}');
    utimesSync(stamp, builtAt, builtAt);
  });

  it('is the daemon itself (exec): a signal reaches Node directly and its exit status is the command’s', async () => {
    age();
    writeFileSync(
      join(pkg, 'dist', 'main.js'),
      "process.on('SIGTERM', () => process.exit(7)); process.stdout.write('pid ' + process.pid + '\\n'); setInterval(() => {}, 1000);\n",
    );
    const child = spawn(bin, ['server', 'run'], { env: plainEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
    const pid = await new Promise<number>((r) => child.stdout.once('data', (d) => r(Number(String(d).split(' ')[1]))));
    assert.equal(pid, child.pid, 'the launcher exec’d node: same process');
    child.kill('SIGTERM');
    assert.equal(await new Promise((r) => child.on('close', r)), 7);
  });
});

describe('the built CLI on plain node', () => {
  const outdir = join(mkdtempSync(join(tmpdir(), 'steeple-build-')), 'dist');
  const main = join(outdir, 'main.js');
  const ca = createTestCa({ trustDomain: 'example.org' });
  const bundles = BundleSet.of(ca.x509Bundle());
  const ID_APP = 'spiffe://example.org/app';

  before(async () => {
    const build = await runNode(['scripts/build.mjs', '--outdir', outdir]);
    assert.equal(build.code, 0, build.stderr);
    const stamp = JSON.parse(readFileSync(join(outdir, 'BUILD.json'), 'utf8')) as { entry: string; version: string };
    assert.equal(stamp.entry, 'main.js');
    assert.equal(stamp.version, VERSION);
  });
  after(() => rmSync(resolve(outdir, '..'), { recursive: true, force: true }));

  it('prints the version and the help of every command group', async () => {
    const version = await runNode([main, '--version']);
    assert.deepEqual([version.code, version.stdout], [0, `${VERSION}\n`]);
    const help = await runNode([main, '--help']);
    assert.equal(help.code, 0);
    for (const group of ['server', 'agent', 'proxy']) assert.match(help.stdout, new RegExp(`^  ${group} `, 'm'));
    const proxyHelp = await runNode([main, 'proxy', '--help']);
    assert.match(proxyHelp.stdout, /^ {2}run /m);
    assert.match(proxyHelp.stdout, /^ {2}check /m);
  });

  it('proxy check passes a good file and exits 1 naming the broken key', async () => {
    const dir = tempDir();
    const files = writeIdentity(dir, 'app', ca.issueX509Svid(ID_APP), bundles);
    const identity = `identity:\n  files: { cert: ${files.cert}, key: ${files.key}, bundle: ${files.bundle} }\n`;
    writeFileSync(
      join(dir, 'good.yaml'),
      `${identity}inbound:\n  - { name: web, listen: "127.0.0.1:0", target: "127.0.0.1:1" }\n`,
    );
    writeFileSync(
      join(dir, 'bad.yaml'),
      `${identity}inbound:\n  - { name: web, listen: "127.0.0.1:0", target: "127.0.0.1:1", mode: STRICTER }\n`,
    );
    const good = await runNode([main, 'proxy', 'check', '-config', join(dir, 'good.yaml')]);
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stdout, /configuration OK/);
    const bad = await runNode([main, 'proxy', 'check', '-config', join(dir, 'bad.yaml')]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /inbound\[0\]\.mode: "STRICTER" is not one of/);
  });

  it('proxy run serves an mTLS request, stops on SIGTERM, and loads no server or agent code', async () => {
    const dir = tempDir();
    // Records every module the process loads (a module-loading hook, run by --import).
    const loadedLog = join(dir, 'loaded.txt');
    // And every built-in module it loaded, `require`d or imported (written at exit).
    const builtinsLog = join(dir, 'builtins.txt');
    writeFileSync(
      join(dir, 'hooks.mjs'),
      `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  appendFileSync(process.env.STEEPLE_TEST_LOADED, url + '\\n');
  return next(url, context);
}
`,
    );
    writeFileSync(
      join(dir, 'record-loads.mjs'),
      `import { register } from 'node:module';\nimport { writeFileSync } from 'node:fs';\nregister('./hooks.mjs', import.meta.url);\nprocess.on('exit', () => writeFileSync(process.env.STEEPLE_TEST_BUILTINS, process.moduleLoadList.join('\\n')));\n`,
    );
    const app = await startHttpApp();
    const files = writeIdentity(dir, 'app', ca.issueX509Svid(ID_APP), bundles);
    const port = await freePort();
    const healthPort = await freePort();
    writeFileSync(
      join(dir, 'proxy.yaml'),
      `identity:\n  files: { cert: ${files.cert}, key: ${files.key}, bundle: ${files.bundle} }
inbound:\n  - { name: web, listen: "127.0.0.1:${port}", target: "127.0.0.1:${app.port}", protocol: http }
health_checks: { listener_enabled: true, bind_address: 127.0.0.1, bind_port: ${healthPort} }
log_level: warn
`,
    );
    const child = spawn(
      process.execPath,
      [
        '--import',
        pathToFileURL(join(dir, 'record-loads.mjs')).href,
        main,
        'proxy',
        'run',
        '-config',
        join(dir, 'proxy.yaml'),
      ],
      {
        cwd: ROOT,
        env: plainEnv({ STEEPLE_TEST_LOADED: loadedLog, STEEPLE_TEST_BUILTINS: builtinsLog }),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((r) => child.on('close', r));
    try {
      const ready = await eventually(
        () =>
          new Promise<number | undefined>((r) => {
            http
              .get(`http://127.0.0.1:${healthPort}/ready`, (res) => {
                res.resume();
                r(res.statusCode === 200 ? 200 : undefined);
              })
              .on('error', () => r(undefined));
          }),
        20_000,
      ).catch((err: Error) => assert.fail(`${err.message}; stderr: ${stderr}`));
      assert.equal(ready, 200);
      const conn = await connectMtls(
        port,
        ca.issueX509Svid('spiffe://example.org/client'),
        bundles,
        authorizeId(ID_APP),
      );
      const res = await conn.request('/through-the-build');
      conn.close();
      assert.equal(res?.status, 200);
      const seen = JSON.parse(res?.body ?? '{}') as { url: string; xfcc: string };
      assert.equal(seen.url, '/through-the-build');
      assert.equal(seen.xfcc, `By=${ID_APP};URI=spiffe://example.org/client`);
    } finally {
      child.kill('SIGTERM');
      const code = await exited;
      await app.close();
      assert.equal(code, 0, stderr);
    }

    const loaded = new Set(
      readFileSync(loadedLog, 'utf8')
        .split('\n')
        .filter((u) => u.startsWith('file:'))
        .map((u) => fileURLToPath(u)),
    );
    assert.ok(![...loaded].some((p) => p.endsWith('.ts')), `no TypeScript is loaded: ${[...loaded].join(', ')}`);
    // node:tls is required, not imported: its ES module facade would read tls.rootCertificates
    // (scripts/build.mjs). HTTP/2 and https are loaded only when used (no HTTP/2 caller here).
    const urls = readFileSync(loadedLog, 'utf8').split('\n');
    assert.ok(!urls.includes('node:tls'), 'node:tls is not loaded through an ES module facade');
    const builtins = readFileSync(builtinsLog, 'utf8').split('\n');
    assert.ok(builtins.includes('NativeModule tls'), 'the record of built-ins is complete');
    for (const lazy of ['NativeModule http2', 'NativeModule https']) {
      assert.ok(!builtins.includes(lazy), `${lazy} is not loaded by an HTTP/1.1-only proxy`);
    }
    const metafile = JSON.parse(readFileSync(join(outdir, 'metafile.json'), 'utf8')) as {
      outputs: Record<string, { inputs: Record<string, unknown> }>;
    };
    const chunksWith = (test: (input: string) => boolean) =>
      Object.entries(metafile.outputs)
        .filter(([out, { inputs }]) => out.endsWith('.js') && Object.keys(inputs).some(test))
        .map(([out]) => resolve(ROOT, out));
    const proxyChunks = chunksWith((i) => i === 'packages/steeple/src/proxy/proxy.ts');
    assert.equal(proxyChunks.length, 1);
    assert.ok(loaded.has(proxyChunks[0] as string), 'the proxy ran from its chunk');
    const forbidden = chunksWith((i) =>
      /^packages\/steeple\/src\/(server|agent)\/|^packages\/steeple\/src\/cli\/(commands\/(server-|agent)|admin-command)|^packages\/steeple\/src\/common\/admin-client/.test(
        i,
      ),
    );
    assert.ok(forbidden.length > 0, 'the build has server and agent chunks');
    assert.deepEqual(
      forbidden.filter((c) => loaded.has(c)),
      [],
      'proxy run loads no chunk that holds server, agent or admin-client code',
    );
  });

  it('server validate accepts a small server configuration', async () => {
    const dir = tempDir('steeple-build-server-');
    writeFileSync(join(dir, 'server.yaml'), `trust_domain: example.org\ndata_dir: ${dir}/data\n`);
    const res = await runNode([main, 'server', 'validate', '-config', join(dir, 'server.yaml')]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout, 'configuration OK\n');
  });

  it('refuses to build into a directory that holds something else', async () => {
    const dir = tempDir('steeple-build-other-');
    writeFileSync(join(dir, 'precious.txt'), 'keep me');
    const res = await runNode(['scripts/build.mjs', '--outdir', dir]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /not empty and not a previous build; refusing to clear it/);
    assert.equal(readFileSync(join(dir, 'precious.txt'), 'utf8'), 'keep me');
  });
});
