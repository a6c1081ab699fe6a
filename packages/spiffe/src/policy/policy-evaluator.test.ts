import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PolicyError } from '../errors.js';
import type { RequestAttributes } from './attributes.js';
import { parsePolicyFile } from './parse-policy.js';
import { PolicyEvaluator } from './policy-evaluator.js';

const evaluator = (...policies: unknown[]) => PolicyEvaluator.fromObject({ policies });

const FRONTEND = 'spiffe://example.org/ns/shop/sa/frontend';

function http(overrides: Partial<RequestAttributes> = {}): RequestAttributes {
  const headers: Record<string, string> = { 'x-env': 'prod' };
  return {
    kind: 'http',
    listener: 'web',
    principal: FRONTEND,
    sourceIp: '10.1.2.3',
    destinationIp: '10.0.0.1',
    destinationPort: 8080,
    method: 'GET',
    path: '/orders/7',
    host: 'shop.example.org:8080',
    header: (name) => headers[name],
    ...overrides,
  };
}

function tcp(overrides: Partial<RequestAttributes> = {}): RequestAttributes {
  return {
    kind: 'tcp',
    listener: 'db',
    principal: FRONTEND,
    sourceIp: '10.1.2.3',
    destinationIp: '10.0.0.1',
    destinationPort: 5432,
    ...overrides,
  };
}

