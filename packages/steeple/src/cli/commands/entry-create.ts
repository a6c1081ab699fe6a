/**
 * `steeple server entry create`: creates registration entries from flags or a `-data` file.
 * @module
 */
import { Command } from 'commander';
import { createOutputOption, type OutputFormat } from '../../common/cli/output.js';
import { CreateEntriesResponseSchema } from '../../gen/steeple/server/v1/entry_pb.js';
import { CliError, withAdminClient, withSocketPath } from '../admin-command.js';
import { describeStatus, failIfRefused, isOk } from '../batch-status.js';
import { printJson, printText, protoJson } from '../command-output.js';
import { formatEntry } from '../entry-format.js';
import { addEntryFieldOptions, type EntryFlags, entriesFromData, entryFromFlags } from '../entry-input.js';

interface Options extends EntryFlags {
  readonly socketPath: string;
  readonly output: OutputFormat;
}

export function entryCreateCommand(): Command {
  const command = new Command('create').description('Creates registration entries');
  addEntryFieldOptions(command);
  withSocketPath(command).addOption(createOutputOption());
  return command.action(async (opts: Options) => {
    if (opts.data !== undefined && (opts.spiffeID !== undefined || opts.parentID !== undefined || opts.selector)) {
      throw new CliError('-data cannot be combined with -spiffeID, -parentID or -selector');
    }
    const entries = opts.data !== undefined ? entriesFromData(opts.data) : [entryFromFlags(opts)];
    const res = await withAdminClient(opts.socketPath, (admin) => admin.entries.createEntries({ entries }));
    if (opts.output === 'json') {
      printJson(protoJson(CreateEntriesResponseSchema, res));
    } else {
      const blocks = res.results.map((r, i) => {
        if (isOk(r.status) && r.entry) return formatEntry(r.entry);
        const requested = entries[i];
        return `Failed to create the following entry (${describeStatus(r.status)}):\n${requested ? formatEntry(requested) : ''}`;
      });
      printText(blocks.join('\n\n'));
    }
    failIfRefused(
      res.results.map((r) => r.status),
      entries.length === 1 ? 'entry not created' : 'entries not created',
    );
  });
}
