// The `steeple server …` admin commands, run in-process against a real admin server on a temp
// socket (the spawned, real-process runs are in server-admin-e2e.test.ts).
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SpiffeBundle, verifyX509Svid, X509Bundle, X509Svid } from '@steeple/spiffe';
import { createTestCa } from '@steeple/spiffe/testing';
import { type AdminFixture, startAdminFixture } from '../server/api/admin/testing/admin-fixture.js';
import { runCli } from './main.js';

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI in this process, capturing what it writes. */
async function cli(...args: string[]): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(args, { out: (text) => out.push(text), err: (text) => err.push(text) });
  return { code, stdout: out.join(''), stderr: err.join('') };
}

function ok(run: Run): Run {
  assert.equal(run.code, 0, `exit code; stderr: ${run.stderr}`);
  assert.equal(run.stderr, '');
  return run;
}

/** Exit code 1 and exactly one line on stderr. */
function failed(run: Run, message: RegExp): void {
  assert.equal(run.code, 1, `exit code; stdout: ${run.stdout}`);
  assert.equal(
    run.stderr.split('\n').filter(Boolean).length,
    1,
    `one line on stderr, got ${JSON.stringify(run.stderr)}`,
  );
  assert.match(run.stderr, /^steeple: /);
  assert.match(run.stderr, message);
}

