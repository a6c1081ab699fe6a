import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WorkloadApiError } from '../errors.js';
import {
  defaultWorkloadApiAddress,
  parseWorkloadApiAddress,
  resolveWorkloadApiAddress,
  SPIFFE_ENDPOINT_SOCKET,
} from './address.js';

describe('parseWorkloadApiAddress (E-4)', () => {
  const valid: [string, Record<string, unknown>][] = [
    ['unix:///tmp/agent.sock', { network: 'unix', path: '/tmp/agent.sock' }],
    ['unix:/tmp/agent.sock', { network: 'unix', path: '/tmp/agent.sock' }],
    ['UNIX:///run/spire/sockets/agent.sock', { network: 'unix', path: '/run/spire/sockets/agent.sock' }],
    ['unix:///tmp/my%20agent.sock', { network: 'unix', path: '/tmp/my agent.sock' }],
    ['tcp://127.0.0.1:8000', { network: 'tcp', host: '127.0.0.1', port: 8000 }],
    ['tcp://[::1]:8081', { network: 'tcp', host: '::1', port: 8081 }],
    ['tcp://[fe80::1%25eth0]:8081', { network: 'tcp', host: 'fe80::1%eth0', port: 8081 }],
    ['tcp://169.254.169.254:65535', { network: 'tcp', host: '169.254.169.254', port: 65535 }],
  ];
  for (const [input, expected] of valid) {
    it(`accepts ${input}`, () => {
      const addr = parseWorkloadApiAddress(input);
      for (const [k, v] of Object.entries(expected)) assert.equal((addr as Record<string, unknown>)[k], v, k);
      assert.equal(addr.uri, input);
    });
  }

  const invalid: [string, RegExp][] = [
    ['', /empty/],
    ['/tmp/agent.sock', /scheme must be "unix" or "tcp"/],
    ['blah', /scheme must be "unix" or "tcp"/],
    ['http://127.0.0.1:8000', /scheme must be "unix" or "tcp", not "http"/],
    ['unix://', /must include the absolute path/],
    ['unix:', /must include the absolute path/],
    ['unix:relative/agent.sock', /must be absolute/],
    ['unix://foo', /must not include an authority/],
    ['unix://host/tmp/agent.sock', /must not include an authority/],
    ['unix://john:doe@foo/path', /must not include an authority/],
    ['unix:///tmp/agent.sock?x=1', /must not include a query/],
    ['unix:///tmp/agent.sock?', /must not include a query/],
    ['unix:///tmp/agent.sock#frag', /must not include a fragment/],
    ['unix:///tmp/', /socket file, not a directory/],
    ['unix:///tmp/a%00b', /NUL/],
    ['unix:///tmp/a%zzb', /percent-escape/],
    ['unix:///tmp/a b.sock', /spaces, control or non-ASCII/],
    ['unix:///tmp/ä.sock', /spaces, control or non-ASCII/],
    ['\t', /spaces, control or non-ASCII/],
    ['tcp:opaque', /tcp:\/\/<IP>:<port>/],
    ['tcp://', /tcp:\/\/<IP>:<port>/],
    ['tcp://127.0.0.1:8000/foo', /must not include a path/],
    ['tcp://127.0.0.1:8000/', /must not include a path/],
    ['tcp://127.0.0.1:8000?x', /must not include a query/],
    ['tcp://127.0.0.1:8000#x', /must not include a fragment/],
    ['tcp://john:doe@127.0.0.1:8000', /must not include user info/],
    ['tcp://localhost:8000', /must be an IP address, not a name/],
    ['tcp://foo', /must be an IP address, not a name/],
    ['tcp://127.0.0.1', /must include a port/],
    ['tcp://127.0.0.1:', /must include a port/],
    ['tcp://127.0.0.1:0', /from 1 to 65535/],
    ['tcp://127.0.0.1:65536', /from 1 to 65535/],
    ['tcp://127.0.0.1:http', /from 1 to 65535/],
    ['tcp://127.000.0.1:80', /must be an IP address/],
    ['tcp://::1:8000', /IPv6 addresses in brackets/],
    ['tcp://[127.0.0.1]:8000', /must be an IPv6 address/],
  ];
  for (const [input, rule] of invalid) {
    it(`rejects ${JSON.stringify(input)} naming the value and the rule`, () => {
      assert.throws(
        () => parseWorkloadApiAddress(input),
        (err: unknown) => {
          assert.ok(err instanceof WorkloadApiError);
          assert.equal(err.code, 'ERR_WORKLOADAPI_ADDRESS');
          assert.match(err.message, rule);
          assert.ok(err.message.includes(JSON.stringify(input)), err.message);
          return true;
        },
      );
    });
  }
});

describe('SPIFFE_ENDPOINT_SOCKET fallback (E-4)', () => {
  it('an explicit address wins over the environment', () => {
    const env = { [SPIFFE_ENDPOINT_SOCKET]: 'unix:///from/env.sock' };
    assert.equal(resolveWorkloadApiAddress('unix:///explicit.sock', env).uri, 'unix:///explicit.sock');
  });

  it('falls back to the environment variable', () => {
    const env = { [SPIFFE_ENDPOINT_SOCKET]: 'unix:///from/env.sock' };
    assert.equal(defaultWorkloadApiAddress(env), 'unix:///from/env.sock');
    const addr = resolveWorkloadApiAddress(undefined, env);
    assert.equal(addr.network === 'unix' && addr.path, '/from/env.sock');
  });

  it('neither set (or empty) is an ERR_WORKLOADAPI_ADDRESS naming the variable', () => {
    for (const env of [{}, { [SPIFFE_ENDPOINT_SOCKET]: '' }]) {
      assert.throws(() => resolveWorkloadApiAddress(undefined, env), {
        code: 'ERR_WORKLOADAPI_ADDRESS',
        message: /SPIFFE_ENDPOINT_SOCKET/,
      });
    }
  });

  it('an invalid environment value is rejected like an explicit one', () => {
    assert.throws(() => resolveWorkloadApiAddress(undefined, { [SPIFFE_ENDPOINT_SOCKET]: 'tcp://localhost:1' }), {
      code: 'ERR_WORKLOADAPI_ADDRESS',
    });
  });
});
