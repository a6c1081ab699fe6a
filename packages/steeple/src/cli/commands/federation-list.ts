/**
 * `steeple server federation list`.
 * @module
 */
import { Command } from 'commander';
import { createOutputOption, type OutputFormat } from '../../common/cli/output.js';
import {
  type FederationRelationship,
  FederationRelationshipSchema,
} from '../../gen/steeple/server/v1/trust_domain_pb.js';
import { withAdminClient, withSocketPath } from '../admin-command.js';
import { printJson, printText, protoJson } from '../command-output.js';
import { formatRelationship } from '../federation-input.js';

interface Options {
  readonly socketPath: string;
  readonly output: OutputFormat;
}

export function federationListCommand(): Command {
  const command = new Command('list').description('Lists federation relationships');
  withSocketPath(command).addOption(createOutputOption());
  return command.action(async (opts: Options) => {
    const all = await withAdminClient(opts.socketPath, async (admin) => {
      const out: FederationRelationship[] = [];
      let pageToken = '';
      do {
        const page = await admin.trustDomains.listFederationRelationships({ pageSize: 100, pageToken });
        out.push(...page.relationships);
        pageToken = page.nextPageToken;
      } while (pageToken !== '');
      return out;
    });
    if (opts.output === 'json') {
      printJson({ relationships: all.map((r) => protoJson(FederationRelationshipSchema, r)) });
    } else {
      const head = `Found ${all.length} federation ${all.length === 1 ? 'relationship' : 'relationships'}`;
      const now = new Date();
      printText([head, ...all.map((r) => formatRelationship(r, now))].join('\n\n'));
    }
  });
}
