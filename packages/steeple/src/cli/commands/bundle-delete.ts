/**
 * `steeple server bundle delete -id <td> [-mode restrict|dissociate|delete]`.
 * @module
 */
import { Command, Option } from 'commander';
import { createOutputOption, type OutputFormat } from '../../common/cli/output.js';
import { BundleDeleteMode } from '../../gen/steeple/server/v1/bundle_pb.js';
import { CliError, oneOf, withAdminClient, withSocketPath } from '../admin-command.js';
import { printJson, printText } from '../command-output.js';

const MODES = ['restrict', 'dissociate', 'delete'] as const;
type Mode = (typeof MODES)[number];

const MODE_VALUES: Record<Mode, BundleDeleteMode> = {
  restrict: BundleDeleteMode.RESTRICT,
  dissociate: BundleDeleteMode.DISSOCIATE,
  delete: BundleDeleteMode.DELETE,
};

interface Options {
  readonly id?: string;
  readonly mode: Mode;
  readonly socketPath: string;
  readonly output: OutputFormat;
}

export function bundleDeleteCommand(): Command {
  const command = new Command('delete')
    .description('Deletes the bundle of a federated trust domain')
    .option('--id <trust-domain>', 'the trust domain of the bundle')
    .addOption(
      new Option(
        '--mode <mode>',
        'entries federating with it: restrict (refuse), dissociate (drop it from them) or delete (delete them)',
      )
        .argParser(oneOf(MODES))
        .default('restrict'),
    );
  withSocketPath(command).addOption(createOutputOption());
  return command.action(async (opts: Options) => {
    if (opts.id === undefined) throw new CliError('-id is required');
    const trustDomain = opts.id;
    await withAdminClient(opts.socketPath, (admin) =>
      admin.bundles.deleteFederatedBundle({ trustDomain, mode: MODE_VALUES[opts.mode] }),
    );
    if (opts.output === 'json') printJson({ trust_domain: trustDomain, deleted: true });
    else printText('bundle deleted.');
  });
}
