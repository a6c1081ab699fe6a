/**
 * `-output json` for API messages: the protobuf JSON mapping with the proto field names
 * (`spiffe_id`, `parent_id`, as SPIRE's CLI prints them) and every field present, so scripts
 * can rely on the keys. 64-bit integers are strings, as the mapping says.
 * @module
 */
import { type DescMessage, type MessageShape, toJson } from '@bufbuild/protobuf';

/** The message as a JSON value. */
export function protoJson<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): unknown {
  return toJson(schema, message, { useProtoFieldName: true, alwaysEmitImplicit: true });
}

/** Writes `value` as indented JSON with one trailing newline. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Writes text with exactly one trailing newline. */
export function printText(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}
