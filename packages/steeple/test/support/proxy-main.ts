/**
 * Runs `steeple proxy …` as its own process for the end-to-end tests, with a program
 * built from registerProxyCommands only (so the tests do not depend on cli/main.ts).
 * Usage: node --conditions=steeple-source --import tsx proxy-main.ts proxy run -config FILE
 */
import { Command } from 'commander';
import { registerProxyCommands } from '../../src/cli/commands/proxy.js';
import { normalizeArgvFor } from '../../src/common/cli/argv.js';

const program = new Command('steeple').exitOverride();
registerProxyCommands(program);
try {
  await program.parseAsync(normalizeArgvFor(program, process.argv.slice(2)), { from: 'user' });
} catch (err) {
  const code = (err as { exitCode?: number }).exitCode;
  if (code === undefined) process.stderr.write(`steeple: ${(err as Error).message}\n`);
  process.exitCode = code ?? 1;
}
