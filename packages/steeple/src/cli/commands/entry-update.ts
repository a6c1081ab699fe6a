/**
 * `steeple server entry update`: replaces entries, as SPIRE does: every field is set from the
 * flags (or the `-data` file), so a flag left out resets that field to its default.
 * @module
 */
import { Command } from 'commander';
import { createOutputOption, type OutputFormat } from '../../common/cli/output.js';
import { UpdateEntriesResponseSchema } from '../../gen/steeple/server/v1/entry_pb.js';
import type { Entry } from '../../gen/steeple/types/v1/entry_pb.js';
import { CliError, withAdminClient, withSocketPath } from '../admin-command.js';
import { describeStatus, failIfRefused, isOk } from '../batch-status.js';
import { printJson, printText, protoJson } from '../command-output.js';
import { formatEntry } from '../entry-format.js';
import { addEntryFieldOptions, type EntryFlags, entriesFromData, entryFromFlags } from '../entry-input.js';

interface Options extends EntryFlags {
  readonly entryID?: string;
  readonly socketPath: string;
  readonly output: OutputFormat;
}

export function entryUpdateCommand(): Command {
  const command = new Command('update')
    .description('Replaces registration entries (fields not given are reset to their defaults)')
    .option('--entryID <id>', 'the entry to update');
  addEntryFieldOptions(command);
  withSocketPath(command).addOption(createOutputOption());
  return command.action(async (opts: Options) => {
    let entries: Entry[];
    if (opts.data !== undefined) {
      if (opts.entryID !== undefined || opts.spiffeID !== undefined) {
        throw new CliError('-data cannot be combined with -entryID or -spiffeID');
      }
      entries = entriesFromData(opts.data);
      const missing = entries.findIndex((e) => e.id === '');
      if (missing >= 0) throw new CliError(`-data entries[${missing}]: "id" is required to update an entry`);
    } else {
      if (opts.entryID === undefined) throw new CliError('-entryID is required');
      entries = [entryFromFlags(opts, { id: opts.entryID })];
    }
    const res = await withAdminClient(opts.socketPath, (admin) => admin.entries.updateEntries({ entries }));
    if (opts.output === 'json') {
      printJson(protoJson(UpdateEntriesResponseSchema, res));
    } else {
      const blocks = res.results.map((r, i) => {
        if (isOk(r.status) && r.entry) return formatEntry(r.entry);
        const requested = entries[i];
        return `Failed to update the following entry (${describeStatus(r.status)}):\n${requested ? formatEntry(requested) : ''}`;
      });
      printText(blocks.join('\n\n'));
    }
    failIfRefused(
      res.results.map((r) => r.status),
      entries.length === 1 ? 'entry not updated' : 'entries not updated',
    );
  });
}
