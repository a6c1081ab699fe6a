/**
 * `steeple server bundle show`: the server's own trust bundle, as PEM (X.509 authorities) or
 * as a SPIFFE bundle document.
 * @module
 */
import { Command, Option } from 'commander';
import { createOutputOption, type OutputFormat } from '../../common/cli/output.js';
import { BundleSchema } from '../../gen/steeple/types/v1/bundle_pb.js';
import { CliError, oneOf, withAdminClient, withSocketPath } from '../admin-command.js';
import { BUNDLE_FORMATS, type BundleFormat, formatBundle } from '../bundle-format.js';
import { printJson, printText, protoJson } from '../command-output.js';

interface Options {
  readonly format: BundleFormat;
  readonly socketPath: string;
  readonly output: OutputFormat;
}

export function bundleShowCommand(): Command {
  const command = new Command('show')
    .description("Shows the server's trust bundle")
    .addOption(new Option('--format <format>', 'pem or spiffe').argParser(oneOf(BUNDLE_FORMATS)).default('pem'));
  withSocketPath(command).addOption(createOutputOption());
  return command.action(async (opts: Options) => {
    const { bundle } = await withAdminClient(opts.socketPath, (admin) => admin.bundles.getBundle({}));
    if (bundle === undefined) throw new CliError('the server returned no bundle');
    if (opts.output === 'json') printJson(protoJson(BundleSchema, bundle));
    else printText(formatBundle(bundle, opts.format));
  });
}
