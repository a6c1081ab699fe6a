/**
 * `steeple server federation refresh -id <td>`: fetch the trust domain's bundle now.
 * @module
 */
import { Command } from 'commander';
import { createOutputOption, type OutputFormat } from '../../common/cli/output.js';
import { BundleSchema } from '../../gen/steeple/types/v1/bundle_pb.js';
import { CliError, withAdminClient, withSocketPath } from '../admin-command.js';
import { printJson, printText, protoJson } from '../command-output.js';

interface Options {
  readonly id?: string;
  readonly socketPath: string;
  readonly output: OutputFormat;
}

export function federationRefreshCommand(): Command {
  const command = new Command('refresh')
    .description("Fetches a federated trust domain's bundle from its endpoint now")
    .option('--id <td>', 'the federated trust domain');
  withSocketPath(command).addOption(createOutputOption());
  return command.action(async (opts: Options) => {
    if (opts.id === undefined) throw new CliError('-id is required');
    const trustDomain = opts.id;
    const { bundle } = await withAdminClient(opts.socketPath, (admin) =>
      admin.trustDomains.refreshBundle({ trustDomain }),
    );
    if (opts.output === 'json' && bundle) printJson(protoJson(BundleSchema, bundle));
    else printText(`Bundle refreshed (sequence ${bundle?.sequence ?? 0n}).`);
  });
}
