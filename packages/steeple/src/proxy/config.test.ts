import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadProxyConfig } from './config.js';

function load(yaml: string) {
  const dir = mkdtempSync(join(tmpdir(), 'proxy-config-'));
  const file = join(dir, 'proxy.yaml');
  writeFileSync(file, yaml);
  return { dir, load: () => loadProxyConfig(file) };
}

describe('proxy configuration', () => {
  it('fills defaults and resolves relative paths against the file', () => {
    const { dir, load: l } = load(`
identity: { files: { cert: svid.pem, key: svid.key, bundle: bundle.pem } }
inbound: [{ name: web, listen: ":15006", target: "127.0.0.1:8080" }]
policy: { file: policy.yaml }
`);
    const c = l();
    assert.equal(c.identity.files?.cert, join(dir, 'svid.pem'));
    assert.equal(c.policy.file, join(dir, 'policy.yaml'));
    const web = c.inbound[0];
    assert.equal(web?.mode, 'STRICT');
    assert.equal(web?.protocol, 'tcp');
    assert.deepEqual([web?.listen.host, web?.listen.port], ['0.0.0.0', 15006]);
    assert.equal(web?.handshake_timeout, 10);
    assert.equal(c.audit.output, 'stdout');
  });

  it('names each broken field', () => {
    const { load: l } = load(`
identity: { files: { cert: a, key: b, bundle: c } }
inbound:
  - { name: web, listen: "localhost", target: "127.0.0.1:99999", mode: strict, protcol: http }
outbound:
  - { name: web, listen: "127.0.0.1:1", upstream: "b:1" }
audit: { output: file }
`);
    assert.throws(l, (err: Error) => {
      assert.match(
        err.message,
        /inbound\[0\]\.listen: "localhost" is not a valid listen address: expected "host:port"/,
      );
      assert.match(err.message, /inbound\[0\]\.target: .*port 99999 is outside 1-65535/);
      assert.match(err.message, /inbound\[0\]\.mode: "strict" is not one of "STRICT", "PERMISSIVE", "DISABLE"/);
      assert.match(err.message, /inbound\[0\]\.protcol: unknown key \(did you mean "protocol"\?\)/);
      assert.match(err.message, /outbound\[0\]\.upstream_id: set "upstream_id" .* or "upstream_trust_domain"/);
      assert.match(err.message, /audit\.path: is required when output is "file"/);
      return true;
    });
  });

  it('refuses two listeners with one name', () => {
    const { load: l } = load(`
identity: { workload_api: { socket_path: /tmp/agent.sock } }
inbound: [{ name: a, listen: ":1", target: "x:2" }]
outbound: [{ name: a, listen: ":3", upstream: "y:4", upstream_trust_domain: example.org }]
`);
    assert.throws(l, /outbound\[0\]\.name: listener name "a" is already used by inbound\.0/);
  });
});
