/**
 * The demos' child processes: `steeple … run` and the sample apps, each a
 * `node --conditions=steeple-source --import tsx` process (as another uid when asked), with
 * its JSON log lines kept so the demo can wait for one, and the tail of its output for
 * error messages. A {@link DemoProcesses} group stops them all, in layers.
 * @module
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

export type LogEvent = Record<string, unknown>;

export interface StartOptions {
  /** Extra environment variables. */
  readonly env?: NodeJS.ProcessEnv;
  /** Run as this uid (and the same gid, no supplementary groups); needs root. */
  readonly uid?: number | undefined;
  /** It exits by itself when done (a one-shot command), which is no failure. */
  readonly expectExit?: boolean;
  /** Stop order: higher layers stop first, all of one layer together. Default 2 (after agents 1, servers 0). */
  readonly layer?: number;
}

/** One running process and what it has printed. */
export class DemoProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly events: LogEvent[] = [];
  readonly exited: Promise<number | string>;
  readonly expectExit: boolean;
  readonly layer: number;
  readonly #lines: string[] = [];
  #waiters: { pred: (e: LogEvent) => boolean; done: (e: LogEvent) => void }[] = [];

  constructor(name: string, nodeArgs: readonly string[], options: StartOptions = {}) {
    this.name = name;
    this.expectExit = options.expectExit ?? false;
    this.layer = options.layer ?? 2;
    this.child = spawn(process.execPath, ['--conditions=steeple-source', '--import', 'tsx', ...nodeArgs], {
      env: { ...process.env, ...options.env },
      // stdin stays open: the sample apps exit when it closes (the demo is gone).
      stdio: ['pipe', 'pipe', 'pipe'],
      // Its own process group: Ctrl-C reaches the demo only, which stops everything in order.
      detached: true,
      ...(options.uid !== undefined ? { uid: options.uid, gid: options.uid } : {}),
    });
    this.exited = new Promise((done) => this.child.once('exit', (code, signal) => done(code ?? signal ?? -1)));
    // A spawn failure (EPERM, ENOENT) arrives as 'error' without 'exit'.
    this.child.once('error', (err) => {
      this.#lines.push(`cannot start: ${err.message}`);
      this.child.emit('exit', -1, null);
    });
    this.child.stdin?.on('error', () => undefined);
    const onLine = (line: string) => {
      this.#lines.push(line);
      if (this.#lines.length > 2000) this.#lines.splice(0, 500);
      let event: unknown;
      try {
        event = JSON.parse(line);
      } catch {
        return;
      }
      if (event === null || typeof event !== 'object') return;
      this.events.push(event as LogEvent);
      if (this.events.length > 2000) this.events.splice(0, 500);
      for (const w of [...this.#waiters]) {
        if (w.pred(event as LogEvent)) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          w.done(event as LogEvent);
        }
      }
    };
    createInterface({ input: this.child.stdout! }).on('line', onLine);
    createInterface({ input: this.child.stderr! }).on('line', onLine);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null && this.child.pid !== undefined;
  }

  /** The first event, already printed or still to come, that `pred` accepts. */
  waitFor(pred: (e: LogEvent) => boolean, what: string, timeoutMs = 60_000): Promise<LogEvent> {
    const seen = this.events.find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const fail = (why: string) => {
        this.#waiters = this.#waiters.filter((w) => w.done !== done);
        reject(new Error(`${this.name} ${why} while waiting for ${what}\n${this.tail()}`));
      };
      const timer = setTimeout(() => fail(`took longer than ${timeoutMs / 1000} s`), timeoutMs);
      const done = (e: LogEvent) => {
        clearTimeout(timer);
        resolve(e);
      };
      this.#waiters.push({ pred, done });
      void this.exited.then((code) => {
        clearTimeout(timer);
        fail(`exited (${code})`);
      });
    });
  }

  /** The last lines it printed, for error messages. */
  tail(n = 15): string {
    return `--- last lines of ${this.name} ---\n${this.#lines.slice(-n).join('\n')}`;
  }

  /** SIGTERM, then SIGKILL if it is still running after `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** The processes of one demo run. */
export class DemoProcesses {
  readonly #procs: DemoProcess[] = [];
  #stopping = false;
  #onExit: ((p: DemoProcess, code: number | string) => void) | undefined;

  start(name: string, nodeArgs: readonly string[], options: StartOptions = {}): DemoProcess {
    if (this.#stopping) throw new Error(`not starting ${name}: the demo is stopping`);
    const p = new DemoProcess(name, nodeArgs, options);
    this.#procs.push(p);
    void p.exited.then((code) => {
      if (!this.#stopping && !p.expectExit) this.#onExit?.(p, code);
    });
    return p;
  }

  /** Called when a process exits before {@link stopAll}. */
  onUnexpectedExit(listener: (p: DemoProcess, code: number | string) => void): void {
    this.#onExit = listener;
  }

  get all(): readonly DemoProcess[] {
    return this.#procs;
  }

  /** Stops every process: apps and proxies, then agents, then servers (see {@link StartOptions.layer}). */
  async stopAll(): Promise<void> {
    this.#stopping = true;
    const layers = [...new Set(this.#procs.map((p) => p.layer))].sort((x, y) => y - x);
    for (const layer of layers) {
      await Promise.all(this.#procs.filter((p) => p.layer === layer).map((p) => p.stop()));
    }
  }
}
