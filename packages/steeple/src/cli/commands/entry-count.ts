/**
 * `steeple server entry count`: how many entries match the filters.
 * @module
 */
import { Command } from 'commander';
import { createOutputOption, type OutputFormat } from '../../common/cli/output.js';
import { withAdminClient, withSocketPath } from '../admin-command.js';
import { printJson, printText } from '../command-output.js';
import { addEntryFilterOptions, type EntryFilterFlags, entryFilterFromFlags } from '../entry-filter-flags.js';

interface Options extends EntryFilterFlags {
  readonly socketPath: string;
  readonly output: OutputFormat;
}

export function entryCountCommand(): Command {
  const command = new Command('count').description('Counts registration entries matching the filters');
  addEntryFilterOptions(command);
  withSocketPath(command).addOption(createOutputOption());
  return command.action(async (opts: Options) => {
    const { count } = await withAdminClient(opts.socketPath, (admin) =>
      admin.entries.countEntries({ filter: entryFilterFromFlags(opts) }),
    );
    if (opts.output === 'json') printJson({ count: Number(count) });
    else printText(`${count} registration ${count === 1n ? 'entry' : 'entries'}`);
  });
}
