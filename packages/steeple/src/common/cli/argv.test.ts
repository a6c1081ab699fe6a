import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Command } from 'commander';
import { normalizeArgv, normalizeArgvFor } from './argv.js';

describe('normalizeArgv', () => {
  const known = ['spiffeID', 'parentID', 'selector', 'config', 'socketPath', 'output'];

  it("rewrites SPIRE's single-dash long flags, with and without =value", () => {
    assert.deepEqual(
      normalizeArgv(
        [
          '-spiffeID',
          'spiffe://example.org/web',
          '-parentID=spiffe://example.org/agent',
          '-selector',
          'unix:uid:1000',
          '-output',
          'json',
        ],
        known,
      ),
      [
        '--spiffeID',
        'spiffe://example.org/web',
        '--parentID=spiffe://example.org/agent',
        '--selector',
        'unix:uid:1000',
        '--output',
        'json',
      ],
    );
  });

  it('leaves short flags, double-dash flags, unknown names, values and a lone dash alone', () => {
    const args = ['-h', '-v', '--config', 'x', '-unknownFlag', '-10', '-', 'entry', '-config.yaml'];
    assert.deepEqual(normalizeArgv(args, known), args);
  });

  it('stops at the -- terminator', () => {
    assert.deepEqual(normalizeArgv(['-config', 'a', '--', '-config'], known), ['--config', 'a', '--', '-config']);
  });

  it('accepts known names given with their dashes', () => {
    assert.deepEqual(normalizeArgv(['-config', 'a'], ['--config']), ['--config', 'a']);
  });
});

describe('normalizeArgvFor', () => {
  function program() {
    const seen: Record<string, unknown> = {};
    const root = new Command('steeple').exitOverride().option('--logLevel <level>');
    const server = root.command('server');
    const entry = server.command('entry');
    entry
      .command('create')
      .option('--spiffeID <id>')
      .option('--parentID <id>')
      .option('--selector <s>', 'selector', (v: string, acc: string[] = []) => [...acc, v])
      .option('--output <format>')
      .action((opts) => Object.assign(seen, opts));
    server
      .command('run')
      .option('--config <path>')
      .option('--expandEnv')
      .action((opts) => Object.assign(seen, opts));
    root.command('agent').command('run').option('--joinToken <token>');
    return { root, seen };
  }

  it('makes commander accept a SPIRE-style entry create', async () => {
    const { root, seen } = program();
    const args = [
      'server',
      'entry',
      'create',
      '-spiffeID',
      'spiffe://example.org/web',
      '-parentID',
      'spiffe://example.org/node',
    ];
    args.push('-selector', 'unix:uid:1000', '-selector=unix:gid:0', '-output', 'json', '-logLevel', 'debug');
    await root.parseAsync(normalizeArgvFor(root, args), { from: 'user' });
    assert.deepEqual(seen, {
      spiffeID: 'spiffe://example.org/web',
      parentID: 'spiffe://example.org/node',
      selector: ['unix:uid:1000', 'unix:gid:0'],
      output: 'json',
    });
    assert.equal(root.opts().logLevel, 'debug', "the program's own flags are known too");
  });

  it('only rewrites flags of the command being run', () => {
    const { root } = program();
    assert.deepEqual(normalizeArgvFor(root, ['server', 'run', '-config', 's.yaml', '-joinToken', 't']), [
      'server',
      'run',
      '--config',
      's.yaml',
      '-joinToken',
      't',
    ]);
  });

  it('does not take a flag value for a subcommand name', () => {
    const { root } = program();
    assert.deepEqual(normalizeArgvFor(root, ['-logLevel', 'server', 'server', 'run', '-expandEnv']), [
      '--logLevel',
      'server',
      'server',
      'run',
      '--expandEnv',
    ]);
  });

  it('accepts -help as Go programs do', () => {
    const { root } = program();
    assert.deepEqual(normalizeArgvFor(root, ['server', 'run', '-help']), ['server', 'run', '--help']);
  });

  it('without normalising, commander rejects -spiffeID (the reason this exists)', async () => {
    const { root } = program();
    root.configureOutput({ writeErr: () => {} });
    for (const c of root.commands) c.exitOverride();
    const entry = root.commands[0]?.commands[0];
    entry?.exitOverride();
    entry?.commands[0]?.exitOverride().configureOutput({ writeErr: () => {} });
    await assert.rejects(root.parseAsync(['server', 'entry', 'create', '-spiffeID', 'x'], { from: 'user' }), {
      code: 'commander.unknownOption',
    });
  });
});
