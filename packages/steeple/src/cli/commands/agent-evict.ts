/**
 * `steeple server agent evict -spiffeID`: deletes the agent; it must attest again (which also
 * lifts a ban).
 * @module
 */
import { Command } from 'commander';
import { createOutputOption, type OutputFormat } from '../../common/cli/output.js';
import { CliError, withAdminClient, withSocketPath } from '../admin-command.js';
import { printJson, printText } from '../command-output.js';

interface Options {
  readonly spiffeID?: string;
  readonly socketPath: string;
  readonly output: OutputFormat;
}

export function agentEvictCommand(): Command {
  const command = new Command('evict')
    .description('Evicts an attested agent: it must attest again')
    .option('--spiffeID <id>', 'the SPIFFE ID of the agent');
  withSocketPath(command).addOption(createOutputOption());
  return command.action(async (opts: Options) => {
    if (opts.spiffeID === undefined) throw new CliError('-spiffeID is required');
    const spiffeId = opts.spiffeID;
    await withAdminClient(opts.socketPath, (admin) => admin.agents.deleteAgent({ spiffeId }));
    if (opts.output === 'json') printJson({ spiffe_id: spiffeId, evicted: true });
    else printText('Agent evicted successfully');
  });
}
