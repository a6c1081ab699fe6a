/**
 * What the live sources (X509Source, JwtSource, WorkloadApiBundleSource) share: owning
 * or borrowing a client, running watches, waiting for the first update with a timeout,
 * listeners, and closing.
 * @module
 */
import { type Clock, systemClock, type TimerHandle } from '../clock.js';
import { WorkloadApiError } from '../errors.js';
import {
  createWorkloadApiClient,
  type WatchHandler,
  type WorkloadApiClient,
  type WorkloadApiClientOptions,
} from './client.js';

/** Options every live source takes. Without `client`, the client options make one that the source owns. */
export interface WorkloadApiSourceOptions extends WorkloadApiClientOptions {
  /** Use this client; the source then leaves it open on close. Default: a new client the source closes. */
  readonly client?: WorkloadApiClient;
  /**
   * Reject `create()` with `ERR_WORKLOADAPI_TIMEOUT` when no valid update arrived within
   * this many ms. Default: wait as long as it takes (as go-spiffe does), retrying with backoff.
   */
  readonly timeoutMs?: number;
  /** Aborts `create()` (it rejects with the signal's reason). */
  readonly signal?: AbortSignal;
}

/** A set of listeners; a throwing listener does not stop the others. */
export class Listeners<T> {
  readonly #fns = new Set<(value: T) => void>();

  add(fn: (value: T) => void): () => void {
    if (typeof fn !== 'function') throw new TypeError('listener must be a function');
    // Wrapped so that adding the same function twice gives two independent subscriptions.
    const entry = (value: T): void => fn(value);
    this.#fns.add(entry);
    return () => {
      this.#fns.delete(entry);
    };
  }

  emit(value: T): void {
    for (const fn of [...this.#fns]) {
      try {
        fn(value);
      } catch {
        // A listener's bug must not break the source or the other listeners.
      }
    }
  }
}

export class SourceLifecycle {
  readonly client: WorkloadApiClient;
  readonly errors = new Listeners<Error>();
  readonly #what: string;
  readonly #ownsClient: boolean;
  readonly #clock: Clock;
  readonly #stop = new AbortController();
  readonly #watches: Promise<void>[] = [];
  #lastError: Error | undefined;

  constructor(what: string, options: WorkloadApiSourceOptions) {
    this.#what = what;
    this.client = options.client ?? createWorkloadApiClient(options);
    this.#ownsClient = options.client === undefined;
    this.#clock = options.clock ?? systemClock;
  }

  get closed(): boolean {
    return this.#stop.signal.aborted;
  }

  assertOpen(): void {
    if (this.closed) throw new WorkloadApiError('ERR_WORKLOADAPI_CLOSED', `${this.#what} is closed`);
  }

  /**
   * Runs a watch until close, applying every update. Resolves at the first update that
   * `apply` accepts (it throws to refuse one); rejects when the watch ends before that.
   */
  start<T>(
    watch: (handler: WatchHandler<T>, signal: AbortSignal) => Promise<void>,
    apply: (value: T) => void,
  ): Promise<void> {
    let resolveFirst!: () => void;
    let rejectFirst!: (err: unknown) => void;
    const first = new Promise<void>((resolve, reject) => {
      resolveFirst = resolve;
      rejectFirst = reject;
    });
    // Nobody may wait for it (close before the first update); that must not be an unhandled rejection.
    first.catch(() => {});
    const run = watch(
      {
        onUpdate: (value) => {
          apply(value);
          resolveFirst();
        },
        onError: (err) => {
          this.#lastError = err;
          this.errors.emit(err);
        },
      },
      this.#stop.signal,
    );
    this.#watches.push(
      run.then(
        () =>
          rejectFirst(
            new WorkloadApiError('ERR_WORKLOADAPI_CLOSED', `${this.#what} was closed before its first update`),
          ),
        (err) => rejectFirst(err),
      ),
    );
    return first;
  }

  /** Waits for every first update, at most `timeoutMs`; on failure closes and rethrows. */
  async ready(
    firsts: readonly Promise<void>[],
    timeoutMs: number | undefined,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    if (timeoutMs !== undefined && !(typeof timeoutMs === 'number' && timeoutMs >= 0)) {
      await this.close();
      throw new TypeError(`${this.#what}: timeoutMs must be a non-negative number`);
    }
    try {
      await new Promise<void>((resolve, reject) => {
        let timer: TimerHandle | undefined;
        const cleanup = (): void => {
          timer?.cancel();
          signal?.removeEventListener('abort', onAbort);
        };
        const onAbort = (): void => {
          cleanup();
          reject(signal?.reason);
        };
        if (signal?.aborted) {
          onAbort();
          return;
        }
        signal?.addEventListener('abort', onAbort, { once: true });
        if (timeoutMs !== undefined) {
          timer = this.#clock.setTimer(() => {
            cleanup();
            const last = this.#lastError;
            reject(
              new WorkloadApiError(
                'ERR_WORKLOADAPI_TIMEOUT',
                `${this.#what}: no valid update from the Workload API within ${timeoutMs} ms${last ? `; last error: ${last.message}` : ''}`,
                last ? { cause: last } : undefined,
              ),
            );
          }, timeoutMs);
        }
        Promise.all(firsts).then(
          () => {
            cleanup();
            resolve();
          },
          (err) => {
            cleanup();
            reject(err);
          },
        );
      });
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  /** Stops the watches and, when the source made its client, closes it. */
  async close(): Promise<void> {
    if (!this.closed) {
      this.#stop.abort(new WorkloadApiError('ERR_WORKLOADAPI_CLOSED', `${this.#what} is closed`));
    }
    await Promise.all(this.#watches);
    if (this.#ownsClient) await this.client.close();
  }
}
