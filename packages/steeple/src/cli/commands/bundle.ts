/**
 * `steeple server bundle …`: trust bundles.
 * @module
 */
import { Command } from 'commander';
import { bundleDeleteCommand } from './bundle-delete.js';
import { bundleListCommand } from './bundle-list.js';
import { bundleSetCommand } from './bundle-set.js';
import { bundleShowCommand } from './bundle-show.js';

export function bundleCommand(): Command {
  return new Command('bundle')
    .description('Manage trust bundles')
    .addCommand(bundleShowCommand())
    .addCommand(bundleListCommand())
    .addCommand(bundleSetCommand())
    .addCommand(bundleDeleteCommand());
}
