/**
 * `steeple server bundle list`: the stored bundles of other trust domains.
 * @module
 */
import { Command, Option } from 'commander';
import { createOutputOption, type OutputFormat } from '../../common/cli/output.js';
import { type Bundle, BundleSchema } from '../../gen/steeple/types/v1/bundle_pb.js';
import { oneOf, withAdminClient, withSocketPath } from '../admin-command.js';
import { BUNDLE_FORMATS, type BundleFormat, formatBundle } from '../bundle-format.js';
import { printJson, printText, protoJson } from '../command-output.js';

interface Options {
  readonly id?: string;
  readonly format: BundleFormat;
  readonly socketPath: string;
  readonly output: OutputFormat;
}

const RULE = '*'.repeat(40);

export function bundleListCommand(): Command {
  const command = new Command('list')
    .description('Lists the bundles of federated trust domains')
    .option('--id <trust-domain>', 'only the bundle of this trust domain')
    .addOption(new Option('--format <format>', 'pem or spiffe').argParser(oneOf(BUNDLE_FORMATS)).default('pem'));
  withSocketPath(command).addOption(createOutputOption());
  return command.action(async (opts: Options) => {
    const bundles = await withAdminClient(opts.socketPath, async (admin) => {
      if (opts.id !== undefined) {
        const { bundle } = await admin.bundles.getFederatedBundle({ trustDomain: opts.id });
        return bundle ? [bundle] : [];
      }
      const all: Bundle[] = [];
      let pageToken = '';
      do {
        const page = await admin.bundles.listFederatedBundles({ pageSize: 100, pageToken });
        all.push(...page.bundles);
        pageToken = page.nextPageToken;
      } while (pageToken !== '');
      return all;
    });
    if (opts.output === 'json') {
      printJson({ bundles: bundles.map((b) => protoJson(BundleSchema, b)) });
    } else if (bundles.length === 0) {
      printText('No federated bundles');
    } else {
      printText(bundles.map((b) => `${RULE}\n* ${b.trustDomain}\n${RULE}\n${formatBundle(b, opts.format)}`).join('\n'));
    }
  });
}
