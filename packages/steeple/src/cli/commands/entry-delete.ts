/**
 * `steeple server entry delete`: deletes an entry by `-entryID`, or several listed in `-file`
 * (`{"ids": ["…", "…"]}`, as SPIRE reads it).
 * @module
 */
import { Command } from 'commander';
import { createOutputOption, type OutputFormat } from '../../common/cli/output.js';
import { DeleteEntriesResponseSchema } from '../../gen/steeple/server/v1/entry_pb.js';
import { CliError, readInputFile, withAdminClient, withSocketPath } from '../admin-command.js';
import { describeStatus, failIfRefused, isOk } from '../batch-status.js';
import { printJson, printText, protoJson } from '../command-output.js';

interface Options {
  readonly entryID?: string;
  readonly file?: string;
  readonly socketPath: string;
  readonly output: OutputFormat;
}

function idsFromFile(path: string): string[] {
  let doc: unknown;
  try {
    doc = JSON.parse(readInputFile('file', path));
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`-file ${path}: not valid JSON (${(err as Error).message})`);
  }
  const ids = (doc as { ids?: unknown } | null)?.ids;
  if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string')) {
    throw new CliError(`-file ${path}: expected {"ids": ["<entry id>", ...]}`);
  }
  return ids;
}

export function entryDeleteCommand(): Command {
  const command = new Command('delete')
    .description('Deletes registration entries')
    .option('--entryID <id>', 'the entry to delete')
    .option('--file <file>', 'a JSON file {"ids": [...]} of entries to delete; - reads standard input');
  withSocketPath(command).addOption(createOutputOption());
  return command.action(async (opts: Options) => {
    if ((opts.entryID === undefined) === (opts.file === undefined)) {
      throw new CliError('give exactly one of -entryID and -file');
    }
    const ids = opts.file !== undefined ? idsFromFile(opts.file) : [opts.entryID as string];
    const res = await withAdminClient(opts.socketPath, (admin) => admin.entries.deleteEntries({ ids }));
    if (opts.output === 'json') {
      printJson(protoJson(DeleteEntriesResponseSchema, res));
    } else {
      printText(
        res.results
          .map((r) =>
            isOk(r.status)
              ? `Deleted entry with ID: ${r.id}`
              : `Failed to delete entry with ID ${r.id} (${describeStatus(r.status)})`,
          )
          .join('\n'),
      );
    }
    failIfRefused(
      res.results.map((r) => r.status),
      ids.length === 1 ? 'entry not deleted' : 'entries not deleted',
    );
  });
}
