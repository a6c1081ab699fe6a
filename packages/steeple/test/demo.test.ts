/**
 * `npm run demo` end to end: two trust domains (servers, agents, proxies, sample apps as
 * real processes), federated, a cross-domain call allowed and another denied with an audit
 * line; the commands it tells the user to try work while it runs; and `npm run demo` itself
 * keeps running until Ctrl-C, then stops every process, removes its temp dir and exits 0.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, exec, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { processAlive } from '../src/common/process-alive.js';
import {
  CLIENT_A,
  OTHER_A,
  type RunningTwoDomainDemo,
  SERVICE_B,
  startTwoDomainDemo,
  TD_A,
  TD_B,
} from '../src/demo/two-domain-demo.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** pids of the processes below `pid` (Linux /proc; empty elsewhere). */
function descendantsOf(pid: number): number[] {
  if (!existsSync('/proc')) return [];
  const parentOf = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // Field 4 of stat is the parent pid; the command name (field 2) may hold spaces, so split after ')'.
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      parentOf.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // exited meanwhile
    }
  }
  const below = new Set<number>([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [child, parent] of parentOf) {
      if (below.has(parent) && !below.has(child)) {
        below.add(child);
        grew = true;
      }
    }
  }
  below.delete(pid);
  return [...below];
}

function sh(command: string): Promise<{ code: number; out: string }> {
  return new Promise((done) => {
    exec(command, { cwd: process.cwd(), timeout: 60_000 }, (err, stdout, stderr) => {
      done({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, out: `${stdout}${stderr}` });
    });
  });
}

describe('npm run demo: two federated trust domains', () => {
  let demo: RunningTwoDomainDemo | undefined;
  const lines: string[] = [];

  after(async () => {
    await demo?.stop();
  });

  it("starts both trust domains, federates them, allows A's client and denies A's other workload with an audit line", async (t) => {
    demo = await startTwoDomainDemo({ print: (l) => lines.push(l) });
    t.diagnostic(
      `ready after ${demo.readySeconds.toFixed(1)} s (${demo.rootMode ? 'root: workloads by uid' : 'not root'})`,
    );
    const text = lines.join('\n');
    for (const td of [TD_A, TD_B]) {
      assert.match(text, new RegExp(`${td}: server started: agent API 127\\.0\\.0\\.1:\\d+, bundle endpoint https://`));
      assert.match(text, new RegExp(`${td}: agent attested as spiffe://${td}/spire/agent/join_token/`));
    }
    assert.match(text, new RegExp(`bundles exchanged: ${TD_A} fetched ${TD_B}'s bundle .* ${TD_B} fetched ${TD_A}'s`));
    assert.deepEqual(
      demo.identities.map((i) => i.id),
      [SERVICE_B, CLIENT_A, OTHER_A],
    );
    for (const i of demo.identities) {
      assert.ok(Date.parse(i.expires) > Date.now(), `${i.id} expires in the future`);
      assert.deepEqual(i.bundles, [TD_A, TD_B], `${i.id} holds both trust domains' bundles`);
      assert.ok(text.includes(`${i.id.padEnd(34)} expires ${i.expires}`), `identity line of ${i.id}`);
    }

    assert.equal(demo.allowed.status, 200);
    const reply = JSON.parse(demo.allowed.body) as Record<string, unknown>;
    assert.equal(reply['message'], `hello from the service in ${TD_B}`);
    assert.equal(reply['x-forwarded-client-cert'], `By=${SERVICE_B};URI=${CLIENT_A}`);
    assert.ok(text.includes(`allowed: HTTP 200 ${demo.allowed.body}`));

    assert.equal(demo.denied.status, 403);
    assert.match(demo.denied.body, /access denied/);
    const audit = JSON.parse(demo.auditLine) as Record<string, unknown>;
    assert.equal(audit['decision'], 'deny');
    assert.equal(audit['source_id'], OTHER_A);
    assert.equal(audit['destination_id'], SERVICE_B);
    assert.equal(audit['listener'], 'service');
    assert.equal(audit['status'], 403);
    assert.ok(text.includes(`B's proxy audit line: ${demo.auditLine}`));
  });

  it('every command it suggests works while it runs', async (t) => {
    assert.ok(demo, 'the demo is running');
    const expected: [RegExp, RegExp][] = [
      [/^curl .*:\d+\/hello$/, new RegExp(`"x-forwarded-client-cert":"By=${SERVICE_B};URI=${CLIENT_A}"`)],
      [/^curl /, /access denied.*\(HTTP 403\)/s],
      [/^tail -f /, new RegExp(`"source_id":"${OTHER_A}".*"decision":"deny"`)],
      [/ federation show /, /Status\s+: ok/],
      [/ federation refresh /, /Bundle refreshed/],
      [/ entry show /, new RegExp(`SPIFFE ID\\s+: ${SERVICE_B}[\\s\\S]*FederatesWith : ${TD_A}`)],
      [/ agent api fetch x509 /, new RegExp(`SPIFFE ID\\s+: ${CLIENT_A}[\\s\\S]*Federated bundles : ${TD_B}`)],
    ];
    assert.equal(demo.commands.length, expected.length, demo.commands.map((c) => c.command).join('\n'));
    const results = await Promise.all(
      demo.commands.map(async ({ command }) => {
        // tail -f never ends by itself: stop it after a moment (exit 124 is the timeout's).
        const r = await sh(command.startsWith('tail -f ') ? `timeout 2 ${command}` : command);
        return { command, ...r, code: command.startsWith('tail -f ') && r.code === 124 ? 0 : r.code };
      }),
    );
    results.forEach((r, i) => {
      const [shape, output] = expected[i] as [RegExp, RegExp];
      assert.match(r.command, shape);
      assert.equal(r.code, 0, `${r.command}\n${r.out}`);
      assert.match(r.out, output, r.command);
    });
    t.diagnostic(`${results.length} commands checked`);
  });

  it('stop() ends every process and removes the temp dir', async () => {
    assert.ok(demo, 'the demo is running');
    const pids = demo.pids();
    assert.ok(pids.length >= 8, `servers, agents, proxies and apps: ${pids.length}`);
    await demo.stop();
    assert.deepEqual(
      pids.filter((p) => processAlive(p)),
      [],
    );
    assert.equal(existsSync(demo.dir), false);
    demo = undefined;
  });
});

