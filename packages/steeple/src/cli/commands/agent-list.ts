/**
 * `steeple server agent list`: attested agents matching the filters.
 * @module
 */
import { Command } from 'commander';
import { createOutputOption, type OutputFormat } from '../../common/cli/output.js';
import { type Agent, AgentSchema } from '../../gen/steeple/server/v1/agent_pb.js';
import { withAdminClient, withSocketPath } from '../admin-command.js';
import { type AgentFilterFlags, addAgentFilterOptions, agentFilterFromFlags } from '../agent-filter-flags.js';
import { formatAgent } from '../agent-format.js';
import { printJson, printText, protoJson } from '../command-output.js';

const PAGE_SIZE = 1000;

interface Options extends AgentFilterFlags {
  readonly socketPath: string;
  readonly output: OutputFormat;
}

export function agentListCommand(): Command {
  const command = new Command('list').description('Lists attested agents');
  addAgentFilterOptions(command);
  withSocketPath(command).addOption(createOutputOption());
  return command.action(async (opts: Options) => {
    const filter = agentFilterFromFlags(opts);
    const agents = await withAdminClient(opts.socketPath, async (admin) => {
      const all: Agent[] = [];
      let pageToken = '';
      do {
        const page = await admin.agents.listAgents({ filter, pageSize: PAGE_SIZE, pageToken });
        all.push(...page.agents);
        pageToken = page.nextPageToken;
      } while (pageToken !== '');
      return all;
    });
    if (opts.output === 'json') {
      printJson({ agents: agents.map((a) => protoJson(AgentSchema, a)) });
    } else if (agents.length === 0) {
      printText('No attested agents found');
    } else {
      const head = `Found ${agents.length} attested ${agents.length === 1 ? 'agent' : 'agents'}:`;
      printText([head, ...agents.map((a) => formatAgent(a))].join('\n\n'));
    }
  });
}
