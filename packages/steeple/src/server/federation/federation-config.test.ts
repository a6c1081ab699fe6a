import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as z from 'zod/mini';
import { parseYamlConfig } from '../../common/config/load-yaml.js';
import { ConfigError } from '../../common/errors.js';
import { federationConfigIssues, federationConfigSchema } from './federation-config.js';
import { staticRelationshipsFrom } from './federation-manager.js';

const schema = z.strictObject({ federation: z.optional(federationConfigSchema) });
const parse = (yaml: string) => parseYamlConfig(yaml, schema).federation;

function problems(yaml: string): string {
  try {
    parse(yaml);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.message;
  }
  assert.fail('expected a ConfigError');
}

describe('federation config', () => {
  it('reads SPIRE-style bundle_endpoint and federates_with, with defaults', () => {
    const f = parse(`
federation:
  bundle_endpoint:
    port: 8443
  federates_with:
    "spiffe://cluster-b.test":
      bundle_endpoint_url: https://cluster-b.example:8443
      bundle_endpoint_profile:
        https_spiffe:
          endpoint_spiffe_id: spiffe://cluster-b.test/spire/server
    web.test:
      bundle_endpoint_url: https://bundles.web.example/bundle.json
      bundle_endpoint_profile: { https_web: {} }
`);
    assert.ok(f);
    assert.deepEqual(f.bundle_endpoint, {
      address: '0.0.0.0',
      port: 8443,
      refresh_hint: 300,
      profile: { type: 'https_spiffe' },
    });
    assert.deepEqual(
      Object.keys(f.federates_with),
      ['cluster-b.test', 'web.test'],
      'a SPIFFE ID key is kept as its name',
    );
    const specs = staticRelationshipsFrom(f);
    assert.equal(specs[0]?.profile, 'https_spiffe');
    assert.equal(specs[0]?.endpointSpiffeId?.toString(), 'spiffe://cluster-b.test/spire/server');
    assert.equal(specs[0]?.source, 'config');
    assert.equal(specs[1]?.profile, 'https_web');
    assert.equal(specs[1]?.endpointSpiffeId, undefined);
  });

  it('reads the https_web serving profile and the refresh hint', () => {
    const f = parse(`
federation:
  bundle_endpoint:
    address: 127.0.0.1
    port: 0
    path: /bundle.json
    refresh_hint: 1m
    profile:
      https_web:
        serving_cert_file: { cert_file_path: /etc/web.crt, key_file_path: /etc/web.key }
`);
    assert.deepEqual(f?.bundle_endpoint?.profile, {
      type: 'https_web',
      cert_file_path: '/etc/web.crt',
      key_file_path: '/etc/web.key',
      file_sync_interval: 60,
    });
    assert.equal(f?.bundle_endpoint?.refresh_hint, 60);
    assert.deepEqual(f?.federates_with, {});
  });

  it('refuses an endpoint URL that is not https or has user information (F-3)', () => {
    const yaml = (url: string) => `
federation:
  federates_with:
    b.test: { bundle_endpoint_url: "${url}", bundle_endpoint_profile: { https_web: {} } }
`;
    assert.match(problems(yaml('http://b.example/x')), /bundle_endpoint_url: .*must use the https scheme \(F-3\)/);
    assert.match(problems(yaml('https://u:p@b.example/x')), /must not contain user information/);
  });

  it('asks for exactly one profile and an endpoint SPIFFE ID for https_spiffe (F-1)', () => {
    assert.match(
      problems(`
federation:
  federates_with:
    b.test: { bundle_endpoint_url: "https://b", bundle_endpoint_profile: {} }
`),
      /bundle_endpoint_profile: choose a profile: https_spiffe or https_web/,
    );
    assert.match(
      problems(`
federation:
  federates_with:
    b.test:
      bundle_endpoint_url: "https://b"
      bundle_endpoint_profile: { https_web: {}, https_spiffe: { endpoint_spiffe_id: "spiffe://b.test/s" } }
`),
      /choose one profile, not https_spiffe and https_web/,
    );
    assert.match(
      problems(`
federation:
  federates_with:
    b.test: { bundle_endpoint_url: "https://b", bundle_endpoint_profile: { https_spiffe: {} } }
`),
      /endpoint_spiffe_id/,
    );
    assert.match(
      problems(`
federation:
  federates_with:
    b.test: { bundle_endpoint_url: "https://b", bundle_endpoint_profile: { https_spiffe: { endpoint_spiffe_id: "b.test/x" } } }
`),
      /is not a SPIFFE ID/,
    );
  });

  it('refuses a key that is not a trust domain name, and typos', () => {
    assert.match(
      problems(`
federation:
  federates_with:
    "Bad Name": { bundle_endpoint_url: "https://b", bundle_endpoint_profile: { https_web: {} } }
`),
      /"Bad Name" is not a trust domain name/,
    );
    assert.match(problems('federation: { bundle_endpoint: { refresh_hnt: 5m } }'), /refresh_hnt/);
  });

  it('reports federating with the own trust domain', () => {
    const f = parse(`
federation:
  federates_with:
    a.test: { bundle_endpoint_url: "https://a", bundle_endpoint_profile: { https_web: {} } }
`);
    assert.deepEqual(federationConfigIssues(f, 'a.test'), [
      {
        path: ['federates_with', 'a.test'],
        message: '"a.test" is this server\'s own trust domain; federate with other trust domains only',
      },
    ]);
    assert.deepEqual(federationConfigIssues(f, 'b.test'), []);
    assert.deepEqual(federationConfigIssues(undefined, 'b.test'), []);
  });
});
