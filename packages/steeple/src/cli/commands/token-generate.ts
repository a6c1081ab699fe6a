/**
 * `steeple server token generate`: a single-use join token for attesting one agent; with
 * `-spiffeID`, also an alias entry for the agent it will attest (as SPIRE does).
 * @module
 */
import { Command } from 'commander';
import { createOutputOption, type OutputFormat } from '../../common/cli/output.js';
import { CreateJoinTokenResponseSchema } from '../../gen/steeple/server/v1/agent_pb.js';
import { parseTtl, withAdminClient, withSocketPath } from '../admin-command.js';
import { printJson, printText, protoJson } from '../command-output.js';

interface Options {
  readonly spiffeID?: string;
  readonly ttl: number;
  readonly socketPath: string;
  readonly output: OutputFormat;
}

export function tokenCommand(): Command {
  const generate = new Command('generate')
    .description('Generates a join token')
    .option('--spiffeID <id>', 'an extra SPIFFE ID for the agent that attests with the token (an alias entry)')
    .option('--ttl <seconds>', 'how long the token is valid, in seconds or as 10m', parseTtl, 600);
  withSocketPath(generate).addOption(createOutputOption());
  generate.action(async (opts: Options) => {
    const res = await withAdminClient(opts.socketPath, (admin) =>
      admin.agents.createJoinToken({
        ttlSeconds: opts.ttl,
        ...(opts.spiffeID !== undefined ? { agentAliasSpiffeId: opts.spiffeID } : {}),
      }),
    );
    if (opts.output === 'json') printJson(protoJson(CreateJoinTokenResponseSchema, res));
    else printText(`Token: ${res.token}`);
  });
  return new Command('token').description('Manage join tokens').addCommand(generate);
}
