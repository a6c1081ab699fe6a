/**
 * Typed errors of the Steeple product (server, agent, proxy). Every error that bad
 * input or bad configuration can cause is a {@link SteepleError} with a stable `code`
 * (documented in docs/errors.md); callers branch on `code`, never on the message.
 * Misuse by the programmer stays a plain `TypeError`. Messages name the offending
 * value and the rule it breaks, and never carry key material or whole tokens.
 *
 * Add a code: extend {@link SteepleErrorCode}, give it a class (or reuse one) and
 * append a row to docs/errors.md under "## steeple (server, agent, proxy)".
 * @module
 */

export type SteepleErrorCode =
  | 'ERR_CONFIG_INVALID'
  | 'ERR_CONFIG_UNREADABLE'
  | 'ERR_ATTESTATION_FAILED'
  | 'ERR_ATTESTATION_DATA_INVALID'
  | 'ERR_CSR_INVALID'
  | 'ERR_SVID_REQUEST_INVALID'
  | 'ERR_CA_NOT_READY'
  | 'ERR_CA_STATE_INVALID'
  | 'ERR_UPSTREAM_AUTHORITY_INVALID'
  | 'ERR_WORKLOAD_ATTESTATION_FAILED'
  | 'ERR_AGENT_NOT_ATTESTED'
  | 'ERR_AGENT_STATE_INVALID';

/** Base class of every product error raised for bad input or configuration. */
export abstract class SteepleError extends Error {
  abstract readonly code: SteepleErrorCode;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** One problem found in a configuration: where it is and what is wrong. */
export interface ConfigIssue {
  /** Dotted key path such as `server.ca_ttl` or `node_attestors[0].type`; empty for the document itself. */
  readonly path: string;
  /** What is wrong, naming the offending value where that is safe (never for secrets). */
  readonly message: string;
  /** 1-based line in the file, when the problem has a place in it. */
  readonly line?: number;
  /** 1-based column in the file, when known. */
  readonly column?: number;
  /** The command-line flag that set this value, when it came from a flag rather than the file. */
  readonly flag?: string;
}

/**
 * Formats one issue as `line 4: server.ca_tll: unknown key (did you mean "ca_ttl"?)`,
 * `ca_ttl (flag -caTTL): "soon" is not a duration …`, or just the message for the whole file.
 */
export function formatConfigIssue(issue: ConfigIssue): string {
  const where = issue.line === undefined ? '' : `line ${issue.line}: `;
  const from = issue.flag === undefined ? '' : ` (flag -${issue.flag})`;
  const what = issue.path === '' ? '' : `${issue.path}${from}: `;
  return `${where}${what}${issue.message}`;
}

/**
 * A configuration cannot be used: `ERR_CONFIG_INVALID` when its content breaks the
 * schema (unknown key, wrong type, bad duration, duplicate key, YAML syntax), and
 * `ERR_CONFIG_UNREADABLE` when the file cannot be read at all.
 */
export class ConfigError extends SteepleError {
  readonly code: 'ERR_CONFIG_INVALID' | 'ERR_CONFIG_UNREADABLE';
  /** The file the configuration came from, when it came from a file. */
  readonly file: string | undefined;
  readonly issues: readonly ConfigIssue[];

  constructor(
    issues: readonly ConfigIssue[],
    options: { file?: string; code?: 'ERR_CONFIG_INVALID' | 'ERR_CONFIG_UNREADABLE'; cause?: unknown } = {},
  ) {
    const source = options.file === undefined ? 'configuration' : `configuration ${options.file}`;
    const head =
      options.code === 'ERR_CONFIG_UNREADABLE'
        ? `cannot read ${source}`
        : `invalid ${source} (${issues.length} ${issues.length === 1 ? 'problem' : 'problems'})`;
    const body = issues.map((issue) => `\n  ${formatConfigIssue(issue)}`).join('');
    super(`${head}:${body}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = options.code ?? 'ERR_CONFIG_INVALID';
    this.file = options.file;
    this.issues = Object.freeze(issues.map((issue) => Object.freeze({ ...issue })));
  }
}