describe('PolicyEvaluator (Istio AuthorizationPolicy semantics)', () => {
  it('allows everything when no ALLOW policy applies', () => {
    const d = PolicyEvaluator.allowAll().evaluate(http());
    assert.equal(d.allowed, true);
    assert.equal(d.policy, undefined);
  });

  it('when any ALLOW policy exists, a request must match one', () => {
    const e = evaluator({
      name: 'frontend',
      action: 'ALLOW',
      rules: [{ from: [{ source: { principals: [FRONTEND] } }] }],
    });
    assert.deepEqual(
      [e.evaluate(http()).allowed, e.evaluate(http({ principal: 'spiffe://example.org/other' })).allowed],
      [true, false],
    );
    assert.equal(e.evaluate(http()).policy, 'frontend');
    assert.equal(e.evaluate(http({ principal: undefined })).reason, 'denied: no ALLOW policy matched');
  });

  it('DENY is evaluated before ALLOW', () => {
    const e = evaluator(
      { name: 'all', action: 'ALLOW', rules: [{}] },
      { name: 'no-admin', action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] },
    );
    const d = e.evaluate(http({ path: '/admin/users' }));
    assert.equal(d.allowed, false);
    assert.equal(d.policy, 'no-admin');
    assert.equal(d.rule, 0);
    assert.equal(d.reason, 'denied by policy no-admin');
    assert.equal(e.evaluate(http()).allowed, true);
  });

  it('an ALLOW policy with an empty rule list allows nothing; `rules: [{}]` allows everything', () => {
    assert.equal(evaluator({ name: 'none', action: 'ALLOW' }).evaluate(http()).allowed, false);
    assert.equal(evaluator({ name: 'none', action: 'ALLOW', rules: [] }).evaluate(http()).allowed, false);
    assert.equal(evaluator({ name: 'all', action: 'ALLOW', rules: [{}] }).evaluate(http()).allowed, true);
    assert.equal(evaluator({ name: 'none', action: 'DENY' }).evaluate(http()).allowed, true);
  });

  it('principals: exact, prefix*, *suffix, "*" (any authenticated), Istio form without the scheme', () => {
    const allows = (pattern: string, principal: string | undefined) =>
      evaluator({ name: 'p', rules: [{ from: [{ source: { principals: [pattern] } }] }] }).evaluate(http({ principal }))
        .allowed;
    assert.equal(allows(FRONTEND, FRONTEND), true);
    assert.equal(allows('spiffe://example.org/ns/shop/*', FRONTEND), true);
    assert.equal(allows('spiffe://example.org/ns/bank/*', FRONTEND), false);
    assert.equal(allows('*/sa/frontend', FRONTEND), true);
    assert.equal(allows('*/sa/backend', FRONTEND), false);
    assert.equal(allows('example.org/ns/shop/sa/frontend', FRONTEND), true);
    assert.equal(allows('*', FRONTEND), true);
    assert.equal(allows('*', undefined), false, '"*" requires an authenticated caller');
  });

  it('notPrincipals ["*"] matches exactly the unauthenticated callers', () => {
    const e = evaluator({
      name: 'no-plaintext',
      action: 'DENY',
      rules: [{ from: [{ source: { notPrincipals: ['*'] } }] }],
    });
    assert.equal(e.evaluate(http({ principal: undefined })).allowed, false);
    assert.equal(e.evaluate(http()).allowed, true);
  });

  it('trustDomains, notTrustDomains and namespaces', () => {
    const e = evaluator({
      name: 'partners',
      rules: [
        { from: [{ source: { trustDomains: ['partner.org'] } }] },
        { from: [{ source: { namespaces: ['shop'], notTrustDomains: ['partner.org'] } }] },
      ],
    });
    assert.equal(e.evaluate(http({ principal: 'spiffe://partner.org/x' })).rule, 0);
    assert.equal(e.evaluate(http()).rule, 1);
    assert.equal(e.evaluate(http({ principal: 'spiffe://example.org/ns/bank/sa/x' })).allowed, false);
    assert.equal(e.evaluate(http({ principal: 'spiffe://example.org/shop' })).allowed, false, 'no /ns/ segment');
  });

  it('ipBlocks and notIpBlocks, with IPv4-mapped IPv6 addresses', () => {
    const e = evaluator({
      name: 'internal',
      rules: [{ from: [{ source: { ipBlocks: ['10.0.0.0/8', '2001:db8::/32'], notIpBlocks: ['10.9.0.0/16'] } }] }],
    });
    assert.equal(e.evaluate(http()).allowed, true);
    assert.equal(e.evaluate(http({ sourceIp: '::ffff:10.1.2.3' })).allowed, true);
    assert.equal(e.evaluate(http({ sourceIp: '2001:db8::7' })).allowed, true);
    assert.equal(e.evaluate(http({ sourceIp: '10.9.1.1' })).allowed, false);
    assert.equal(e.evaluate(http({ sourceIp: '192.0.2.1' })).allowed, false);
  });

  it('operations: methods, paths (exact, prefix, suffix), notPaths, ports, hosts with or without port', () => {
    const e = evaluator({
      name: 'reads',
      rules: [
        {
          to: [
            {
              operation: {
                methods: ['GET', 'HEAD'],
                paths: ['/orders/*', '*.css', '/health'],
                notPaths: ['/orders/secret'],
                ports: ['8080'],
                hosts: ['shop.example.org'],
              },
            },
          ],
        },
      ],
    });
    assert.equal(e.evaluate(http()).allowed, true);
    assert.equal(e.evaluate(http({ method: 'POST' })).allowed, false);
    assert.equal(e.evaluate(http({ path: '/site.css' })).allowed, true);
    assert.equal(e.evaluate(http({ path: '/health' })).allowed, true);
    assert.equal(e.evaluate(http({ path: '/healthz' })).allowed, false);
    assert.equal(e.evaluate(http({ path: '/orders/secret' })).allowed, false);
    assert.equal(e.evaluate(http({ destinationPort: 9090 })).allowed, false);
    assert.equal(e.evaluate(http({ host: 'SHOP.example.org' })).allowed, true, 'hosts are case-insensitive');
    assert.equal(e.evaluate(http({ host: 'evil.example.org' })).allowed, false);
  });

  it('when: request headers (with prefix match and notValues), source.ip, destination.port', () => {
    const e = evaluator({
      name: 'prod',
      rules: [
        {
          when: [
            { key: 'request.headers[X-Env]', values: ['pro*'] },
            { key: 'source.ip', notValues: ['10.9.0.0/16'] },
            { key: 'destination.port', values: ['8080'] },
          ],
        },
      ],
    });
    assert.equal(e.evaluate(http()).allowed, true);
    assert.equal(e.evaluate(http({ header: () => 'staging' })).allowed, false);
    assert.equal(e.evaluate(http({ header: () => undefined })).allowed, false);
    assert.equal(e.evaluate(http({ sourceIp: '10.9.0.1' })).allowed, false);
  });

  it('on TCP, an ALLOW rule with HTTP-only fields matches nothing, a DENY rule drops them', () => {
    const allow = evaluator({ name: 'a', rules: [{ to: [{ operation: { methods: ['GET'] } }] }] });
    assert.equal(allow.evaluate(tcp()).allowed, false);
    const deny = evaluator({
      name: 'd',
      action: 'DENY',
      rules: [{ from: [{ source: { principals: [FRONTEND] } }], to: [{ operation: { paths: ['/x'] } }] }],
    });
    assert.equal(deny.evaluate(tcp()).allowed, false, 'the DENY applies to the whole connection');
    assert.equal(deny.evaluate(tcp({ principal: 'spiffe://example.org/other' })).allowed, true);
  });

  it('listeners select the inbound listeners a policy applies to', () => {
    const e = evaluator({ name: 'web-only', listeners: ['web'], rules: [] });
    assert.equal(e.evaluate(http()).allowed, false);
    assert.equal(e.evaluate(tcp({ listener: 'db' })).allowed, true);
  });

  it('AUDIT marks matching requests without changing the decision', () => {
    const e = evaluator({
      name: 'watch-writes',
      action: 'AUDIT',
      rules: [{ to: [{ operation: { methods: ['POST'] } }] }],
    });
    const d = e.evaluate(http({ method: 'POST' }));
    assert.equal(d.allowed, true);
    assert.deepEqual(d.audit, { policy: 'watch-writes', rule: 0 });
    assert.equal(e.evaluate(http()).audit, undefined);
  });

  it('dry-run policies report their would-be decision without enforcing it', () => {
    const e = evaluator({
      name: 'lockdown',
      action: 'DENY',
      dryRun: true,
      rules: [{ to: [{ operation: { paths: ['/orders/*'] } }] }],
    });
    const d = e.evaluate(http());
    assert.equal(d.allowed, true);
    assert.deepEqual(d.dryRun, { allowed: false, reason: 'denied by policy lockdown', policy: 'lockdown', rule: 0 });
    assert.equal(e.evaluate(http({ path: '/other' })).dryRun?.allowed, true);
  });
});

