/**
 * Where command output goes, and `-output json` for API messages: the protobuf JSON mapping
 * with the proto field names (`spiffe_id`, `parent_id`, as SPIRE's CLI prints them) and every
 * field present, so scripts can rely on the keys. 64-bit integers are strings, as the mapping says.
 * @module
 */
import { type DescMessage, type MessageShape, toJson } from '@bufbuild/protobuf';

/** The streams a CLI run writes to; standard output and error unless runCli is given others. */
export interface CliOutput {
  out(text: string): void;
  err(text: string): void;
}

export const processOutput: CliOutput = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
};

let current: CliOutput = processOutput;

/** Runs `fn` with command output going to `output`. */
export async function withCliOutput<T>(output: CliOutput, fn: () => Promise<T>): Promise<T> {
  const previous = current;
  current = output;
  try {
    return await fn();
  } finally {
    current = previous;
  }
}

/** The output of the current run. */
export function cliOutput(): CliOutput {
  return current;
}

/** The message as a JSON value. */
export function protoJson<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): unknown {
  return toJson(schema, message, { useProtoFieldName: true, alwaysEmitImplicit: true });
}

/** Writes `value` as indented JSON with one trailing newline. */
export function printJson(value: unknown): void {
  current.out(`${JSON.stringify(value, null, 2)}\n`);
}

/** Writes text with exactly one trailing newline. */
export function printText(text: string): void {
  current.out(text.endsWith('\n') ? text : `${text}\n`);
}
