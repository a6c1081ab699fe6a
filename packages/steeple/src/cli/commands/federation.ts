/**
 * `steeple server federation …`: relationships with other trust domains.
 * @module
 */
import { Command } from 'commander';
import { federationCreateCommand } from './federation-create.js';
import { federationDeleteCommand } from './federation-delete.js';
import { federationListCommand } from './federation-list.js';
import { federationRefreshCommand } from './federation-refresh.js';
import { federationShowCommand } from './federation-show.js';
import { federationUpdateCommand } from './federation-update.js';

export function federationCommand(): Command {
  return new Command('federation')
    .description('Manage federation relationships with other trust domains')
    .addCommand(federationCreateCommand())
    .addCommand(federationListCommand())
    .addCommand(federationShowCommand())
    .addCommand(federationUpdateCommand())
    .addCommand(federationDeleteCommand())
    .addCommand(federationRefreshCommand());
}
