/**
 * Real processes for the two-cluster test: `steeple … run` and the sample apps, each
 * started with `node --conditions=steeple-source --import tsx`, optionally inside a network
 * namespace (`ip netns exec`) and as another uid (`setpriv`), with their log lines kept so
 * the test can wait for one and print the tail of all of them when something fails.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(new URL('../../../../..', import.meta.url)));
export const MAIN = join(ROOT, 'packages/steeple/src/cli/main.ts');
export const APP = join(ROOT, 'packages/steeple/test/support/two-clusters/app.ts');
const BIN = join(ROOT, 'packages/steeple/bin/steeple');

/** Where a process runs: a network namespace (default: this one) and a uid (default: ours). */
export interface Placement {
  readonly netns?: string | undefined;
  readonly uid?: number | undefined;
}

export type LogEvent = Record<string, unknown>;

/** The argv that runs `nodeArgs` with node at `placement`. */
function command(nodeArgs: readonly string[], placement: Placement): [string, string[]] {
  const node = [process.execPath, '--conditions=steeple-source', '--import', 'tsx', ...nodeArgs];
  // `ip netns exec` and setpriv both exec their command, so the pid we hold is node's own.
  const asUid =
    placement.uid === undefined
      ? node
      : ['setpriv', `--reuid=${placement.uid}`, `--regid=${placement.uid}`, '--clear-groups', ...node];
  const full = placement.netns === undefined ? asUid : ['ip', 'netns', 'exec', placement.netns, ...asUid];
  return [full[0] as string, full.slice(1)];
}

/** One running process and what it has printed. */
export class ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** Every line from stdout and stderr, in order. */
  readonly lines: string[] = [];
  /** The lines that parsed as JSON objects (log records, app events). */
  readonly events: LogEvent[] = [];
  readonly exited: Promise<number | string>;
  #waiters: { pred: (e: LogEvent) => boolean; done: (e: LogEvent) => void }[] = [];
  #lineListeners = new Set<(e: LogEvent) => void>();

  constructor(name: string, nodeArgs: readonly string[], placement: Placement, env: NodeJS.ProcessEnv) {
    this.name = name;
    const [file, args] = command(nodeArgs, placement);
    this.child = spawn(file, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    this.exited = new Promise((done) => this.child.once('exit', (code, signal) => done(code ?? signal ?? -1)));
    const onLine = (line: string) => {
      this.lines.push(line);
      if (this.lines.length > 5000) this.lines.splice(0, 1000);
      let event: LogEvent;
      try {
        const parsed: unknown = JSON.parse(line);
        if (parsed === null || typeof parsed !== 'object') return;
        event = parsed as LogEvent;
      } catch {
        return;
      }
      this.events.push(event);
      for (const l of this.#lineListeners) l(event);
      for (const w of [...this.#waiters]) {
        if (w.pred(event)) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          w.done(event);
        }
      }
    };
    createInterface({ input: this.child.stdout! }).on('line', onLine);
    createInterface({ input: this.child.stderr! }).on('line', onLine);
    // A process that dies must not take the test runner down with an EPIPE on its stdin.
    this.child.stdin?.on('error', () => undefined);
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Calls `listener` for every JSON line from now on; returns an unsubscribe. */
  onEvent(listener: (e: LogEvent) => void): () => void {
    this.#lineListeners.add(listener);
    return () => this.#lineListeners.delete(listener);
  }

  /** The first event (already seen or still to come) that `pred` accepts. */
  waitFor(pred: (e: LogEvent) => boolean, what: string, timeoutMs = 60_000): Promise<LogEvent> {
    const seen = this.events.find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolvePromise, reject) => {
      const fail = (why: string) => {
        this.#waiters = this.#waiters.filter((w) => w.done !== done);
        reject(new Error(`${this.name}: ${why} waiting for ${what}\n${this.tail()}`));
      };
      const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);
      const done = (e: LogEvent) => {
        clearTimeout(timer);
        resolvePromise(e);
      };
      this.#waiters.push({ pred, done });
      void this.exited.then((code) => {
        clearTimeout(timer);
        fail(`exited (${code})`);
      });
    });
  }

  /** The last lines printed, for failure messages. */
  tail(n = 30): string {
    return `--- last lines of ${this.name} ---\n${this.lines.slice(-n).join('\n')}`;
  }

  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** The processes of a test, stopped together (last started first). */
export class ProcessGroup {
  readonly #procs: ManagedProcess[] = [];

  /** Starts `node … script args` at `placement`. */
  start(name: string, script: string, args: readonly string[], placement: Placement = {}, env: NodeJS.ProcessEnv = {}) {
    const p = new ManagedProcess(name, [script, ...args], placement, env);
    this.#procs.push(p);
    return p;
  }

  /** Tails of every process, for a failure message. */
  tails(n = 15): string {
    return this.#procs.map((p) => p.tail(n)).join('\n');
  }

  async stopAll(): Promise<void> {
    for (const p of [...this.#procs].reverse()) await p.stop();
  }
}

/** Result of one `steeple` CLI run. */
export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the `steeple` CLI (in this network namespace: it only talks to Unix sockets). */
export function steeple(...args: string[]): Promise<CliResult> {
  return new Promise((done) => {
    execFile(BIN, args, { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
      done({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

/** Runs the `steeple` CLI and returns its stdout; throws with its output when it fails. */
export async function steepleOk(...args: string[]): Promise<string> {
  const r = await steeple(...args);
  if (r.code !== 0) throw new Error(`steeple ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}
