/**
 * `steeple server agent count`: how many attested agents match the filters.
 * @module
 */
import { Command } from 'commander';
import { createOutputOption, type OutputFormat } from '../../common/cli/output.js';
import { withAdminClient, withSocketPath } from '../admin-command.js';
import { type AgentFilterFlags, addAgentFilterOptions, agentFilterFromFlags } from '../agent-filter-flags.js';
import { printJson, printText } from '../command-output.js';

interface Options extends AgentFilterFlags {
  readonly socketPath: string;
  readonly output: OutputFormat;
}

export function agentCountCommand(): Command {
  const command = new Command('count').description('Counts attested agents');
  addAgentFilterOptions(command);
  withSocketPath(command).addOption(createOutputOption());
  return command.action(async (opts: Options) => {
    const { count } = await withAdminClient(opts.socketPath, (admin) =>
      admin.agents.countAgents({ filter: agentFilterFromFlags(opts) }),
    );
    if (opts.output === 'json') printJson({ count: Number(count) });
    else printText(`${count} attested ${count === 1n ? 'agent' : 'agents'}`);
  });
}
