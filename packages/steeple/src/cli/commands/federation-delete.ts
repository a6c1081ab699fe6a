/**
 * `steeple server federation delete -id <td>`: stops federating (the stored bundle goes too).
 * @module
 */
import { Command } from 'commander';
import { createOutputOption, type OutputFormat } from '../../common/cli/output.js';
import { CliError, withAdminClient, withSocketPath } from '../admin-command.js';
import { printJson, printText } from '../command-output.js';

interface Options {
  readonly id?: string;
  readonly socketPath: string;
  readonly output: OutputFormat;
}

export function federationDeleteCommand(): Command {
  const command = new Command('delete')
    .description('Deletes a federation relationship and the bundle it fetched')
    .option('--id <td>', 'the federated trust domain');
  withSocketPath(command).addOption(createOutputOption());
  return command.action(async (opts: Options) => {
    if (opts.id === undefined) throw new CliError('-id is required');
    const trustDomain = opts.id;
    await withAdminClient(opts.socketPath, (admin) => admin.trustDomains.deleteFederationRelationship({ trustDomain }));
    if (opts.output === 'json') printJson({ trust_domain: trustDomain, deleted: true });
    else printText('federation relationship deleted.');
  });
}
