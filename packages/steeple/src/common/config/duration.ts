/**
 * Durations in configuration and on the command line: `"90s"`, `"15m"`, `"1h"`,
 * `"30d"`, compounds such as `"1h30m"` (units largest first, each at most once), and
 * plain integer seconds (`3600` or `"3600"`). Values are whole seconds.
 * @module
 */
import * as z from 'zod/mini';
import { ConfigError } from '../errors.js';

const UNIT_SECONDS = { d: 86_400, h: 3_600, m: 60, s: 1 } as const;
const COMPOUND = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;
const PLAIN_SECONDS = /^\d+$/;

/** Returns the duration in whole seconds, or `undefined` when `input` is not a duration. */
export function tryParseDuration(input: string | number): number | undefined {
  if (typeof input === 'number') return Number.isSafeInteger(input) && input >= 0 ? input : undefined;
  if (PLAIN_SECONDS.test(input)) return toSafe(Number(input));
  const m = COMPOUND.exec(input);
  if (m === null || input === '') return undefined;
  const [, d = '0', h = '0', min = '0', s = '0'] = m;
  return toSafe(
    Number(d) * UNIT_SECONDS.d + Number(h) * UNIT_SECONDS.h + Number(min) * UNIT_SECONDS.m + Number(s) * UNIT_SECONDS.s,
  );
}

function toSafe(seconds: number): number | undefined {
  return Number.isSafeInteger(seconds) ? seconds : undefined;
}

/** The message for a value that is not a duration, shared by the schema and {@link parseDuration}. */
export function notADurationMessage(input: unknown): string {
  return `${JSON.stringify(input)} is not a duration such as "90s", "15m", "1h" or "30d"`;
}

/**
 * Parses a duration given outside a config file (a flag such as `-ttl 1h`), in whole seconds.
 * @param key - the flag or key that held the value, named in the error.
 * @throws ConfigError (`ERR_CONFIG_INVALID`) `ttl: "1x" is not a duration such as "90s", "15m", "1h" or "30d"`.
 */
export function parseDuration(input: string | number, key: string): number {
  const seconds = tryParseDuration(input);
  if (seconds === undefined) throw new ConfigError([{ path: key, message: notADurationMessage(input) }]);
  return seconds;
}

/** Formats whole seconds the way {@link tryParseDuration} reads them: 5400 → `"1h30m"`, 0 → `"0s"`. */
export function formatDuration(seconds: number): string {
  if (!Number.isSafeInteger(seconds) || seconds < 0)
    throw new TypeError(`formatDuration: ${seconds} is not whole seconds`);
  if (seconds === 0) return '0s';
  let rest = seconds;
  let out = '';
  for (const [unit, size] of Object.entries(UNIT_SECONDS)) {
    const n = Math.floor(rest / size);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * size;
  }
  return out;
}

/** Bounds for {@link durationSchema}, in seconds. */
export interface DurationBounds {
  readonly min?: number;
  readonly max?: number;
}

/**
 * A zod schema for a duration key: accepts a duration string or integer seconds, outputs
 * whole seconds. Give raw defaults with `z.prefault(durationSchema(), '24h')` (`z._default`
 * would skip parsing).
 * @example ca_ttl: z.prefault(durationSchema({ min: 60 }), '24h')
 */
export function durationSchema(bounds: DurationBounds = {}) {
  return z.pipe(
    z.union([z.string(), z.number()]),
    z.transform((input: string | number, ctx) => {
      const seconds = tryParseDuration(input);
      if (seconds === undefined) {
        ctx.issues.push({ code: 'custom', message: notADurationMessage(input), input });
        return z.NEVER;
      }
      if (bounds.min !== undefined && seconds < bounds.min) {
        ctx.issues.push({
          code: 'custom',
          message: `${JSON.stringify(input)} is shorter than the minimum of ${formatDuration(bounds.min)}`,
          input,
        });
        return z.NEVER;
      }
      if (bounds.max !== undefined && seconds > bounds.max) {
        ctx.issues.push({
          code: 'custom',
          message: `${JSON.stringify(input)} is longer than the maximum of ${formatDuration(bounds.max)}`,
          input,
        });
        return z.NEVER;
      }
      return seconds;
    }),
  );
}
