/**
 * `steeple server agent show -spiffeID`: one attested agent with its node selectors.
 * @module
 */
import { Command } from 'commander';
import { createOutputOption, type OutputFormat } from '../../common/cli/output.js';
import { AgentSchema } from '../../gen/steeple/server/v1/agent_pb.js';
import { CliError, withAdminClient, withSocketPath } from '../admin-command.js';
import { formatAgent } from '../agent-format.js';
import { printJson, printText, protoJson } from '../command-output.js';

interface Options {
  readonly spiffeID?: string;
  readonly socketPath: string;
  readonly output: OutputFormat;
}

export function agentShowCommand(): Command {
  const command = new Command('show')
    .description('Shows an attested agent')
    .option('--spiffeID <id>', 'the SPIFFE ID of the agent');
  withSocketPath(command).addOption(createOutputOption());
  return command.action(async (opts: Options) => {
    if (opts.spiffeID === undefined) throw new CliError('-spiffeID is required');
    const spiffeId = opts.spiffeID;
    const { agent } = await withAdminClient(opts.socketPath, (admin) => admin.agents.getAgent({ spiffeId }));
    if (agent === undefined) throw new CliError(`the server returned no agent for ${spiffeId}`);
    if (opts.output === 'json') printJson(protoJson(AgentSchema, agent));
    else printText(`Found an attested agent given its SPIFFE ID\n\n${formatAgent(agent, { selectors: true })}`);
  });
}
