/**
 * `steeple server x509 mint`: an X.509-SVID for any ID in the trust domain. The key pair
 * (EC P-256) is made here and only a CSR goes to the server; with `-write` the SVID, key (0600)
 * and bundle land in files, otherwise they are printed.
 * @module
 */
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';
import { createOutputOption, type OutputFormat } from '../../common/cli/output.js';
import { writeFileAtomic } from '../../common/fs-secure.js';
import { CliError, collect, parseTtl, withAdminClient, withSocketPath } from '../admin-command.js';
import { buildCsr } from '../build-csr.js';
import { formatBundle } from '../bundle-format.js';
import { printJson, printText } from '../command-output.js';
import { formatEpoch } from '../entry-format.js';

interface Options {
  readonly spiffeID?: string;
  readonly ttl: number;
  readonly dns?: string[];
  readonly write?: string;
  readonly socketPath: string;
  readonly output: OutputFormat;
}

export function x509Command(): Command {
  const mint = new Command('mint')
    .description('Mints an X509-SVID')
    .option('--spiffeID <id>', 'the SPIFFE ID of the X509-SVID')
    .option('--ttl <seconds>', "lifetime, in seconds or as 1h (default: the server's)", parseTtl, 0)
    .option('--dns <name>', 'a DNS name for the SVID; repeat for several (the first is also the CN)', collect)
    .option('--write <dir>', 'write svid.pem, key.pem and bundle.pem into this directory instead of printing');
  withSocketPath(mint).addOption(createOutputOption());
  mint.action(async (opts: Options) => {
    if (opts.spiffeID === undefined) throw new CliError('-spiffeID is required');
    const spiffeId = opts.spiffeID;
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const csr = buildCsr(privateKey, publicKey);
    const { svid, bundle } = await withAdminClient(opts.socketPath, async (admin) => {
      const minted = await admin.svids.mintX509Svid({ csr, spiffeId, ttlSeconds: opts.ttl, dnsNames: opts.dns ?? [] });
      const own = await admin.bundles.getBundle({});
      return { svid: minted.svid, bundle: own.bundle };
    });
    if (svid === undefined || bundle === undefined) throw new CliError('the server returned no SVID');
    const svidPem = svid.certChain.map((der) => new X509Certificate(der).toString()).join('');
    const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const bundlePem = formatBundle(bundle, 'pem');
    if (opts.write !== undefined) {
      // A directory that exists is used as it is (it may be the current one); a new one is owner-only.
      await mkdir(opts.write, { recursive: true, mode: 0o700 });
      const paths = {
        svid: join(opts.write, 'svid.pem'),
        key: join(opts.write, 'key.pem'),
        bundle: join(opts.write, 'bundle.pem'),
      };
      await writeFileAtomic(paths.svid, svidPem, { mode: 0o644 });
      await writeFileAtomic(paths.key, keyPem, { mode: 0o600 });
      await writeFileAtomic(paths.bundle, bundlePem, { mode: 0o644 });
      if (opts.output === 'json') {
        printJson({
          spiffe_id: svid.spiffeId,
          expires_at: svid.expiresAt.toString(),
          svid_path: paths.svid,
          key_path: paths.key,
          bundle_path: paths.bundle,
        });
      } else {
        printText(
          `X509-SVID written to ${paths.svid}\nPrivate key written to ${paths.key}\nRoot CAs written to ${paths.bundle}`,
        );
      }
      return;
    }
    if (opts.output === 'json') {
      printJson({
        spiffe_id: svid.spiffeId,
        expires_at: svid.expiresAt.toString(),
        x509_svid: svidPem,
        private_key: keyPem,
        root_cas: bundlePem,
      });
    } else {
      printText(
        `X509-SVID (expires ${formatEpoch(svid.expiresAt) ?? '-'}):\n${svidPem}\nPrivate key:\n${keyPem}\nRoot CAs:\n${bundlePem}`,
      );
    }
  });
  return new Command('x509').description('Mint X509-SVIDs').addCommand(mint);
}
