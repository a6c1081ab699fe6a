/**
 * `npm run demo:agent`: a real Steeple server and agent on this machine. Two workloads get their
 * identities through the Workload API and talk mTLS, authorized by SPIFFE ID; a third
 * process that no entry matches is refused. Everything lives in a temp dir that is
 * removed at the end. Workloads are told apart by Unix uid, so the full demo needs root
 * (it runs them as uids 10001–10003); without root it shows what it can and says so.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { steeple } from './demo-cli.js';
import { DemoProcesses, type LogEvent } from './demo-process.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const MAIN = resolve(HERE, '../cli/main.ts');
const WORKLOAD = resolve(HERE, 'workload.ts');
const TD = 'demo.example.org';
const API_ID = `spiffe://${TD}/billing/api`;
const WEB_ID = `spiffe://${TD}/frontend/web`;

type Print = (line: string) => void;
type Event = LogEvent;

export interface LocalDemoResult {
  reply: string;
  refused?: Event;
  rootMode: boolean;
}

export async function runLocalDemo(print: Print = console.log): Promise<LocalDemoResult> {
  const rootMode = process.getuid?.() === 0;
  const dir = await mkdtemp(join(tmpdir(), 'steeple-agent-demo-'));
  await chmod(dir, 0o755);
  const procs = new DemoProcesses();
  try {
    const adminSocket = join(dir, 'server', 'admin.sock');
    const agentSocket = join(dir, 'agent', 'public', 'api.sock');
    const admin = ['-socketPath', adminSocket];
    await writeFile(
      join(dir, 'server.yaml'),
      `trust_domain: ${TD}\ndata_dir: ${dir}/server/data\nbind_address: 127.0.0.1\nbind_port: 0\nsocket_path: ${adminSocket}\nlog_level: warn\n`,
    );
    print(`1. Starting a Steeple server for trust domain ${TD} (data in ${dir})`);
    const server = procs.start(
      'server',
      [MAIN, 'server', 'run', '-config', join(dir, 'server.yaml'), '-logLevel', 'info'],
      {
        layer: 0,
      },
    );
    const ready = await server.waitFor((e) => String(e['msg'] ?? '').startsWith('server ready'), 'the server to start');
    const port = Number(/agent API [^ ]*:(\d+),/.exec(String(ready['msg']))?.[1]);
    print(`   server ready: agent API 127.0.0.1:${port}, admin socket ${adminSocket}`);

    await writeFile(join(dir, 'bootstrap.pem'), await steeple('server', 'bundle', 'show', ...admin));
    const token = (
      JSON.parse(await steeple('server', 'token', 'generate', ...admin, '-output', 'json')) as { token: string }
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
    const agent = procs.start('agent', [MAIN, 'agent', 'run', '-config', join(dir, 'agent.yaml')], { layer: 1 });
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
      await steeple(
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
      );
      print(`   ${id}  ←  unix:uid:${uid}`);
    }
    if (!rootMode) print('   (not root: both workloads run as your uid, so each holds both identities)');

    const env = { SPIFFE_ENDPOINT_SOCKET: `unix://${agentSocket}`, HOME: dir };
    print(`4. Starting the billing API workload (uid ${uids.api}); it fetches its SVID from the agent`);
    const api = procs.start('API workload', [WORKLOAD, 'serve', WEB_ID], {
      env: { ...env, DEMO_HINT: 'api' },
      uid: rootMode ? uids.api : undefined,
    });
    const apiId = await api.waitFor((e) => e['event'] === 'identity', 'the API workload identity');
    const listening = await api.waitFor((e) => e['event'] === 'listening', 'the API workload to listen');
    print(
      `   got ${apiId['id']} (expires ${apiId['expires']}), listening on 127.0.0.1:${listening['port']} for ${WEB_ID} only`,
    );

    print(`5. The frontend workload (uid ${webUid}) calls it over mTLS`);
    const web = procs.start('frontend workload', [WORKLOAD, 'call', API_ID, String(listening['port'])], {
      env: { ...env, DEMO_HINT: 'web' },
      uid: rootMode ? uids.web : undefined,
      expectExit: true,
    });
    const webId = await web.waitFor((e) => e['event'] === 'identity', 'the frontend identity');
    const reply = await web.waitFor((e) => e['event'] === 'reply', 'the reply');
    print(`   frontend got ${webId['id']}`);
    print(`   reply: ${reply['reply']}`);

    let refused: Event | undefined;
    if (rootMode) {
      print(`6. A third process (uid ${uids.stranger}) that no entry matches asks the agent for an identity`);
      const stranger = procs.start('stranger', [WORKLOAD, 'probe'], { env, uid: uids.stranger, expectExit: true });
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
    await procs.stopAll();
    await rm(dir, { recursive: true, force: true });
  }
}