describe('PolicyEvaluator.connectionScoped', () => {
  const byPrincipal = { name: 'frontend', rules: [{ from: [{ source: { principals: [FRONTEND] } }] }] };
  it('is true when no applicable rule looks at the request (principals, IPs, ports, SNI, connection conditions)', () => {
    assert.equal(PolicyEvaluator.allowAll().connectionScoped('web'), true);
    const e = evaluator(
      byPrincipal,
      { name: 'no-foreigners', action: 'DENY', rules: [{ from: [{ source: { notTrustDomains: ['example.org'] } }] }] },
      { name: 'ports', rules: [{ to: [{ operation: { ports: ['8080'] } }] }] },
      { name: 'cond', action: 'AUDIT', rules: [{ when: [{ key: 'source.ip', values: ['10.0.0.0/8'] }] }] },
    );
    assert.equal(e.connectionScoped('web'), true);
  });

  it('is false when any applicable rule — enforced, dry-run or AUDIT — looks at methods, paths, hosts or headers', () => {
    const cases = [
      { name: 'p', action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] },
      { name: 'm', rules: [{ to: [{ operation: { methods: ['GET'] } }] }] },
      { name: 'h', rules: [{ to: [{ operation: { notHosts: ['a'] } }] }] },
      { name: 'w', rules: [{ when: [{ key: 'request.headers[x-env]', values: ['prod'] }] }] },
      { name: 'a', action: 'AUDIT', rules: [{ to: [{ operation: { methods: ['POST'] } }] }] },
      { name: 'd', action: 'DENY', dryRun: true, rules: [{ to: [{ operation: { paths: ['/x'] } }] }] },
    ];
    for (const c of cases) assert.equal(evaluator(byPrincipal, c).connectionScoped('web'), false, c.name);
  });

  it('looks only at the policies that apply to the listener', () => {
    const e = evaluator(byPrincipal, {
      name: 'api-paths',
      listeners: ['api'],
      rules: [{ to: [{ operation: { paths: ['/v1/*'] } }] }],
    });
    assert.equal(e.connectionScoped('web'), true);
    assert.equal(e.connectionScoped('api'), false);
  });
});

