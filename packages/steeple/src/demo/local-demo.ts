/**
 * `npm run demo`: a real Steeple server and agent on this machine. Two workloads get their
 * identities through the Workload API and talk mTLS, authorized by SPIFFE ID; a third
 * process that no entry matches is refused. Everything lives in a temp dir that is
 * removed at the end. Workloads are told apart by Unix uid, so the full demo needs root
 * (it runs them as uids 10001–10003); without root it shows what it can and says so.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const MAIN = resolve(HERE, '../cli/main.ts');
const WORKLOAD = resolve(HERE, 'workload.ts');
const TD = 'demo.example.org';
const API_ID = `spiffe://${TD}/billing/api`;
const WEB_ID = `spiffe://${TD}/frontend/web`;

type Print = (line: string) => void;
type Event = Record<string, unknown>;

interface Proc {
  child: ChildProcess;
  events: Event[];
  waitFor(pred: (e: Event) => boolean, what: string, timeoutMs?: number): Promise<Event>;
  stop(): Promise<void>;
}

function node(args: string[], opts: { env?: NodeJS.ProcessEnv; uid?: number; gid?: number } = {}): Proc {
  const child = spawn(process.execPath, ['--conditions=steeple-source', '--import', 'tsx', ...args], {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid ?? opts.uid } : {}),
  });
  const events: Event[] = [];
  const waiters: { pred: (e: Event) => boolean; resolve: (e: Event) => void }[] = [];
  let stderr = '';
  const onLine = (line: string) => {
    let e: Event;
    try {
      e = JSON.parse(line) as Event;
    } catch {
      return;
    }
    events.push(e);
    for (const w of [...waiters]) {
      if (w.pred(e)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(e);
      }
    }
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', (l) => {
    stderr += `${l}\n`;
    onLine(l);
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    child,
    events,
    waitFor(pred, what, timeoutMs = 60_000) {
      const seen = events.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolvePromise, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`timed out waiting for ${what}\n${stderr.slice(-2000)}`)),
          timeoutMs,
        );
        const done = (e: Event) => {
          clearTimeout(timer);
          resolvePromise(e);
        };
        waiters.push({ pred, resolve: done });
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`${what}: process exited with code ${code}\n${stderr.slice(-2000)}`));
        });
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

async function steeple(args: string[]): Promise<string> {
  const p = node([MAIN, ...args]);
  let out = '';
  p.child.stdout!.on('data', (d) => {
    out += d;
  });
  let err = '';
  p.child.stderr!.on('data', (d) => {
    err += d;
  });
  const code = await new Promise<number | null>((r) => p.child.once('exit', r));
  if (code !== 0) throw new Error(`steeple ${args.slice(0, 3).join(' ')} failed: ${err.trim()}`);
  return out;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

export interface LocalDemoResult {
  reply: string;
  refused?: Event;
  rootMode: boolean;
}

export async function runLocalDemo(print: Print = console.log): Promise<LocalDemoResult> {
  const rootMode = process.getuid?.() === 0;
  const dir = await mkdtemp(join(tmpdir(), 'steeple-demo-'));
  await chmod(dir, 0o755);
  const procs: Proc[] = [];
  try {
    const port = await freePort();
    const adminSocket = join(dir, 'server', 'admin.sock');
    const agentSocket = join(dir, 'agent', 'public', 'api.sock');
    const admin = ['-socketPath', adminSocket];
    await writeFile(
      join(dir, 'server.yaml'),
      `trust_domain: ${TD}\ndata_dir: ${dir}/server/data\nbind_address: 127.0.0.1\nbind_port: ${port}\nsocket_path: ${adminSocket}\nlog_level: warn\n`,
    );
    print(`1. Starting a Steeple server for trust domain ${TD} (data in ${dir})`);
    const server = node([MAIN, 'server', 'run', '-config', join(dir, 'server.yaml'), '-logLevel', 'info']);
    procs.push(server);
    await server.waitFor((e) => String(e['msg'] ?? '').startsWith('server ready'), 'the server to start');
    print(`   server ready: agent API 127.0.0.1:${port}, admin socket ${adminSocket}`);

    await writeFile(join(dir, 'bootstrap.pem'), await steeple(['server', 'bundle', 'show', ...admin]));
    const token = (
      JSON.parse(await steeple(['server', 'token', 'generate', ...admin, '-output', 'json'])) as { token: string }
    ).token;
    const agentId = `spiffe://${TD}/spire/agent/join_token/${token}`;
    print('2. Generated a one-time join token; starting an agent that attests with it');
    await writeFile(
      join(dir, 'agent.yaml'),
      [
        'server_address: 127.0.0.1',
        `server_port: ${port}`,
        `trust_domain: ${TD}`,
        `trust_bundle_path: ${join(dir, 'bootstrap.pem')}`,
        `join_token: ${token}`,
        `data_dir: ${dir}/agent/data`,
        `socket_path: ${agentSocket}`,
        'log_level: info',
        '',
      ].join('\n'),
    );
    const agent = node([MAIN, 'agent', 'run', '-config', join(dir, 'agent.yaml')]);
    procs.push(agent);
    await agent.waitFor((e) => e['msg'] === 'Workload API listening', 'the agent to serve the Workload API');
    print(`   agent attested as ${agentId.replace(token, '<token>')}`);
    print(`   Workload API on ${agentSocket}`);

    const uids = rootMode
      ? { api: 10001, web: 10002, stranger: 10003 }
      : { api: process.getuid?.() ?? 0, web: -1, stranger: -1 };
    const webUid = rootMode ? uids.web : uids.api;
    print('3. Registering two workloads (like `steeple server entry create`):');
    for (const [id, uid, hint] of [
      [API_ID, uids.api, 'api'],
      [WEB_ID, webUid, 'web'],
    ] as const) {
      await steeple([
        'server',
        'entry',
        'create',
        '-spiffeID',
        id,
        '-parentID',
        agentId,
        '-selector',
        `unix:uid:${uid}`,
        '-hint',
        hint,
        ...admin,
      ]);
      print(`   ${id}  ←  unix:uid:${uid}`);
    }
    if (!rootMode) print('   (not root: both workloads run as your uid, so each holds both identities)');

    const env = { SPIFFE_ENDPOINT_SOCKET: `unix://${agentSocket}`, HOME: dir };
    print(`4. Starting the billing API workload (uid ${uids.api}); it fetches its SVID from the agent`);
    const api = node([WORKLOAD, 'serve', WEB_ID], {
      env: { ...env, DEMO_HINT: 'api' },
      ...(rootMode ? { uid: uids.api } : {}),
    });
    procs.push(api);
    const apiId = await api.waitFor((e) => e['event'] === 'identity', 'the API workload identity');
    const listening = await api.waitFor((e) => e['event'] === 'listening', 'the API workload to listen');
    print(
      `   got ${apiId['id']} (expires ${apiId['expires']}), listening on 127.0.0.1:${listening['port']} for ${WEB_ID} only`,
    );

    print(`5. The frontend workload (uid ${webUid}) calls it over mTLS`);
    const web = node([WORKLOAD, 'call', API_ID, String(listening['port'])], {
      env: { ...env, DEMO_HINT: 'web' },
      ...(rootMode ? { uid: uids.web } : {}),
    });
    procs.push(web);
    const webId = await web.waitFor((e) => e['event'] === 'identity', 'the frontend identity');
    const reply = await web.waitFor((e) => e['event'] === 'reply', 'the reply');
    print(`   frontend got ${webId['id']}`);
    print(`   reply: ${reply['reply']}`);

    let refused: Event | undefined;
    if (rootMode) {
      print(`6. A third process (uid ${uids.stranger}) that no entry matches asks the agent for an identity`);
      const stranger = node([WORKLOAD, 'probe'], { env, uid: uids.stranger });
      procs.push(stranger);
      refused = await stranger.waitFor((e) => e['event'] === 'refused' || e['event'] === 'identity', 'the probe');
      print(
        refused['event'] === 'refused' ? `   refused: ${refused['message']}` : `   unexpected: it got ${refused['id']}`,
      );
    } else {
      print('6. (skipped: telling a third process apart by uid needs root)');
    }
    print(
      `Done: identities came from the Workload API and the call was authorized by SPIFFE ID${rootMode ? '; the stranger got nothing' : ''}.`,
    );
    return { reply: String(reply['reply']), ...(refused ? { refused } : {}), rootMode };
  } finally {
    for (const p of procs.reverse()) await p.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
