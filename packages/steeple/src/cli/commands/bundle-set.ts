/**
 * `steeple server bundle set -id <td> -path <file>`: creates or replaces the bundle of another
 * trust domain (PEM certificates or a SPIFFE bundle document; standard input without -path).
 * @module
 */
import { Command, Option } from 'commander';
import { createOutputOption, type OutputFormat } from '../../common/cli/output.js';
import { BundleSchema } from '../../gen/steeple/types/v1/bundle_pb.js';
import { CliError, oneOf, readInputFile, withAdminClient, withSocketPath } from '../admin-command.js';
import { BUNDLE_FORMATS, type BundleFormat } from '../bundle-format.js';
import { printJson, printText, protoJson } from '../command-output.js';

interface Options {
  readonly id?: string;
  readonly path?: string;
  readonly format: BundleFormat;
  readonly socketPath: string;
  readonly output: OutputFormat;
}

export function bundleSetCommand(): Command {
  const command = new Command('set')
    .description('Creates or replaces the bundle of a federated trust domain')
    .option('--id <trust-domain>', 'the trust domain of the bundle')
    .option('--path <file>', 'the bundle file (default: standard input)')
    .addOption(new Option('--format <format>', 'pem or spiffe').argParser(oneOf(BUNDLE_FORMATS)).default('pem'));
  withSocketPath(command).addOption(createOutputOption());
  return command.action(async (opts: Options) => {
    if (opts.id === undefined) throw new CliError('-id is required');
    const text = readInputFile('path', opts.path ?? '-');
    const trustDomain = opts.id;
    const content =
      opts.format === 'spiffe'
        ? { case: 'spiffeBundleJson' as const, value: text }
        : { case: 'x509AuthoritiesPem' as const, value: text };
    const { bundle } = await withAdminClient(opts.socketPath, (admin) =>
      admin.bundles.setFederatedBundle({ trustDomain, content }),
    );
    if (opts.output === 'json' && bundle) printJson(protoJson(BundleSchema, bundle));
    else printText('bundle set.');
  });
}