describe('parsePolicyFile (a plain object, errors by key path)', () => {
  const problems = (raw: unknown): PolicyError => {
    try {
      parsePolicyFile(raw);
    } catch (err) {
      assert.ok(err instanceof PolicyError);
      assert.equal(err.code, 'ERR_POLICY_INVALID');
      return err;
    }
    assert.fail('expected a PolicyError');
  };

  it('names the field, with a did-you-mean for typos', () => {
    const err = problems({ policies: [{ name: 'p', rules: [{ from: [{ source: { principal: ['x'] } }] }] }] });
    assert.deepEqual(err.issues, [
      { path: 'policies[0].rules[0].from[0].source.principal', message: 'unknown key (did you mean "principals"?)' },
    ]);
    assert.match(err.message, /^invalid authorization policy \(1 problem\):\n {2}policies\[0\]\.rules/);
  });

  it('refuses bad values: action, principal pattern, CIDR, path, method, condition key', () => {
    const { message } = problems({
      policies: [
        {
          name: 'p',
          action: 'PERMIT',
          rules: [
            {
              from: [{ source: { principals: ['spiffe://example.org/a*b'], ipBlocks: ['10.0.0.0/33'] } }],
              to: [{ operation: { paths: ['admin'], methods: ['get'] } }],
              when: [{ key: 'request.auth.claims[iss]', values: ['x'] }],
            },
          ],
        },
      ],
    });
    assert.match(message, /policies\[0\]\.action: "PERMIT" is not one of "ALLOW", "DENY", "AUDIT"/);
    assert.match(
      message,
      /principals\[0\]: "spiffe:\/\/example.org\/a\*b": a "\*" may stand only at the start or at the end/,
    );
    assert.match(message, /ipBlocks\[0\]: "10.0.0.0\/33": prefix "\/33" is out of range for IPv4/);
    assert.match(message, /paths\[0\]: "admin": a path starts with "\/"/);
    assert.match(message, /methods\[0\]: must be an upper-case HTTP method/);
    assert.match(message, /when\[0\]\.key: "request.auth.claims\[iss\]" is not a supported condition key/);
  });

  it('refuses a policy name used twice, an invalid SPIFFE ID, wrong types and empty lists', () => {
    const twice = problems({ policies: [{ name: 'a' }, { name: 'a' }] });
    assert.deepEqual(twice.issues, [{ path: 'policies[1].name', message: 'policy "a" is defined twice' }]);
    const { message } = problems({
      policies: [
        { name: 'a', rules: [{ from: [{ source: { principals: ['spiffe://Example.org/x'] } }] }] },
        { name: 'b', dryRun: 'yes', rules: [{ to: [{ operation: { ports: [70000], hosts: [] } }] }] },
      ],
    });
    assert.match(message, /principals\[0\]: "spiffe:\/\/Example.org\/x"/);
    assert.match(message, /policies\[1\]\.dryRun: expected true or false, got a string/);
    assert.match(message, /ports\[0\]: 70000 is not a port number/);
    assert.match(message, /hosts: must not be empty/);
  });

  it('refuses a document that is not a mapping, and a policy without a name', () => {
    assert.match(problems([]).message, /the document must be a mapping of keys, not a list/);
    assert.match(problems({ policies: [{}] }).message, /policies\[0\]\.name: is required/);
  });

  it('fills the defaults: action ALLOW, dryRun false, rules []', () => {
    assert.deepEqual(parsePolicyFile({ policies: [{ name: 'x' }] }), {
      policies: [{ name: 'x', action: 'ALLOW', dryRun: false, rules: [] }],
    });
    assert.deepEqual(parsePolicyFile({}), { policies: [] });
  });
});

describe('PolicyEvaluator.requestLineScoped', () => {
  const byPrincipal = { name: 'frontend', rules: [{ from: [{ source: { principals: [FRONTEND] } }] }] };
  it('is true when no applicable rule looks at request headers (methods, paths and hosts are fine)', () => {
    assert.equal(PolicyEvaluator.allowAll().requestLineScoped('web'), true);
    const e = evaluator(
      byPrincipal,
      { name: 'p', action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'], methods: ['POST'] } }] }] },
      { name: 'h', rules: [{ to: [{ operation: { notHosts: ['a'] } }] }] },
      { name: 'c', action: 'AUDIT', rules: [{ when: [{ key: 'source.ip', values: ['10.0.0.0/8'] }] }] },
    );
    assert.equal(e.requestLineScoped('web'), true);
  });

  it('is false when any applicable rule — enforced, dry-run or AUDIT — has a condition on a request header', () => {
    const header = [{ key: 'request.headers[x-env]', values: ['prod'] }];
    const cases = [
      { name: 'w', rules: [{ when: header }] },
      { name: 'a', action: 'AUDIT', rules: [{ when: header }] },
      { name: 'd', action: 'DENY', dryRun: true, rules: [{ when: header }] },
    ];
    for (const c of cases) assert.equal(evaluator(byPrincipal, c).requestLineScoped('web'), false, c.name);
    const scoped = evaluator(byPrincipal, { name: 'api', listeners: ['api'], rules: [{ when: header }] });
    assert.equal(scoped.requestLineScoped('web'), true);
    assert.equal(scoped.requestLineScoped('api'), false);
  });
});
