import { readFileSync } from 'node:fs';
import { Command } from 'commander';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

export function buildProgram(): Command {
  const program = new Command('steeple')
    .description('SPIFFE workload identity: server, agent and mTLS proxy')
    .version(pkg.version, '-v, --version', 'print the version')
    .showHelpAfterError();
  return program;
}

const isMain = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop() ?? '');
if (isMain) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      console.error(`steeple: ${(err as Error).message}`);
      process.exit(1);
    });
}
