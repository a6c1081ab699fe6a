/**
 * The demos run admin commands (`steeple server entry create …`) through the real CLI, in
 * their own process: the same code as typing them, without starting a process for each.
 * @module
 */

let cli: Promise<typeof import('../cli/main.js')> | undefined;

/** Loads the CLI; call it early to load it while something else starts. */
export function loadCli(): Promise<typeof import('../cli/main.js')> {
  cli ??= import('../cli/main.js');
  return cli;
}

// Commands share one output (the CLI's), so they run one at a time.
let queue: Promise<unknown> = Promise.resolve();

/** Runs `steeple …args` and resolves to its standard output; rejects with its error output when it fails. */
export function steeple(...args: string[]): Promise<string> {
  const run = async () => {
    const { runCli } = await loadCli();
    let out = '';
    let err = '';
    const code = await runCli(args, {
      out: (t) => {
        out += t;
      },
      err: (t) => {
        err += t;
      },
    });
    if (code !== 0) throw new Error(`steeple ${args.join(' ')} failed: ${(err || out).trim()}`);
    return out;
  };
  const result = queue.then(run, run);
  queue = result.catch(() => undefined);
  return result;
}
