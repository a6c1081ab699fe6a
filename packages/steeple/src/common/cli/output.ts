/**
 * How CLI commands print results: for people (`-output pretty`, the default, SPIRE's
 * word for it; `text` is accepted too) as aligned `Label : value` blocks or tables, or
 * for programs (`-output json`) as one JSON document.
 * @module
 */
import { InvalidArgumentError, Option } from 'commander';

/** Output formats; SPIRE names them `pretty` and `json`. */
export const OUTPUT_FORMATS = ['pretty', 'json'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/**
 * Reads an `-output` value (`pretty`, `text` or `json`, any case).
 * @throws InvalidArgumentError, which commander reports as `option '--output <format>' argument 'yaml' is invalid. …`
 */
export function parseOutputFormat(value: string): OutputFormat {
  const lower = value.toLowerCase();
  if (lower === 'json') return 'json';
  if (lower === 'pretty' || lower === 'text') return 'pretty';
  throw new InvalidArgumentError(`${JSON.stringify(value)} is not an output format; use "pretty" or "json"`);
}

/** The `-output` option every read command declares, so they all spell and parse it alike. */
export function createOutputOption(): Option {
  return new Option('--output <format>', 'output format: pretty or json')
    .argParser(parseOutputFormat)
    .default('pretty' as OutputFormat);
}

/** Where output goes; default `process.stdout`. */
export interface OutputTarget {
  write(text: string): unknown;
}

/**
 * Prints `value` in the chosen format: JSON (two-space indented, one trailing newline)
 * or the text that `pretty` makes of it.
 * @example writeResult(entries, { format: opts.output, pretty: (es) => es.map(formatEntry).join('\n') });
 */
export function writeResult<T>(
  value: T,
  options: { readonly format: OutputFormat; readonly pretty: (value: T) => string; readonly out?: OutputTarget },
): void {
  const out = options.out ?? process.stdout;
  const text = options.format === 'json' ? toJson(value) : options.pretty(value);
  out.write(text.endsWith('\n') ? text : `${text}\n`);
}

/**
 * JSON for results: bigints as strings, bytes as base64, Maps as objects and Sets as
 * arrays; everything with a `toJSON` (Date, SpiffeId) as that gives.
 */
export function toJson(value: unknown): string {
  return JSON.stringify(
    value,
    function replace(this: Record<string, unknown>, key: string, v: unknown) {
      const original = this[key]; // before toJSON, which turns a Buffer into { type, data }
      if (original instanceof Uint8Array) {
        return Buffer.from(original.buffer, original.byteOffset, original.byteLength).toString('base64');
      }
      if (typeof v === 'bigint') return v.toString();
      if (v instanceof Map) return Object.fromEntries(v);
      if (v instanceof Set) return [...v];
      return v;
    },
    2,
  );
}

/** A row of {@link formatKeyValues}: a label and one value, or several (each printed on its own line, as SPIRE does for selectors). */
export type KeyValueRow = readonly [label: string, value: string | number | boolean | readonly string[] | undefined];

/**
 * SPIRE's block style, labels padded so the colons line up; rows whose value is
 * `undefined` or an empty list are left out.
 * @example formatKeyValues([['Entry ID', id], ['SPIFFE ID', spiffeId], ['Selector', ['unix:uid:1000', 'unix:gid:0']]])
 * // Entry ID  : 5f0c…
 * // SPIFFE ID : spiffe://example.org/web
 * // Selector  : unix:uid:1000
 * // Selector  : unix:gid:0
 */
export function formatKeyValues(rows: readonly KeyValueRow[]): string {
  const lines: [string, string][] = [];
  for (const [label, value] of rows) {
    if (value === undefined) continue;
    const values = Array.isArray(value) ? value : [String(value)];
    for (const v of values) lines.push([label, v]);
  }
  const width = Math.max(0, ...lines.map(([label]) => label.length));
  return lines.map(([label, v]) => `${label.padEnd(width)} : ${v}`).join('\n');
}

/**
 * A plain text table: a header row, then one row per item, columns separated by two spaces
 * and padded to their widest cell (the last column is not padded, so lines have no trailing blanks).
 */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    widths
      .map((w, i) => (i === widths.length - 1 ? (cells[i] ?? '') : (cells[i] ?? '').padEnd(w)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}
