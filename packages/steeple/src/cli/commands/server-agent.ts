/**
 * `steeple server agent …`: attested agents.
 * @module
 */
import { Command } from 'commander';
import { agentBanCommand } from './agent-ban.js';
import { agentCountCommand } from './agent-count.js';
import { agentEvictCommand } from './agent-evict.js';
import { agentListCommand } from './agent-list.js';
import { agentShowCommand } from './agent-show.js';

export function serverAgentCommand(): Command {
  return new Command('agent')
    .description('Manage attested agents')
    .addCommand(agentListCommand())
    .addCommand(agentShowCommand())
    .addCommand(agentBanCommand())
    .addCommand(agentEvictCommand())
    .addCommand(agentCountCommand());
}
