/**
 * The policy in force: loaded from a YAML file and reloaded when it changes. The schema
 * and the evaluator live in the SDK (`@steeple/spiffe/policy`); this module adds the
 * YAML, the line numbers in errors and the hot reload. A file that
 * fails to load leaves the last good policy in force and says why; connections are never
 * dropped by a reload (each request reads the evaluator current at that moment).
 * @module
 */
import { readFileSync } from 'node:fs';
import { PolicyEvaluator, type PolicyFile, PolicyFileSchema } from '@steeple/spiffe/policy';
import { parseYamlConfig } from '../../common/config/load-yaml.js';
import { ConfigError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import { type FileWatch, watchFiles } from '../files/watch-files.js';

/**
 * Reads and validates a policy file.
 * @throws ConfigError naming every broken field with its line.
 */
export function loadPolicyFile(file: string): PolicyFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    const reason =
      (cause as NodeJS.ErrnoException).code === 'ENOENT' ? 'file does not exist' : (cause as Error).message;
    throw new ConfigError([{ path: '', message: reason }], { file, code: 'ERR_CONFIG_UNREADABLE', cause });
  }
  return parseYamlConfig(text, PolicyFileSchema, { file });
}

export interface PolicyStoreOptions {
  readonly file: string;
  readonly pollIntervalMs: number;
  readonly logger: Logger;
  /** Called after every reload attempt (for metrics). */
  readonly onReload?: (ok: boolean) => void;
}

/** Holds the current {@link PolicyEvaluator} and swaps it when the file changes. */
export class PolicyStore {
  #current: PolicyEvaluator;
  #text: string;
  #watch: FileWatch | undefined;
  readonly #options: PolicyStoreOptions;

  private constructor(options: PolicyStoreOptions, current: PolicyEvaluator, text: string) {
    this.#options = options;
    this.#current = current;
    this.#text = text;
  }

  /** Loads the file (a broken file at start-up is an error) and starts watching it. */
  static open(options: PolicyStoreOptions): PolicyStore {
    const text = readFileSync(options.file, 'utf8');
    const store = new PolicyStore(options, PolicyEvaluator.fromFile(loadPolicyFile(options.file)), text);
    store.#watch = watchFiles([options.file], () => store.reload(), { pollIntervalMs: options.pollIntervalMs });
    options.logger.info({ file: options.file, policies: store.#current.policies.length }, 'policy loaded');
    return store;
  }

  /** The evaluator in force now. */
  get current(): PolicyEvaluator {
    return this.#current;
  }

  /** Re-reads the file now; returns whether a new policy is in force. */
  reload(): boolean {
    const { file, logger } = this.#options;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      logger.error({ file, reason: (err as Error).message }, 'policy file unreadable; keeping the last good policy');
      this.#options.onReload?.(false);
      return false;
    }
    if (text === this.#text) return false;
    try {
      const next = PolicyEvaluator.fromFile(loadPolicyFile(file));
      this.#current = next;
      this.#text = text;
      logger.info({ file, policies: next.policies.length }, 'policy reloaded');
      this.#options.onReload?.(true);
      return true;
    } catch (err) {
      const reason = err instanceof ConfigError ? err.message : (err as Error).message;
      logger.error({ file, reason }, 'policy file rejected; keeping the last good policy');
      this.#options.onReload?.(false);
      return false;
    }
  }

  close(): void {
    this.#watch?.close();
  }
}
