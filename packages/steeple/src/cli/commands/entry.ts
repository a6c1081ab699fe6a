/**
 * `steeple server entry …`: registration entries.
 * @module
 */
import { Command } from 'commander';
import { entryCountCommand } from './entry-count.js';
import { entryCreateCommand } from './entry-create.js';
import { entryDeleteCommand } from './entry-delete.js';
import { entryShowCommand } from './entry-show.js';
import { entryUpdateCommand } from './entry-update.js';

export function entryCommand(): Command {
  return new Command('entry')
    .description('Manage registration entries')
    .addCommand(entryCreateCommand())
    .addCommand(entryShowCommand())
    .addCommand(entryUpdateCommand())
    .addCommand(entryDeleteCommand())
    .addCommand(entryCountCommand());
}
