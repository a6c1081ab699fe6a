// The policy schema and evaluator live in @steeple/spiffe/policy (tested there with plain
// objects); this file checks what the proxy adds: YAML, line numbers, ConfigError, reload.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PolicyFileSchema } from '@steeple/spiffe/policy';
import { parseYamlConfig } from '../../common/config/load-yaml.js';
import { ConfigError } from '../../common/errors.js';
import { createLogger } from '../../common/logger.js';
import { loadPolicyFile, PolicyStore } from './policy-store.js';

describe('policy file validation', () => {
  const problems = (yaml: string) => {
    try {
      parseYamlConfig(yaml, PolicyFileSchema, { file: 'policy.yaml' });
      return '';
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.message;
    }
  };

  it('names the field, with a did-you-mean for typos', () => {
    const msg = problems('policies:\n  - name: p\n    rules:\n      - from: [{ source: { principal: [x] } }]\n');
    assert.match(
      msg,
      /line 4: policies\[0\]\.rules\[0\]\.from\[0\]\.source\.principal: unknown key \(did you mean "principals"\?\)/,
    );
  });

  it('refuses bad values: action, principal pattern, CIDR, path, method, condition key', () => {
    const msg = problems(`policies:
  - name: p
    action: PERMIT
    rules:
      - from: [{ source: { principals: ["spiffe://example.org/a*b"], ipBlocks: ["10.0.0.0/33"] } }]
        to: [{ operation: { paths: ["admin"], methods: [get] } }]
        when: [{ key: "request.auth.claims[iss]", values: [x] }]
`);
    assert.match(msg, /policies\[0\]\.action: "PERMIT" is not one of "ALLOW", "DENY", "AUDIT"/);
    assert.match(
      msg,
      /principals\[0\]: "spiffe:\/\/example.org\/a\*b": a "\*" may stand only at the start or at the end/,
    );
    assert.match(msg, /ipBlocks\[0\]: "10.0.0.0\/33": prefix "\/33" is out of range for IPv4/);
    assert.match(msg, /paths\[0\]: "admin": a path starts with "\/"/);
    assert.match(msg, /methods\[0\]: must be an upper-case HTTP method/);
    assert.match(msg, /when\[0\]\.key: "request.auth.claims\[iss\]" is not a supported condition key/);
  });

  it('refuses a policy name used twice and an invalid SPIFFE ID', () => {
    const msg = problems(
      'policies:\n  - { name: a }\n  - { name: a, rules: [{ from: [{ source: { principals: ["spiffe://Example.org/x"] } }] }] }\n',
    );
    assert.match(msg, /policies\[1\]\.name: policy "a" is defined twice/);
    assert.match(msg, /principals\[0\]: "spiffe:\/\/Example.org\/x"/);
  });
});

describe('PolicyStore', () => {
  const dir = mkdtempSync(join(tmpdir(), 'steeple-policy-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const attrs = {
    kind: 'http',
    listener: 'web',
    sourceIp: '10.1.2.3',
    destinationIp: '10.0.0.1',
    destinationPort: 8080,
    method: 'GET',
    path: '/',
  } as const;

  it('loads YAML into the SDK evaluator and keeps the last good policy when a reload is rejected', () => {
    const file = join(dir, 'policy.yaml');
    writeFileSync(
      file,
      'policies:\n  - name: web\n    rules: [{ from: [{ source: { principals: ["spiffe://example.org/web"] } }] }]\n',
    );
    assert.equal(loadPolicyFile(file).policies[0]?.name, 'web');
    const store = PolicyStore.open({
      file,
      pollIntervalMs: 60_000,
      logger: createLogger({ name: 'test', level: 'silent' }),
    });
    try {
      assert.equal(store.current.evaluate({ ...attrs, principal: 'spiffe://example.org/web' }).allowed, true);
      assert.equal(store.current.evaluate({ ...attrs, principal: 'spiffe://example.org/db' }).allowed, false);
      writeFileSync(file, 'policies:\n  - name: web\n    action: PERMIT\n');
      assert.equal(store.reload(), false);
      assert.equal(store.current.evaluate({ ...attrs, principal: 'spiffe://example.org/web' }).allowed, true);
      writeFileSync(file, 'policies: []\n');
      assert.equal(store.reload(), true);
      assert.equal(store.current.evaluate({ ...attrs, principal: 'spiffe://example.org/db' }).allowed, true);
    } finally {
      store.close();
    }
  });
});
