import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { X509Svid } from '@steeple/spiffe';
import { Command } from 'commander';
import { type Agent, startAgent } from '../../agent/agent.js';
import { AgentConfigSchema } from '../../agent/config.js';
import { type FakeAgentApi, startFakeAgentApi } from '../../agent/testing/fake-agent-api.js';
import { eventually } from '../../agent/testing/test-helpers.js';
import { normalizeArgvFor } from '../../common/cli/argv.js';
import { createSilentLogger } from '../../common/logger.js';
import { withCliOutput } from '../command-output.js';
import { registerAgentCommands } from './agent.js';

/** Runs `steeple <args>` in-process and returns what it printed. */
async function run(...args: string[]): Promise<string> {
  const program = new Command('steeple').exitOverride();
  registerAgentCommands(program);
  const out: string[] = [];
  const collect = (text: string) => {
    out.push(text);
  };
  await withCliOutput({ out: collect, err: collect }, () =>
    program.parseAsync(normalizeArgvFor(program, args), { from: 'user' }),
  );
  return out.join('');
}

describe('steeple agent commands', () => {
  let dir: string;
  let fake: FakeAgentApi;
  let agent: Agent;
  let socketPath: string;
  let configPath: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'steeple-agent-cli-'));
    fake = await startFakeAgentApi({ joinTokens: ['cli-token'] });
    writeFileSync(join(dir, 'bootstrap.pem'), fake.bundlePem);
    socketPath = join(dir, 'api.sock');
    configPath = join(dir, 'agent.yaml');
    writeFileSync(
      configPath,
      `server_address: 127.0.0.1\nserver_port: ${fake.port}\ntrust_domain: example.org\ntrust_bundle_path: ${join(dir, 'bootstrap.pem')}\njoin_token: cli-token\ndata_dir: ${join(dir, 'data')}\nsocket_path: ${socketPath}\n`,
    );
    const config = AgentConfigSchema.parse({
      server_address: '127.0.0.1',
      server_port: fake.port,
      trust_domain: 'example.org',
      trust_bundle_path: join(dir, 'bootstrap.pem'),
      join_token: 'cli-token',
      data_dir: join(dir, 'data'),
      socket_path: socketPath,
    });
    agent = await startAgent(config, { logger: createSilentLogger() });
    await agent.syncer.whenSynced();
    const id = fake.addEntry({ spiffeId: 'spiffe://example.org/cli', selectors: [`unix:uid:${process.getuid?.()}`] });
    await eventually(() => agent.cache.svids.get(id));
  });

  after(async () => {
    await agent?.close();
    await fake?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('agent validate checks a config file', async () => {
    assert.equal(await run('agent', 'validate', '-config', configPath), 'configuration OK\n');
    writeFileSync(join(dir, 'bad.yaml'), 'server_adress: x\n');
    await assert.rejects(run('agent', 'validate', '-config', join(dir, 'bad.yaml')), /server_adress: unknown key/);
  });

  it('agent api fetch x509 -write writes svid.0.pem, svid.0.key (0600) and bundle.0.pem', async () => {
    const out = await run('agent', 'api', 'fetch', 'x509', '-socketPath', socketPath, '-write', join(dir, 'out'));
    assert.match(out, /^Received 1 svid after [\d.]+ms/);
    assert.match(out, /SPIFFE ID\s+: spiffe:\/\/example\.org\/cli/);
    const svid = X509Svid.parse(
      readFileSync(join(dir, 'out', 'svid.0.pem')),
      readFileSync(join(dir, 'out', 'svid.0.key')),
    );
    assert.equal(svid.id.toString(), 'spiffe://example.org/cli');
    assert.equal(statSync(join(dir, 'out', 'svid.0.key')).mode & 0o777, 0o600);
    assert.equal(readFileSync(join(dir, 'out', 'bundle.0.pem'), 'utf8'), fake.ca.certificate.toString());
  });

  it('agent api fetch jwt, then agent api validate jwt', async () => {
    const out = await run('agent', 'api', 'fetch', 'jwt', '-audience', 'db', '-socketPath', socketPath);
    const token = /token\(spiffe:\/\/example\.org\/cli\):\n\t(\S+)/.exec(out)?.[1];
    assert.ok(token, out);
    assert.match(out, /bundle\(spiffe:\/\/example\.org\):\n\t\{"keys":\[/);
    const valid = await run(
      'agent',
      'api',
      'validate',
      'jwt',
      '-audience',
      'db',
      '-svid',
      token,
      '-socketPath',
      socketPath,
    );
    assert.match(valid, /^SVID is valid\.\nSPIFFE ID : spiffe:\/\/example\.org\/cli/);
    await assert.rejects(
      run('agent', 'api', 'validate', 'jwt', '-audience', 'other', '-svid', token, '-socketPath', socketPath),
      /SVID is not valid/,
    );
  });

  it('agent healthcheck answers healthy for a serving agent, and fails for a missing socket', async () => {
    assert.equal(await run('agent', 'healthcheck', '-socketPath', socketPath), 'Agent is healthy.\n');
    await assert.rejects(
      run('agent', 'healthcheck', '-socketPath', join(dir, 'none.sock'), '-timeout', '2s'),
      /Agent is unhealthy/,
    );
  });
});
