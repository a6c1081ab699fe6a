// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${NAME} in plain strings is the config syntax under test
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import * as z from 'zod/mini';
import { ConfigError } from '../errors.js';
import { durationSchema } from './duration.js';
import { healthChecksSchema } from './health-checks-schema.js';
import { loadYamlConfig, parseYamlConfig } from './load-yaml.js';
import { logLevelSchema } from './log-level-schema.js';

// A schema shaped like the server's, to show the messages an operator would see.
const Schema = z.strictObject({
  trust_domain: z.string().check(z.regex(/^[a-z0-9._-]+$/, 'trust domain may hold only a-z, 0-9, ".", "-", "_"')),
  data_dir: z.string().check(z.minLength(1)),
  log_level: z.prefault(logLevelSchema, 'info'),
  bind_port: z.prefault(z.number().check(z.int(), z.minimum(0), z.maximum(65_535)), 8081),
  ca_ttl: z.prefault(durationSchema(), '24h'),
  ca_key_type: z.prefault(z.enum(['ec-p256', 'ec-p384', 'rsa-2048']), 'ec-p256'),
  server: z.prefault(
    z.strictObject({ ca_ttl: z.prefault(durationSchema(), '1h'), socket_path: z.optional(z.string()) }),
    {},
  ),
  datastore: z.prefault(
    z.discriminatedUnion('type', [
      z.strictObject({ type: z.literal('sqlite'), path: z.optional(z.string()) }),
      z.strictObject({ type: z.literal('postgres'), connection_string: z.string() }),
    ]),
    { type: 'sqlite' },
  ),
  node_attestors: z.prefault(z.array(z.strictObject({ type: z.string(), bundle_path: z.optional(z.string()) })), []),
  health_checks: healthChecksSchema,
});

/** Parses `yaml`, expecting a ConfigError, and returns its formatted issue lines. */
function problems(yaml: string, options: Parameters<typeof parseYamlConfig>[2] = {}): string[] {
  try {
    parseYamlConfig(yaml, Schema, options);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.equal(err.code, 'ERR_CONFIG_INVALID');
    return err.message
      .split('\n')
      .slice(1)
      .map((line) => line.trim());
  }
  assert.fail('expected the configuration to be rejected');
}

const VALID = 'trust_domain: example.org\ndata_dir: /var/lib/steeple\n';

describe('parseYamlConfig', () => {
  it('returns the typed, defaulted config, with raw defaults parsed (prefault)', () => {
    const config = parseYamlConfig(`${VALID}ca_ttl: 1h30m\nlog_level: DEBUG\n`, Schema);
    assert.equal(config.trust_domain, 'example.org');
    assert.equal(config.ca_ttl, 5400);
    assert.equal(config.server.ca_ttl, 3600, 'default "1h" went through the duration parser');
    assert.equal(config.log_level, 'debug', 'SPIRE-style upper case level accepted');
    assert.deepEqual(config.datastore, { type: 'sqlite' });
    assert.equal(config.health_checks.bind_port, 80);
  });

  it('returns a deeply frozen config', () => {
    const config = parseYamlConfig(`${VALID}node_attestors:\n  - type: join_token\n`, Schema);
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.server));
    assert.ok(Object.isFrozen(config.node_attestors));
    assert.ok(Object.isFrozen(config.node_attestors[0]));
    assert.throws(() => {
      (config as { ca_ttl: number }).ca_ttl = 1;
    }, TypeError);
  });

  it('reports an unknown nested key with its full path, line and a did-you-mean', () => {
    assert.deepEqual(problems(`${VALID}server:\n  ca_tll: 1h\n`), [
      'line 4: server.ca_tll: unknown key (did you mean "ca_ttl"?)',
    ]);
  });

  it('lists the known keys when no key is close to an unknown one', () => {
    assert.deepEqual(problems(`${VALID}server:\n  colour: blue\n`), [
      'line 4: server.colour: unknown key (known keys: ca_ttl, socket_path)',
    ]);
  });

  it('reports an unknown key inside a list item and inside a union branch', () => {
    assert.deepEqual(
      problems(
        `${VALID}node_attestors:\n  - type: x509pop\n    bundle_pth: /ca.pem\ndatastore:\n  type: postgres\n  conection_string: x\n`,
      ),
      [
        'line 5: node_attestors[0].bundle_pth: unknown key (did you mean "bundle_path"?)',
        'line 6: datastore.connection_string: is required',
        'line 8: datastore.conection_string: unknown key (did you mean "connection_string"?)',
      ],
    );
  });

  it('reports a bad duration naming the key and the value', () => {
    assert.deepEqual(problems(`${VALID}ca_ttl: 1x\n`), [
      'line 3: ca_ttl: "1x" is not a duration such as "90s", "15m", "1h" or "30d"',
    ]);
  });

  it('reports missing keys, wrong types and values outside an enum', () => {
    assert.deepEqual(problems('data_dir: 7\nbind_port: "8081"\nca_key_type: ec-p521\nlog_level: loud\n'), [
      'line 1: data_dir: expected a string, got a number',
      'line 2: bind_port: expected a number, got a string',
      'line 3: ca_key_type: "ec-p521" is not one of "ec-p256", "ec-p384", "rsa-2048"',
      'line 4: log_level: "loud" is not one of "trace", "debug", "info", "warn", "error", "fatal", "silent"',
      'trust_domain: is required',
    ]);
  });

  it('reports the allowed discriminator values of a union', () => {
    assert.deepEqual(problems(`${VALID}datastore:\n  type: mysql\n`), [
      'line 4: datastore.type: "mysql" is not one of "sqlite", "postgres"',
    ]);
  });

  it('uses the message of a schema rule and readable bounds', () => {
    assert.deepEqual(problems('trust_domain: Example.ORG\ndata_dir: ""\nbind_port: 70000\n'), [
      'line 1: trust_domain: trust domain may hold only a-z, 0-9, ".", "-", "_"',
      'line 2: data_dir: must not be empty',
      'line 3: bind_port: must be at most 65535',
    ]);
  });

  it('rejects duplicate keys, naming both lines', () => {
    assert.deepEqual(problems(`${VALID}server:\n  ca_ttl: 1h\n  ca_ttl: 2h\ndata_dir: /tmp\n`), [
      'line 5: server.ca_ttl: duplicate key (first set on line 4)',
      'line 6: data_dir: duplicate key (first set on line 2)',
    ]);
  });

  it('reports YAML syntax errors with their line', () => {
    const [line] = problems('trust_domain: example.org\n  data_dir: [unclosed\n');
    assert.match(line ?? '', /^line \d+: YAML syntax: /);
  });

  it('reports a document that is not a mapping', () => {
    assert.deepEqual(problems('- a\n- b\n'), ['the file must be a mapping of keys, not a list']);
  });

  it('reports a file with several YAML documents', () => {
    assert.deepEqual(problems(`${VALID}---\nca_ttl: 1h\n`), [
      'line 3: a configuration file holds one YAML document, this one has several (a second "---")',
    ]);
  });

  it('treats an empty file as an empty mapping, so only required keys are reported', () => {
    assert.deepEqual(problems(''), ['trust_domain: is required', 'data_dir: is required']);
  });

  it('refuses alias bombs', () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i <= 6; i++) lines.push(`a${i}: &a${i} [${new Array(10).fill(`*a${i - 1}`).join(', ')}]`);
    const [line] = problems(lines.join('\n'));
    assert.match(line ?? '', /^YAML: .*alias/i);
  });

  it('names the file in the error', () => {
    assert.throws(
      () => parseYamlConfig('ca_ttl: 1x\n', Schema, { file: '/etc/steeple/server.yaml' }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.file === '/etc/steeple/server.yaml' &&
        err.message.startsWith('invalid configuration /etc/steeple/server.yaml (3 problems):\n'),
    );
  });
});

