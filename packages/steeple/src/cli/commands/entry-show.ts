/**
 * `steeple server entry show`: one entry by `-entryID`, or every entry matching the filters.
 * @module
 */
import { Command } from 'commander';
import { createOutputOption, type OutputFormat } from '../../common/cli/output.js';
import type { Entry } from '../../gen/steeple/types/v1/entry_pb.js';
import { EntrySchema } from '../../gen/steeple/types/v1/entry_pb.js';
import { CliError, withAdminClient, withSocketPath } from '../admin-command.js';
import { printJson, printText, protoJson } from '../command-output.js';
import { addEntryFilterOptions, type EntryFilterFlags, entryFilterFromFlags } from '../entry-filter-flags.js';
import { formatEntryList } from '../entry-format.js';

/** Entries fetched per call; the command follows the pages to the end. */
const PAGE_SIZE = 1000;

interface Options extends EntryFilterFlags {
  readonly entryID?: string;
  readonly socketPath: string;
  readonly output: OutputFormat;
}

export function entryShowCommand(): Command {
  const command = new Command('show')
    .description('Shows registration entries: one by -entryID, or all matching the filters')
    .option('--entryID <id>', 'the entry to show');
  addEntryFilterOptions(command);
  withSocketPath(command).addOption(createOutputOption());
  return command.action(async (opts: Options) => {
    const entries = await withAdminClient(opts.socketPath, async (admin) => {
      if (opts.entryID !== undefined) {
        if (opts.spiffeID ?? opts.parentID ?? opts.selector ?? opts.federatesWith ?? opts.hint) {
          throw new CliError('-entryID cannot be combined with filters');
        }
        const { entry } = await admin.entries.getEntry({ id: opts.entryID });
        return entry ? [entry] : [];
      }
      const filter = entryFilterFromFlags(opts);
      const all: Entry[] = [];
      let pageToken = '';
      do {
        const page = await admin.entries.listEntries({ filter, pageSize: PAGE_SIZE, pageToken });
        all.push(...page.entries);
        pageToken = page.nextPageToken;
      } while (pageToken !== '');
      return all;
    });
    if (opts.output === 'json') printJson({ entries: entries.map((e) => protoJson(EntrySchema, e)) });
    else printText(formatEntryList(entries));
  });
}
