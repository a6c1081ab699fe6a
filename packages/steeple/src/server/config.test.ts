import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../common/errors.js';
import { DEFAULT_SERVER_SOCKET_PATH, parseServerConfig, serverConfigWarnings, serverFlagOverrides } from './config.js';

function issuesOf(fn: () => unknown): { path: string; message: string; flag?: string }[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err.issues.map((i) => ({ path: i.path, message: i.message, ...(i.flag ? { flag: i.flag } : {}) }));
  }
  assert.fail('expected the configuration to be refused');
}

const minimal = 'trust_domain: example.org\ndata_dir: /var/lib/steeple\n';

describe('server config', () => {
  it('fills SPIRE defaults for everything but trust_domain and data_dir', () => {
    const c = parseServerConfig(minimal);
    assert.equal(c.trust_domain, 'example.org');
    assert.equal(c.bind_address, '0.0.0.0');
    assert.equal(c.bind_port, 8081);
    assert.equal(c.socket_path, DEFAULT_SERVER_SOCKET_PATH);
    assert.equal(c.ca_ttl, 24 * 3600);
    assert.equal(c.default_x509_svid_ttl, 3600);
    assert.equal(c.default_jwt_svid_ttl, 300);
    assert.equal(c.ca_key_type, 'ec-p256');
    assert.equal(c.ca_subject, undefined);
    assert.equal(c.log_level, 'info');
    assert.equal(c.key_manager, 'disk');
    assert.deepEqual(c.datastore, { type: 'sqlite', path: '/var/lib/steeple/datastore.sqlite3' });
    assert.deepEqual(c.node_attestors, { join_token: {} });
    assert.equal(c.upstream_authority, undefined);
    assert.equal(c.health_checks.listener_enabled, false);
    assert.equal(c.telemetry.prometheus, undefined);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.datastore), 'validated config is frozen');
  });

  it('reads every key with SPIRE names', () => {
    const c = parseServerConfig(`
trust_domain: spiffe://prod.example.org
bind_address: 127.0.0.1
bind_port: 0
socket_path: /run/steeple/api.sock
data_dir: ./data
ca_ttl: 48h
default_x509_svid_ttl: 2h
default_jwt_svid_ttl: 10m
agent_ttl: 3h
ca_key_type: ec-p384
ca_subject: { country: DE, organization: [Acme, Acme Labs], common_name: Acme CA }
jwt_issuer: https://oidc.example.org
log_level: DEBUG
datastore: { type: postgres, connection_string: "postgres://u@db/steeple" }
key_manager: memory
upstream_authority: { disk: { cert_file_path: /ca.pem, key_file_path: /ca.key } }
node_attestors: { join_token: {}, x509pop: { ca_bundle_path: /node-ca.pem } }
health_checks: { listener_enabled: true, bind_port: 8080 }
telemetry: { prometheus: { port: 9988 } }
`);
    assert.equal(c.trust_domain, 'prod.example.org');
    assert.equal(c.bind_port, 0);
    assert.equal(c.ca_ttl, 48 * 3600);
    assert.equal(c.log_level, 'debug');
    assert.equal(c.agent_ttl, 3 * 3600);
    assert.deepEqual(c.datastore, { type: 'postgres', connection_string: 'postgres://u@db/steeple' });
    assert.equal(c.upstream_authority?.disk.cert_file_path, '/ca.pem');
    assert.equal(c.node_attestors.x509pop?.ca_bundle_path, '/node-ca.pem');
    assert.equal(c.telemetry.prometheus?.port, 9988);
    assert.equal(c.jwt_issuer, 'https://oidc.example.org');
    assert.deepEqual(c.ca_subject, { country: ['DE'], organization: ['Acme', 'Acme Labs'], common_name: 'Acme CA' });
  });

  it('names an unknown key and suggests the right one', () => {
    const issues = issuesOf(() => parseServerConfig(`${minimal}ca_tll: 1h\n`));
    assert.equal(issues.length, 1);
    assert.equal(issues[0]?.path, 'ca_tll');
    assert.match(issues[0]!.message, /unknown key.*ca_ttl/);
  });

  it('names unknown keys inside sections', () => {
    const issues = issuesOf(() =>
      parseServerConfig(`${minimal}datastore: { type: sqlite, pth: x }\nnode_attestors: { join_tokn: {} }\n`),
    );
    assert.deepEqual(
      issues.map((i) => i.path),
      ['datastore.pth', 'node_attestors.join_tokn'],
    );
  });

  it('requires trust_domain and data_dir', () => {
    const issues = issuesOf(() => parseServerConfig('bind_port: 8081\n'));
    assert.deepEqual(issues.map((i) => i.path).sort(), ['data_dir', 'trust_domain']);
  });

  it('rejects a trust domain that breaks the SPIFFE rules', () => {
    const issues = issuesOf(() => parseServerConfig('trust_domain: Example.ORG\ndata_dir: /d\n'));
    assert.equal(issues[0]?.path, 'trust_domain');
  });

  it('refuses an X.509-SVID TTL that is not shorter than the CA TTL', () => {
    const issues = issuesOf(() => parseServerConfig(`${minimal}ca_ttl: 1h\ndefault_x509_svid_ttl: 1h\n`));
    assert.equal(issues.length, 1);
    assert.equal(issues[0]?.path, 'default_x509_svid_ttl');
    assert.match(issues[0]!.message, /shorter than ca_ttl \(1h\)/);
  });

  it('refuses an agent TTL that is not shorter than the CA TTL', () => {
    const issues = issuesOf(() => parseServerConfig(`${minimal}agent_ttl: 30h\n`));
    assert.equal(issues[0]?.path, 'agent_ttl');
  });

  it('refuses a JWT-SVID TTL that is not shorter than the CA TTL', () => {
    const issues = issuesOf(() =>
      parseServerConfig(`${minimal}ca_ttl: 10m\ndefault_x509_svid_ttl: 1m\ndefault_jwt_svid_ttl: 10m\n`),
    );
    assert.equal(issues[0]?.path, 'default_jwt_svid_ttl');
  });

  it('refuses a configuration without any node attestor', () => {
    const issues = issuesOf(() => parseServerConfig(`${minimal}node_attestors: {}\n`));
    assert.equal(issues[0]?.path, 'node_attestors');
  });

  it('refuses an unknown datastore type, CA key type and key manager, listing the allowed ones', () => {
    const issues = issuesOf(() =>
      parseServerConfig(`${minimal}datastore: { type: mysql }\nca_key_type: ec-p521\nkey_manager: vault\n`),
    );
    const byPath = new Map(issues.map((i) => [i.path, i.message]));
    assert.match(byPath.get('datastore.type') ?? byPath.get('datastore') ?? '', /"sqlite", "postgres"/);
    assert.match(byPath.get('ca_key_type') ?? '', /"ec-p256"/);
    assert.match(byPath.get('key_manager') ?? '', /"disk", "memory"/);
  });

  it('lets flags override the file and names the flag in errors', () => {
    const c = parseServerConfig(minimal, {
      overrides: serverFlagOverrides({ trustDomain: 'other.org', serverPort: '0', dataDir: '/elsewhere' }),
    });
    assert.equal(c.trust_domain, 'other.org');
    assert.equal(c.bind_port, 0);
    assert.equal(c.data_dir, '/elsewhere');
    assert.equal(c.datastore.type === 'sqlite' && c.datastore.path, '/elsewhere/datastore.sqlite3');

    const issues = issuesOf(() =>
      parseServerConfig(minimal, { overrides: serverFlagOverrides({ serverPort: 'eighty' }) }),
    );
    assert.equal(issues[0]?.path, 'bind_port');
    assert.equal(issues[0]?.flag, 'serverPort');
  });

  it('warns when the CA TTL is shorter than six default SVID TTLs', () => {
    assert.deepEqual(serverConfigWarnings(parseServerConfig(minimal)), []);
    const warnings = serverConfigWarnings(parseServerConfig(`${minimal}ca_ttl: 3h\n`));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /ca_ttl to 6h or more/);
  });
});
