/**
 * Command-line flags override configuration keys (`steeple server run -config s.yaml
 * -trustDomain example.org`). Flags are written onto the raw object before validation,
 * so a flag value is checked by the same schema as the file, and an error names the flag.
 * @module
 */

/** One flag's value for one configuration key. */
export interface FlagOverride {
  /** Dotted key path in the configuration, e.g. `trust_domain` or `health_checks.bind_port`. */
  readonly key: string;
  /** The flag's name without dashes, e.g. `trustDomain`; named in errors about the value. */
  readonly flag: string;
  /** The flag's value; `undefined` (flag not given) leaves the file's value alone. */
  readonly value: unknown;
}

/**
 * Returns a copy of `raw` with each given flag's value set at its key, creating
 * intermediate mappings as needed (a flag wins over whatever the file has there), and
 * the keys that flags set, mapped to the flag names. `raw` is not modified. A `raw` that
 * is not a mapping (a YAML list, say) is returned unchanged, so validation reports it.
 * @example
 * applyFlagOverrides(raw, [
 *   { key: 'trust_domain', flag: 'trustDomain', value: opts.trustDomain },
 *   { key: 'log_level', flag: 'logLevel', value: opts.logLevel },
 * ]);
 */
export function applyFlagOverrides(
  raw: unknown,
  overrides: readonly FlagOverride[],
): { raw: unknown; flags: Map<string, string> } {
  const flags = new Map<string, string>();
  const given = overrides.filter((o) => o.value !== undefined);
  if (given.length === 0) return { raw, flags };
  if (raw !== null && raw !== undefined && !isMapping(raw)) return { raw, flags };
  const root: Record<string, unknown> = { ...(raw ?? {}) };
  for (const { key, flag, value } of given) {
    const segments = key.split('.');
    if (segments.some((s) => s === '')) throw new TypeError(`applyFlagOverrides: bad key path ${JSON.stringify(key)}`);
    let node = root;
    for (const segment of segments.slice(0, -1)) {
      const child = node[segment];
      const copy: Record<string, unknown> = isMapping(child) ? { ...child } : {};
      node[segment] = copy;
      node = copy;
    }
    node[segments[segments.length - 1] as string] = value;
    flags.set(key, flag);
  }
  return { raw: root, flags };
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