describe('parseYamlConfig with flag overrides', () => {
  it('lets flags win over the file and checks their values with the same schema', () => {
    const config = parseYamlConfig(VALID, Schema, {
      overrides: [
        { key: 'trust_domain', flag: 'trustDomain', value: 'other.org' },
        { key: 'health_checks.bind_port', flag: 'healthPort', value: 8080 },
        { key: 'log_level', flag: 'logLevel', value: undefined },
      ],
    });
    assert.equal(config.trust_domain, 'other.org');
    assert.equal(config.health_checks.bind_port, 8080);
    assert.equal(config.log_level, 'info', 'a flag not given leaves the default');
  });

  it('names the flag, not a line of the file, when a flag value is bad', () => {
    assert.deepEqual(problems(VALID, { overrides: [{ key: 'ca_ttl', flag: 'caTTL', value: 'soon' }] }), [
      'ca_ttl (flag -caTTL): "soon" is not a duration such as "90s", "15m", "1h" or "30d"',
    ]);
  });
});

describe('parseYamlConfig with expandEnv', () => {
  const env = { DATA: '/srv/steeple', PORT: '9091', TD: 'example.org' };

  it('replaces ${NAME} in string values and types a whole-value reference', () => {
    const config = parseYamlConfig(
      'trust_domain: ${TD}\ndata_dir: ${DATA}/data\nbind_port: ${PORT}\nserver:\n  socket_path: cost$$5\n',
      Schema,
      { expandEnv: true, env },
    );
    assert.equal(config.trust_domain, 'example.org');
    assert.equal(config.data_dir, '/srv/steeple/data');
    assert.equal(config.bind_port, 9091);
    assert.equal(config.server.socket_path, 'cost$5');
  });

  it('leaves ${NAME} alone unless asked', () => {
    const config = parseYamlConfig('trust_domain: example.org\ndata_dir: ${DATA}\n', Schema);
    assert.equal(config.data_dir, '${DATA}');
  });

  it('reports an unset variable with its key and line', () => {
    assert.deepEqual(problems('trust_domain: example.org\ndata_dir: ${NOPE}/x\n', { expandEnv: true, env }), [
      'line 2: data_dir: environment variable NOPE is not set',
    ]);
  });
});

describe('loadYamlConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'steeple-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads and validates a file', () => {
    const file = join(dir, 'server.yaml');
    writeFileSync(file, VALID);
    assert.equal(loadYamlConfig(file, Schema).data_dir, '/var/lib/steeple');
  });

  it('says ERR_CONFIG_UNREADABLE when the file is missing', () => {
    const file = join(dir, 'missing.yaml');
    assert.throws(
      () => loadYamlConfig(file, Schema),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.code === 'ERR_CONFIG_UNREADABLE' &&
        err.message === `cannot read configuration ${file}:\n  file does not exist`,
    );
  });
});
