import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../common/errors.js';
import { agentFlagOverrides, DEFAULT_AGENT_SOCKET_PATH, parseAgentConfig } from './config.js';

const minimal = `
server_address: 127.0.0.1
trust_domain: example.org
join_token: abc
data_dir: /var/lib/steeple/agent
`;

function problems(text: string): string[] {
  try {
    parseAgentConfig(text);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.issues.map((i) => `${i.path}: ${i.message}`);
  }
  assert.fail('expected a ConfigError');
}

describe('agent config', () => {
  it('fills SPIRE’s defaults', () => {
    const config = parseAgentConfig(minimal);
    assert.equal(config.server_port, 8081);
    assert.equal(config.socket_path, DEFAULT_AGENT_SOCKET_PATH);
    assert.deepEqual(config.workload_attestors, { unix: { discover_workload_path: false, workload_size_limit: 0 } });
    assert.equal(config.log_level, 'info');
    assert.equal(config.health_checks.listener_enabled, false);
    assert.equal(config.allow_unauthenticated_verifiers, false);
  });

  it('reads x509pop and the unix attestor options', () => {
    const config = parseAgentConfig(`
server_address: s
trust_domain: spiffe://example.org
node_attestor:
  x509pop: { private_key_path: /k.pem, certificate_path: /c.pem }
data_dir: /d
workload_attestors:
  unix: { discover_workload_path: true, workload_size_limit: 1048576 }
log_level: DEBUG
`);
    assert.equal(config.trust_domain, 'example.org');
    assert.equal(config.node_attestor?.x509pop.certificate_path, '/c.pem');
    assert.equal(config.workload_attestors.unix?.workload_size_limit, 1_048_576);
    assert.equal(config.log_level, 'debug');
  });

  it('names an unknown key and suggests the right one', () => {
    const found = problems(`${minimal}server_prot: 8081\n`);
    assert.equal(found.length, 1);
    assert.match(found[0] as string, /^server_prot: unknown key \(did you mean "server_port"\?\)/);
    assert.match(
      problems(`${minimal}workload_attestors: { unix: { discover_path: true } }\n`)[0] as string,
      /^workload_attestors\.unix\.discover_path: unknown key/,
    );
  });

  it('requires exactly one node attestation method', () => {
    const without = minimal.replace('join_token: abc\n', '');
    assert.match(problems(without)[0] as string, /^join_token: is required unless node_attestor is set/);
    const both = `${minimal}node_attestor: { x509pop: { private_key_path: /k, certificate_path: /c } }\n`;
    assert.match(problems(both)[0] as string, /^node_attestor: join_token and node_attestor are both set/);
  });

  it('refuses a bad trust domain and port', () => {
    const found = problems(minimal.replace('example.org', 'Exa mple').concat('server_port: 70000\n'));
    assert.equal(found.length, 2);
    assert.ok(found.some((p) => p.startsWith('trust_domain: "Exa mple" is not a trust domain name')));
    assert.ok(found.some((p) => p.startsWith('server_port: must be at most 65535')));
  });

  it('lets flags override keys, and names the flag in errors', () => {
    const config = parseAgentConfig(minimal, {
      overrides: agentFlagOverrides({ serverPort: '9000', socketPath: '/run/a.sock', joinToken: 'other' }),
    });
    assert.equal(config.server_port, 9000);
    assert.equal(config.socket_path, '/run/a.sock');
    assert.equal(config.join_token, 'other');
    assert.throws(
      () => parseAgentConfig(minimal, { overrides: agentFlagOverrides({ serverPort: 'x' }) }),
      (err: unknown) => err instanceof ConfigError && err.issues[0]?.flag === 'serverPort',
    );
  });
});
