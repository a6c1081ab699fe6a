/**
 * Helpers shared by this folder's tests: running `openssl verify` on what the CA issues,
 * and making throwaway directories. Not used by production code.
 * @module
 */
import { spawnSync } from 'node:child_process';
import type { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** PEM of DER certificates (or certificate objects), concatenated. */
export function toPem(certs: readonly (Uint8Array | X509Certificate)[]): string {
  return certs
    .map((c) => {
      const der = c instanceof Uint8Array ? Buffer.from(c) : c.raw;
      const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n');
      return `-----BEGIN CERTIFICATE-----\n${b64.replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;
    })
    .join('');
}

/** A fresh temporary directory and a function that removes it. */
export async function tempDir(prefix: string): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `steeple-${prefix}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/**
 * Runs `openssl verify -x509_strict -purpose <purpose>` on `leaf` with `roots` as trust
 * anchors and `untrusted` as intermediates, at `at`; returns openssl's output and status.
 */
export async function opensslVerify(params: {
  readonly dir: string;
  readonly roots: readonly (Uint8Array | X509Certificate)[];
  readonly leaf: Uint8Array | X509Certificate;
  readonly untrusted?: readonly (Uint8Array | X509Certificate)[];
  readonly purpose?: 'sslclient' | 'sslserver';
  readonly at?: Date;
}): Promise<{ ok: boolean; output: string }> {
  const roots = join(params.dir, 'roots.pem');
  const leaf = join(params.dir, 'leaf.pem');
  await writeFile(roots, toPem(params.roots));
  await writeFile(leaf, toPem([params.leaf]));
  const args = ['verify', '-x509_strict', '-purpose', params.purpose ?? 'sslclient', '-CAfile', roots];
  if (params.untrusted && params.untrusted.length > 0) {
    const untrusted = join(params.dir, 'untrusted.pem');
    await writeFile(untrusted, toPem(params.untrusted));
    args.push('-untrusted', untrusted);
  }
  if (params.at) args.push('-attime', String(Math.floor(params.at.getTime() / 1000)));
  args.push(leaf);
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
}
