import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Code, ConnectError } from '@connectrpc/connect';
import { JwtSvid, verifyX509Svid } from '@steeple/spiffe';
import { type AdminFixture, csrForTests, startAdminFixture } from './testing/admin-fixture.js';

async function rejects(promise: Promise<unknown>, code: Code, message: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ConnectError);
    assert.equal(err.code, code, err.rawMessage);
    assert.match(err.rawMessage, message);
    return true;
  });
}

function keyAndCsr() {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { publicKey, csr: csrForTests(privateKey, publicKey) };
}

describe('SvidService over the admin socket', () => {
  let f: AdminFixture;
  before(async () => {
    f = await startAdminFixture();
  });
  after(async () => {
    await f.close();
  });

  it('mints an X509-SVID for the key in the CSR that verifies against the bundle (X-1, X-11)', async () => {
    const { publicKey, csr } = keyAndCsr();
    const before = Date.now();
    const { svid } = await f.client.svids.mintX509Svid({
      csr,
      spiffeId: 'spiffe://example.org/minted',
      ttlSeconds: 600,
      dnsNames: ['minted.example.org'],
    });
    assert.ok(svid);
    const { id } = verifyX509Svid(svid.certChain, f.ca.bundle());
    assert.equal(id.toString(), 'spiffe://example.org/minted');
    const leaf = new X509Certificate(svid.certChain[0] as Uint8Array);
    assert.ok(leaf.publicKey.equals(publicKey), 'the certificate certifies the CSR key');
    assert.match(leaf.subjectAltName ?? '', /DNS:minted\.example\.org/);
    const lifetime = Number(svid.expiresAt) * 1000 - before;
    assert.ok(lifetime > 590_000 && lifetime <= 601_000, `lifetime ${lifetime} ms`);
    const line = f.logs.find((l) => l['msg'] === 'minted X509-SVID');
    assert.equal(line?.['spiffeId'], 'spiffe://example.org/minted');
    assert.match(String(line?.['serialNumber']), /^[0-9a-f]+$/);
  });

  it("uses the server's default X509-SVID TTL when the request says 0", async () => {
    const { csr } = keyAndCsr();
    const { svid } = await f.client.svids.mintX509Svid({ csr, spiffeId: 'spiffe://example.org/default-ttl' });
    const lifetime = Number(svid?.expiresAt ?? 0n) - Math.floor(Date.now() / 1000);
    assert.ok(lifetime > 3590 && lifetime <= 3600, `lifetime ${lifetime} s`);
  });

  it('refuses bad X509-SVID requests naming the field', async () => {
    const { csr } = keyAndCsr();
    await rejects(
      f.client.svids.mintX509Svid({ spiffeId: 'spiffe://example.org/x' }),
      Code.InvalidArgument,
      /^csr: required/,
    );
    await rejects(
      f.client.svids.mintX509Svid({
        csr: new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00]),
        spiffeId: 'spiffe://example.org/x',
      }),
      Code.InvalidArgument,
      /^csr: not a DER PKCS#10/,
    );
    const tampered = Uint8Array.from(csr);
    tampered[tampered.length - 5] = (tampered[tampered.length - 5] as number) ^ 0xff;
    await rejects(
      f.client.svids.mintX509Svid({ csr: tampered, spiffeId: 'spiffe://example.org/x' }),
      Code.InvalidArgument,
      /^csr: /,
    );
    await rejects(
      f.client.svids.mintX509Svid({ csr: new Uint8Array(17 * 1024), spiffeId: 'spiffe://example.org/x' }),
      Code.InvalidArgument,
      /^csr: is 17408 bytes; at most 16384 are accepted/,
    );
    await rejects(
      f.client.svids.mintX509Svid({ csr, spiffeId: 'spiffe://other.org/x' }),
      Code.InvalidArgument,
      /^spiffeId: .*not in the server's trust domain/,
    );
    await rejects(
      f.client.svids.mintX509Svid({ csr, spiffeId: 'spiffe://example.org/x', dnsNames: ['ok.org', 'not ok'] }),
      Code.InvalidArgument,
      /^dnsNames\[1\]: /,
    );
    await rejects(
      f.client.svids.mintX509Svid({ csr, spiffeId: 'spiffe://example.org/x', ttlSeconds: -1 }),
      Code.InvalidArgument,
      /^ttlSeconds: must be 0 or more/,
    );
  });

  it('mints a JWT-SVID that validates for its audience (J-1); the token is never logged', async () => {
    const { svid } = await f.client.svids.mintJwtSvid({
      spiffeId: 'spiffe://example.org/jwt',
      audience: ['db', 'cache'],
    });
    assert.ok(svid);
    const parsed = JwtSvid.parseAndValidateSync(svid.token, f.ca.bundle(), ['db']);
    assert.equal(parsed.id.toString(), 'spiffe://example.org/jwt');
    assert.equal(svid.expiresAt - svid.issuedAt, 300n, "the server's default JWT-SVID TTL");
    assert.ok(!JSON.stringify(f.logs).includes(svid.token));
    assert.ok(f.logs.some((l) => l['msg'] === 'minted JWT-SVID'));
  });

  it('refuses bad JWT-SVID requests naming the field', async () => {
    await rejects(
      f.client.svids.mintJwtSvid({ spiffeId: 'spiffe://example.org/jwt', audience: [] }),
      Code.InvalidArgument,
      /^audience: at least one audience is required/,
    );
    await rejects(
      f.client.svids.mintJwtSvid({ spiffeId: 'spiffe://example.org/jwt', audience: ['a', ''] }),
      Code.InvalidArgument,
      /^audience\[1\]: must not be empty/,
    );
    await rejects(
      f.client.svids.mintJwtSvid({ spiffeId: 'spiffe://example.org', audience: ['a'] }),
      Code.InvalidArgument,
      /^spiffeId: .*has no path/,
    );
  });
});