describe('steeple server admin commands', () => {
  let f: AdminFixture;
  let sock: string[];
  before(async () => {
    f = await startAdminFixture();
    sock = ['-socketPath', f.socketPath];
  });
  after(async () => {
    await f.close();
  });

  describe('entry', () => {
    it('creates an entry from SPIRE single-dash flags and prints it', async () => {
      const run = ok(
        await cli(
          'server',
          'entry',
          'create',
          ...sock,
          '-spiffeID',
          'spiffe://example.org/web',
          '-parentID',
          'spiffe://example.org/agent',
          '-selector',
          'unix:uid:1000',
          '-selector',
          'unix:gid:1000',
          '-dns',
          'web.example.org',
          '-x509SVIDTTL',
          '3600',
          '-jwtSVIDTTL',
          '5m',
          '-hint',
          'web',
          '-admin',
          '-entryExpiry',
          '4102444800',
        ),
      );
      assert.match(run.stdout, /^Entry ID {6}: [0-9a-f-]{36}$/m);
      assert.match(run.stdout, /^SPIFFE ID {5}: spiffe:\/\/example\.org\/web$/m);
      assert.match(run.stdout, /^Selector {6}: unix:gid:1000$/m);
      assert.match(run.stdout, /^X509-SVID TTL : 3600$/m);
      assert.match(run.stdout, /^JWT-SVID TTL {2}: 300$/m);
      assert.match(run.stdout, /^Entry expiry {2}: 2100-01-01T00:00:00\.000Z$/m);
    });

    it('prints -output json with the proto field names', async () => {
      const run = ok(
        await cli(
          'server',
          'entry',
          'create',
          ...sock,
          '-spiffeID',
          'spiffe://example.org/json',
          '-parentID',
          'spiffe://example.org/agent',
          '-selector',
          'unix:uid:1',
          '-output',
          'json',
        ),
      );
      const doc = JSON.parse(run.stdout);
      assert.equal(doc.results[0].status.code, 0);
      assert.equal(doc.results[0].entry.spiffe_id, 'spiffe://example.org/json');
      assert.deepEqual(doc.results[0].entry.selectors, [{ type: 'unix', value: 'uid:1' }]);
    });

    it('creates a node alias entry with -node (parent: the server)', async () => {
      const run = ok(
        await cli(
          'server',
          'entry',
          'create',
          ...sock,
          '-node',
          '-spiffeID',
          'spiffe://example.org/nodes/rack1',
          '-selector',
          'x509pop:subject:cn:rack1',
        ),
      );
      assert.match(run.stdout, /^Parent ID {5}: spiffe:\/\/example\.org\/spire\/server$/m);
    });

    it('fails with exit code 1 and one line naming the field for an invalid entry', async () => {
      const run = await cli(
        'server',
        'entry',
        'create',
        ...sock,
        '-spiffeID',
        'spiffe://other.org/web',
        '-parentID',
        'spiffe://example.org/agent',
        '-selector',
        'unix:uid:1000',
      );
      failed(
        run,
        /1 of 1 entry not created: spiffeId: "spiffe:\/\/other\.org\/web" is not in the server's trust domain "example\.org" \(InvalidArgument\)/,
      );
      assert.match(run.stdout, /^Failed to create the following entry \(code: InvalidArgument/m);
    });

    it('says AlreadyExists for a duplicate', async () => {
      const run = await cli(
        'server',
        'entry',
        'create',
        ...sock,
        '-spiffeID',
        'spiffe://example.org/web',
        '-parentID',
        'spiffe://example.org/agent',
        '-selector',
        'unix:uid:1000',
        '-selector',
        'unix:gid:1000',
      );
      failed(run, /already exists.*\(AlreadyExists\)/);
    });

    it('checks required flags and selector syntax before calling the server', async () => {
      failed(
        await cli('server', 'entry', 'create', ...sock, '-parentID', 'spiffe://example.org/a', '-selector', 'u:1'),
        /-spiffeID is required/,
      );
      failed(
        await cli('server', 'entry', 'create', ...sock, '-spiffeID', 'spiffe://example.org/a', '-selector', 'u:1'),
        /-parentID is required unless -node is set/,
      );
      failed(
        await cli(
          'server',
          'entry',
          'create',
          ...sock,
          '-spiffeID',
          'spiffe://example.org/a',
          '-parentID',
          'spiffe://example.org/p',
          '-selector',
          'nocolon',
        ),
        /selector "nocolon" must be type:value/,
      );
      const usage = await cli('server', 'entry', 'create', ...sock, '-noSuchFlag');
      assert.equal(usage.code, 1);
      assert.match(usage.stderr, /unknown option/);
    });

    it('creates a batch from a SPIRE -data file, item by item', async () => {
      const file = join(f.dir, 'entries.json');
      writeFileSync(
        file,
        JSON.stringify({
          entries: [
            {
              spiffe_id: { trust_domain: 'example.org', path: '/batch/a' },
              parent_id: 'spiffe://example.org/agent',
              selectors: [{ type: 'unix', value: 'uid:2000' }],
              x509_svid_ttl: 600,
              dns_names: ['a.example.org'],
            },
            {
              spiffeId: 'spiffe://example.org/batch/b',
              parentId: 'spiffe://example.org/agent',
              selectors: [{ type: 'unix', value: 'uid:2001' }],
            },
          ],
        }),
      );
      const run = ok(await cli('server', 'entry', 'create', ...sock, '-data', file, '-output', 'json'));
      const doc = JSON.parse(run.stdout);
      assert.deepEqual(
        doc.results.map((r: { entry: { spiffe_id: string } }) => r.entry.spiffe_id),
        ['spiffe://example.org/batch/a', 'spiffe://example.org/batch/b'],
      );
      writeFileSync(file, JSON.stringify({ entries: [{ spiffe_id: 'spiffe://example.org/x', colour: 'red' }] }));
      failed(await cli('server', 'entry', 'create', ...sock, '-data', file), /-data entries\[0\]\.colour: unknown key/);
    });

    it('shows, counts, updates and deletes entries', async () => {
      const shown = ok(
        await cli('server', 'entry', 'show', ...sock, '-spiffeID', 'spiffe://example.org/web', '-output', 'json'),
      );
      const [entry] = JSON.parse(shown.stdout).entries;
      assert.equal(entry.spiffe_id, 'spiffe://example.org/web');

      const bySelector = ok(await cli('server', 'entry', 'show', ...sock, '-selector', 'unix:uid:2000'));
      assert.match(bySelector.stdout, /^Found 1 entry$/m);
      assert.match(bySelector.stdout, /batch\/a/);

      const byId = ok(await cli('server', 'entry', 'show', ...sock, '-entryID', entry.id));
      assert.match(byId.stdout, new RegExp(`^Entry ID {6}: ${entry.id}$`, 'm'));

      const counted = ok(await cli('server', 'entry', 'count', ...sock, '-parentID', 'spiffe://example.org/agent'));
      assert.match(counted.stdout, /^\d+ registration entries\n$/);

      const updated = ok(
        await cli(
          'server',
          'entry',
          'update',
          ...sock,
          '-entryID',
          entry.id,
          '-spiffeID',
          'spiffe://example.org/web',
          '-parentID',
          'spiffe://example.org/agent',
          '-selector',
          'unix:uid:1000',
          '-x509SVIDTTL',
          '60',
          '-output',
          'json',
        ),
      );
      const after = JSON.parse(updated.stdout).results[0].entry;
      assert.equal(after.x509_svid_ttl, 60);
      assert.deepEqual(after.dns_names, [], 'SPIRE semantics: fields not given are reset');

      ok(await cli('server', 'entry', 'delete', ...sock, '-entryID', entry.id));
      failed(
        await cli('server', 'entry', 'show', ...sock, '-entryID', entry.id),
        /no registration entry with id .*\(NotFound\)/,
      );
      failed(
        await cli('server', 'entry', 'delete', ...sock, '-entryID', entry.id),
        /1 of 1 entry not deleted: .*\(NotFound\)/,
      );
    });
  });

  describe('token and agent', () => {
    it('generates a join token, with an alias entry when -spiffeID is given', async () => {
      const run = ok(
        await cli('server', 'token', 'generate', ...sock, '-spiffeID', 'spiffe://example.org/nodes/n1', '-ttl', '600'),
      );
      const token = /^Token: ([0-9a-f-]{36})$/m.exec(run.stdout)?.[1];
      assert.ok(token, run.stdout);
      const alias = ok(
        await cli(
          'server',
          'entry',
          'show',
          ...sock,
          '-parentID',
          `spiffe://example.org/spire/agent/join_token/${token}`,
          '-output',
          'json',
        ),
      );
      assert.equal(JSON.parse(alias.stdout).entries[0].spiffe_id, 'spiffe://example.org/nodes/n1');
      const json = ok(await cli('server', 'token', 'generate', ...sock, '-output', 'json'));
      assert.match(JSON.parse(json.stdout).agent_spiffe_id, /^spiffe:\/\/example\.org\/spire\/agent\/join_token\//);
    });

    it('lists, shows, counts, bans and evicts agents', async () => {
      const id = 'spiffe://example.org/spire/agent/x509pop/cli';
      await f.datastore.agents.create({
        spiffeId: id,
        attestationType: 'x509pop',
        serialNumber: '0a',
        expiresAt: 4_102_444_800,
        selectors: [{ type: 'x509pop', value: 'subject:cn:cli' }],
      });
      const listed = ok(await cli('server', 'agent', 'list', ...sock));
      assert.match(listed.stdout, /^Found 1 attested agent:$/m);
      assert.match(listed.stdout, /^Can re-attest {4}: true$/m);
      const shown = ok(await cli('server', 'agent', 'show', ...sock, '-spiffeID', id));
      assert.match(shown.stdout, /^Selector {9}: x509pop:subject:cn:cli$/m);
      assert.equal(ok(await cli('server', 'agent', 'count', ...sock)).stdout, '1 attested agent\n');
      assert.equal(
        ok(await cli('server', 'agent', 'ban', ...sock, '-spiffeID', id)).stdout,
        'Agent banned successfully\n',
      );
      const banned = ok(await cli('server', 'agent', 'list', ...sock, '-banned', 'true', '-output', 'json'));
      assert.equal(JSON.parse(banned.stdout).agents[0].banned, true);
      assert.equal(
        ok(await cli('server', 'agent', 'evict', ...sock, '-spiffeID', id)).stdout,
        'Agent evicted successfully\n',
      );
      failed(await cli('server', 'agent', 'show', ...sock, '-spiffeID', id), /no attested agent .*\(NotFound\)/);
      failed(await cli('server', 'agent', 'ban', ...sock), /-spiffeID is required/);
    });
  });

  describe('bundle, x509, jwt, healthcheck', () => {
    it("shows the server's bundle as PEM and as SPIFFE JSON", async () => {
      const pem = ok(await cli('server', 'bundle', 'show', ...sock));
      assert.ok(X509Bundle.parse('example.org', pem.stdout).hasAuthority(f.ca.x509.certificate));
      const spiffe = ok(await cli('server', 'bundle', 'show', ...sock, '-format', 'spiffe'));
      assert.equal(SpiffeBundle.parse('example.org', spiffe.stdout).x509Authorities.length, 1);
    });

    it('sets, lists and deletes a federated bundle', async () => {
      const file = join(f.dir, 'partner.pem');
      writeFileSync(file, createTestCa({ trustDomain: 'partner.org' }).x509Bundle().marshal());
      assert.equal(
        ok(await cli('server', 'bundle', 'set', ...sock, '-id', 'partner.org', '-path', file)).stdout,
        'bundle set.\n',
      );
      const listed = ok(await cli('server', 'bundle', 'list', ...sock));
      assert.match(listed.stdout, /^\* partner\.org$/m);
      assert.match(listed.stdout, /BEGIN CERTIFICATE/);
      const json = ok(await cli('server', 'bundle', 'list', ...sock, '-id', 'partner.org', '-output', 'json'));
      assert.equal(JSON.parse(json.stdout).bundles[0].trust_domain, 'partner.org');
      assert.equal(
        ok(await cli('server', 'bundle', 'delete', ...sock, '-id', 'partner.org')).stdout,
        'bundle deleted.\n',
      );
      failed(
        await cli('server', 'bundle', 'set', ...sock, '-id', 'example.org', '-path', file),
        /own trust domain \(InvalidArgument\)/,
      );
    });

    it('mints an X509-SVID into files: svid.pem, key.pem (0600) and bundle.pem', async () => {
      const dir = join(f.dir, 'minted');
      const run = ok(
        await cli(
          'server',
          'x509',
          'mint',
          ...sock,
          '-spiffeID',
          'spiffe://example.org/minted',
          '-ttl',
          '600',
          '-dns',
          'minted.example.org',
          '-write',
          dir,
        ),
      );
      assert.match(run.stdout, /X509-SVID written to .*svid\.pem/);
      assert.equal(statSync(join(dir, 'key.pem')).mode & 0o777, 0o600);
      const svid = X509Svid.parse(readFileSync(join(dir, 'svid.pem')), readFileSync(join(dir, 'key.pem')));
      const bundle = X509Bundle.parse('example.org', readFileSync(join(dir, 'bundle.pem')));
      assert.equal(verifyX509Svid(svid.certificates, bundle).id.toString(), 'spiffe://example.org/minted');
    });

    it('mints a JWT-SVID and prints the token', async () => {
      const run = ok(
        await cli('server', 'jwt', 'mint', ...sock, '-spiffeID', 'spiffe://example.org/jwt', '-audience', 'db'),
      );
      assert.match(run.stdout, /^ey[\w-]+\.[\w-]+\.[\w-]+\n$/);
      failed(
        await cli('server', 'jwt', 'mint', ...sock, '-spiffeID', 'spiffe://example.org/jwt'),
        /at least one -audience/,
      );
    });

    it('reports health', async () => {
      assert.equal(ok(await cli('server', 'healthcheck', ...sock)).stdout, 'Server is healthy.\n');
      const verbose = ok(await cli('server', 'healthcheck', ...sock, '-verbose'));
      assert.match(verbose.stdout, /^datastore : healthy$/m);
    });
  });

  describe('federation', () => {
    it('creates, lists, shows, updates, refreshes (not yet available) and deletes a relationship', async () => {
      const bundleFile = join(f.dir, 'peer.pem');
      writeFileSync(bundleFile, createTestCa({ trustDomain: 'peer.org' }).x509Bundle().marshal());
      const created = ok(
        await cli(
          'server',
          'federation',
          'create',
          ...sock,
          '-trustDomain',
          'peer.org',
          '-bundleEndpointURL',
          'https://peer.org:8443',
          '-bundleEndpointProfile',
          'https_spiffe',
          '-endpointSpiffeID',
          'spiffe://peer.org/spire/server',
          '-trustDomainBundlePath',
          bundleFile,
        ),
      );
      assert.match(created.stdout, /^Bundle endpoint profile : https_spiffe$/m);
      assert.match(created.stdout, /^Bundle sequence {9}: 1$/m);
      const listed = ok(await cli('server', 'federation', 'list', ...sock));
      assert.match(listed.stdout, /^Found 1 federation relationship$/m);
      const shown = ok(
        await cli('server', 'federation', 'show', ...sock, '-trustDomain', 'peer.org', '-output', 'json'),
      );
      assert.equal(JSON.parse(shown.stdout).https_spiffe.endpoint_spiffe_id, 'spiffe://peer.org/spire/server');
      const updated = ok(
        await cli(
          'server',
          'federation',
          'update',
          ...sock,
          '-trustDomain',
          'peer.org',
          '-bundleEndpointURL',
          'https://peer.org/bundle',
          '-bundleEndpointProfile',
          'https_web',
        ),
      );
      assert.match(updated.stdout, /^Bundle endpoint profile : https_web$/m);
      failed(
        await cli('server', 'federation', 'refresh', ...sock, '-id', 'peer.org'),
        /does not fetch federated bundles yet.*\(Unimplemented\)/,
      );
      ok(await cli('server', 'federation', 'delete', ...sock, '-id', 'peer.org'));
      failed(
        await cli(
          'server',
          'federation',
          'create',
          ...sock,
          '-trustDomain',
          'x.org',
          '-bundleEndpointURL',
          'https://x.org',
          '-bundleEndpointProfile',
          'https_spiffe',
        ),
        /-endpointSpiffeID is required with -bundleEndpointProfile https_spiffe/,
      );
    });
  });

  it('says which socket it cannot reach', async () => {
    failed(
      await cli('server', 'healthcheck', '-socketPath', join(f.dir, 'nothing-here.sock')),
      /cannot reach the Steeple server admin socket at .*nothing-here\.sock: is "steeple server run" running\? \(ENOENT\)/,
    );
  });

  it('prints the version and help with exit code 0', async () => {
    const version = await cli('--version');
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
    const help = await cli('server', 'entry', '--help');
    assert.equal(help.code, 0);
    assert.match(help.stdout, /create/);
  });
});
