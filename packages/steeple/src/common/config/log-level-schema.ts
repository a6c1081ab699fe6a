/**
 * The `log_level` key: pino's level names in any case, so SPIRE configs that say
 * `DEBUG` or `INFO` work unchanged.
 * @module
 */
import * as z from 'zod/mini';
import { LOG_LEVELS, type LogLevel } from '../logger.js';

/** Accepts `trace`, `debug`, `info`, `warn`, `error`, `fatal` or `silent` in any case; outputs lower case. */
export const logLevelSchema = z.pipe(
  z.pipe(
    z.string(),
    z.transform((level: string) => level.toLowerCase()),
  ),
  z.enum(LOG_LEVELS),
) satisfies z.ZodMiniType<LogLevel, string>;
