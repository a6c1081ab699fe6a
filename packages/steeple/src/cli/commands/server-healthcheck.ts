/**
 * `steeple server healthcheck`: exit 0 and "Server is healthy." when every component is, exit 1
 * naming the unhealthy ones otherwise (also when the server cannot be reached).
 * @module
 */
import { Command } from 'commander';
import { createOutputOption, formatKeyValues, type OutputFormat } from '../../common/cli/output.js';
import { CheckResponseSchema, ServingStatus } from '../../gen/steeple/server/v1/health_pb.js';
import { CliError, withAdminClient, withSocketPath } from '../admin-command.js';
import { printJson, printText, protoJson } from '../command-output.js';

interface Options {
  readonly verbose?: boolean;
  readonly socketPath: string;
  readonly output: OutputFormat;
}

export function healthcheckCommand(): Command {
  const command = new Command('healthcheck')
    .description('Checks that the server is up and healthy')
    .option('--verbose', 'print the state of every component');
  withSocketPath(command).addOption(createOutputOption());
  return command.action(async (opts: Options) => {
    const res = await withAdminClient(opts.socketPath, (admin) => admin.health.check({}));
    const healthy = res.status === ServingStatus.SERVING;
    if (opts.output === 'json') {
      printJson(protoJson(CheckResponseSchema, res));
    } else {
      if (opts.verbose) {
        printText(
          formatKeyValues(res.components.map((c) => [c.name, c.healthy ? 'healthy' : `unhealthy: ${c.message}`])),
        );
      }
      if (healthy) printText('Server is healthy.');
    }
    if (!healthy) {
      const broken = res.components.filter((c) => !c.healthy).map((c) => `${c.name}: ${c.message}`);
      throw new CliError(`Server is unhealthy: ${broken.join('; ') || 'no reason given'}`);
    }
  });
}
