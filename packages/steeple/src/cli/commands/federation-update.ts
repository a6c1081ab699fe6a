/**
 * `steeple server federation update`: replaces a relationship's endpoint and profile (and its
 * bundle, when -trustDomainBundlePath is given).
 * @module
 */
import { Command } from 'commander';
import { createOutputOption, type OutputFormat } from '../../common/cli/output.js';
import { FederationRelationshipSchema } from '../../gen/steeple/server/v1/trust_domain_pb.js';
import { CliError, withAdminClient, withSocketPath } from '../admin-command.js';
import { printJson, printText, protoJson } from '../command-output.js';
import {
  addFederationOptions,
  type FederationFlags,
  formatRelationship,
  relationshipFromFlags,
} from '../federation-input.js';

interface Options extends FederationFlags {
  readonly socketPath: string;
  readonly output: OutputFormat;
}

export function federationUpdateCommand(): Command {
  const command = new Command('update').description('Updates a federation relationship');
  addFederationOptions(command);
  withSocketPath(command).addOption(createOutputOption());
  return command.action(async (opts: Options) => {
    const relationship = relationshipFromFlags(opts);
    const res = await withAdminClient(opts.socketPath, (admin) =>
      admin.trustDomains.updateFederationRelationship({ relationship }),
    );
    if (res.relationship === undefined) throw new CliError('the server returned no relationship');
    if (opts.output === 'json') printJson(protoJson(FederationRelationshipSchema, res.relationship));
    else printText(formatRelationship(res.relationship));
  });
}