describe('npm run demo as a process', () => {
  let child: ChildProcess | undefined;
  after(() => {
    if (child?.exitCode === null && child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
  });

  it('keeps running until Ctrl-C, then stops its children, removes its temp dir and exits 0', async (t) => {
    // `npm run demo` in its own process group, so SIGINT to the group is what Ctrl-C in a terminal sends.
    const proc = spawn('npm', ['run', '--silent', 'demo'], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    child = proc;
    const out: string[] = [];
    let stderr = '';
    proc.stderr!.on('data', (d) => {
      stderr += d;
    });
    const exited = new Promise<{ code: number | null; signal: string | null }>((r) =>
      proc.once('exit', (code, signal) => r({ code, signal })),
    );
    await new Promise<void>((resolvePromise, reject) => {
      createInterface({ input: proc.stdout! }).on('line', (line) => {
        out.push(line);
        if (line.includes('press Ctrl-C to stop')) resolvePromise();
      });
      void exited.then(({ code }) =>
        reject(new Error(`the demo exited (${code}) before running:\n${out.join('\n')}\n${stderr}`)),
      );
    });
    const running = out.at(-1) ?? '';
    t.diagnostic(running);
    assert.match(running, /^Demo running \(ready [\d.]+ s after start\) — press Ctrl-C to stop\.$/);
    const dir = /\(files in (.+)\)$/.exec(out[0] ?? '')?.[1];
    assert.ok(dir !== undefined && existsSync(dir), `temp dir from "${out[0]}"`);
    const text = out.join('\n');
    assert.match(text, /Try these in another terminal/);
    assert.match(text, /allowed: HTTP 200 /);
    assert.match(text, /B's proxy audit line: \{.*"decision":"deny"/);
    const started = descendantsOf(proc.pid as number).filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('packages/steeple/src/');
      } catch {
        return false;
      }
    });
    // the demo itself, 2 servers, 2 agents, 3 proxies, 2 apps
    if (existsSync('/proc')) assert.ok(started.length >= 10, `the demo and its processes: ${started.length}`);

    process.kill(-(proc.pid as number), 'SIGINT');
    const { code, signal } = await exited;
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, `${out.slice(-5).join('\n')}\n${stderr}`);
    assert.match(out.at(-1) ?? '', /Stopped every process and removed the temp dir/);
    assert.deepEqual(
      started.filter((p) => processAlive(p)),
      [],
      'no process left',
    );
    assert.equal(existsSync(dir), false, `${dir} removed`);
  });
});
