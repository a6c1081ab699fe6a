/**
 * `steeple server agent ban -spiffeID`: the agent can no longer renew or attest until evicted.
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

export function agentBanCommand(): Command {
  const command = new Command('ban')
    .description('Bans an attested agent: it cannot renew or re-attest until it is evicted')
    .option('--spiffeID <id>', 'the SPIFFE ID of the agent');
  withSocketPath(command).addOption(createOutputOption());
  return command.action(async (opts: Options) => {
    if (opts.spiffeID === undefined) throw new CliError('-spiffeID is required');
    const spiffeId = opts.spiffeID;
    await withAdminClient(opts.socketPath, (admin) => admin.agents.banAgent({ spiffeId }));
    if (opts.output === 'json') printJson({ spiffe_id: spiffeId, banned: true });
    else printText('Agent banned successfully');
  });
}
