/**
 * `steeple server federation show -trustDomain <td>`.
 * @module
 */
import { Command } from 'commander';
import { createOutputOption, type OutputFormat } from '../../common/cli/output.js';
import { FederationRelationshipSchema } from '../../gen/steeple/server/v1/trust_domain_pb.js';
import { CliError, withAdminClient, withSocketPath } from '../admin-command.js';
import { printJson, printText, protoJson } from '../command-output.js';
import { formatRelationship } from '../federation-input.js';

interface Options {
  readonly trustDomain?: string;
  readonly socketPath: string;
  readonly output: OutputFormat;
}

export function federationShowCommand(): Command {
  const command = new Command('show')
    .description('Shows a federation relationship')
    .option('--trustDomain <td>', 'the federated trust domain');
  withSocketPath(command).addOption(createOutputOption());
  return command.action(async (opts: Options) => {
    if (opts.trustDomain === undefined) throw new CliError('-trustDomain is required');
    const trustDomain = opts.trustDomain;
    const { relationship } = await withAdminClient(opts.socketPath, (admin) =>
      admin.trustDomains.getFederationRelationship({ trustDomain }),
    );
    if (relationship === undefined) throw new CliError('the server returned no relationship');
    if (opts.output === 'json') printJson(protoJson(FederationRelationshipSchema, relationship));
    else printText(formatRelationship(relationship));
  });
}
