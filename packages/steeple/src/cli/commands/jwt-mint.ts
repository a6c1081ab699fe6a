/**
 * `steeple server jwt mint`: a JWT-SVID for any ID in the trust domain.
 * @module
 */
import { Command } from 'commander';
import { createOutputOption, type OutputFormat } from '../../common/cli/output.js';
import { writeFileAtomic } from '../../common/fs-secure.js';
import { JwtSvidSchema } from '../../gen/steeple/types/v1/svid_pb.js';
import { CliError, collect, parseTtl, withAdminClient, withSocketPath } from '../admin-command.js';
import { printJson, printText, protoJson } from '../command-output.js';

interface Options {
  readonly spiffeID?: string;
  readonly audience?: string[];
  readonly ttl: number;
  readonly write?: string;
  readonly socketPath: string;
  readonly output: OutputFormat;
}

export function jwtCommand(): Command {
  const mint = new Command('mint')
    .description('Mints a JWT-SVID')
    .option('--spiffeID <id>', 'the SPIFFE ID of the JWT-SVID (its sub claim)')
    .option('--audience <aud>', 'an audience (aud claim); repeat for several', collect)
    .option('--ttl <seconds>', "lifetime, in seconds or as 5m (default: the server's)", parseTtl, 0)
    .option('--write <file>', 'write the token to this file (0600) instead of printing it');
  withSocketPath(mint).addOption(createOutputOption());
  mint.action(async (opts: Options) => {
    if (opts.spiffeID === undefined) throw new CliError('-spiffeID is required');
    if ((opts.audience ?? []).length === 0) throw new CliError('at least one -audience is required');
    const spiffeId = opts.spiffeID;
    const { svid } = await withAdminClient(opts.socketPath, (admin) =>
      admin.svids.mintJwtSvid({ spiffeId, audience: opts.audience ?? [], ttlSeconds: opts.ttl }),
    );
    if (svid === undefined) throw new CliError('the server returned no SVID');
    if (opts.write !== undefined) {
      await writeFileAtomic(opts.write, `${svid.token}\n`, { mode: 0o600 });
      if (opts.output === 'json')
        printJson({ spiffe_id: svid.spiffeId, expires_at: svid.expiresAt.toString(), path: opts.write });
      else printText(`JWT-SVID written to ${opts.write}`);
      return;
    }
    if (opts.output === 'json') printJson(protoJson(JwtSvidSchema, svid));
    else printText(svid.token);
  });
  return new Command('jwt').description('Mint JWT-SVIDs').addCommand(mint);
}
