import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TrustDomain } from '@steeple/spiffe';
import { createTestCa, ManualClock } from '@steeple/spiffe/testing';
import * as z from 'zod/mini';
import { parseYamlConfig } from '../../common/config/load-yaml.js';
import { ConfigError } from '../../common/errors.js';
import { createNodeAttestors } from './node-attestor-catalog.js';
import { nodeAttestorsSchema } from './node-attestors-config.js';

const joinTokens = { consume: async () => undefined };
/** The section embedded in a config schema, as the server config does. */
const serverConfigSchema = z.strictObject({ node_attestors: nodeAttestorsSchema });

/** Asserts a ConfigError listing exactly one issue at `path` whose message matches. */
function configProblem(fn: () => unknown, path: string, message: RegExp) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.code, 'ERR_CONFIG_INVALID');
    assert.deepEqual(
      err.issues.map((i) => i.path),
      [path],
    );
    assert.match(err.issues[0]?.message ?? '', message);
    return true;
  });
}

describe('createNodeAttestors', () => {
  it('enables join_token alone when node_attestors is absent', () => {
    const catalog = createNodeAttestors(undefined, { joinTokens });
    assert.deepEqual([...catalog.keys()], ['join_token']);
  });

  it('enables a plugin named with an empty YAML value', () => {
    const config = parseYamlConfig('node_attestors:\n  join_token:\n', serverConfigSchema);
    const catalog = createNodeAttestors(config.node_attestors, { joinTokens });
    assert.deepEqual([...catalog.keys()], ['join_token']);
  });

  it('refuses an unknown plugin name, naming the key (with a did-you-mean)', () => {
    configProblem(
      () => createNodeAttestors({ join_tokn: {} }, { joinTokens }),
      'node_attestors.join_tokn',
      /did you mean "join_token"/,
    );
    configProblem(
      () => createNodeAttestors({ tpm_devid: {} }, { joinTokens }),
      'node_attestors.tpm_devid',
      /unknown key/,
    );
  });

  it('refuses an empty section, unknown plugin settings, and x509pop without a CA bundle', () => {
    configProblem(() => createNodeAttestors({}, { joinTokens }), 'node_attestors', /enable at least one node attestor/);
    configProblem(
      () => createNodeAttestors({ join_token: { ttl: '1h' } }, { joinTokens }),
      'node_attestors.join_token.ttl',
      /unknown key/,
    );
    configProblem(() => createNodeAttestors({ x509pop: {} }), 'node_attestors.x509pop.ca_bundle_path', /is required/);
  });

  it('refuses an agent_path_template with an unknown value or stray braces', () => {
    configProblem(
      () => createNodeAttestors({ x509pop: { ca_bundle_path: '/x', agent_path_template: '{{ .Subject.Country }}' } }),
      'node_attestors.x509pop.agent_path_template',
      /uses \.Subject\.Country; allowed: \.PluginName, \.Fingerprint/,
    );
    configProblem(
      () => createNodeAttestors({ x509pop: { ca_bundle_path: '/x', agent_path_template: 'x509pop/{{ .Fingerprint' } }),
      'node_attestors.x509pop.agent_path_template',
      /not a placeholder/,
    );
    configProblem(
      () => createNodeAttestors({ x509pop: { ca_bundle_path: '/x', agent_path_template: 'all-the-same' } }),
      'node_attestors.x509pop.agent_path_template',
      /must use at least one value/,
    );
  });

  it('reads the CA bundle at start: a missing file or one without certificates is an error naming the key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'steeple-x509pop-'));
    try {
      const missing = join(dir, 'missing.pem');
      configProblem(
        () => createNodeAttestors({ x509pop: { ca_bundle_path: missing } }),
        'node_attestors.x509pop.ca_bundle_path',
        /cannot read ".*missing\.pem" \(ENOENT\)/,
      );
      const empty = join(dir, 'empty.pem');
      writeFileSync(empty, 'not a certificate\n');
      configProblem(
        () => createNodeAttestors({ x509pop: { ca_bundle_paths: [empty] } }),
        'node_attestors.x509pop.ca_bundle_paths[0]',
        /holds no PEM CERTIFICATE block/,
      );
      const broken = join(dir, 'broken.pem');
      writeFileSync(broken, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
      configProblem(
        () => createNodeAttestors({ x509pop: { ca_bundle_path: broken } }),
        'node_attestors.x509pop.ca_bundle_path',
        /PEM block #0 is not a valid X\.509 certificate/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('builds a working x509pop attestor from a PEM bundle on disk', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'steeple-x509pop-'));
    try {
      const clock = new ManualClock(new Date('2030-01-01T00:00:00Z'));
      const ca = createTestCa({ trustDomain: 'nodes.corp', clock });
      const bundle = join(dir, 'agent-ca.pem');
      writeFileSync(bundle, ca.certificate.toString());
      const catalog = createNodeAttestors({ join_token: null, x509pop: { ca_bundle_path: bundle } }, { joinTokens });
      assert.deepEqual([...catalog.keys()].sort(), ['join_token', 'x509pop']);
      // A stranger's certificate is refused: the bundle was read and is in force.
      const stranger = createTestCa({ trustDomain: 'nodes.corp', clock }).issueX509SvidRaw('spiffe://nodes.corp/n');
      await assert.rejects(
        catalog.get('x509pop')?.attest(stranger.certificates[0]?.raw as Uint8Array, async () => new Uint8Array(), {
          trustDomain: TrustDomain.parse('example.org'),
          now: clock.now(),
        }) as Promise<unknown>,
        { code: 'ERR_ATTESTATION_FAILED', reason: /does not lead to a CA in ca_bundle_path/ },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
