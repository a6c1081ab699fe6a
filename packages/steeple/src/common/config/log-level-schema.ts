/**
 * The `log_level` key: pino's level names in any case, so SPIRE configs that say
 * `DEBUG` or `INFO` work unchanged.
 * @module
 */
import { z } from 'zod';
import { LOG_LEVELS, type LogLevel } from '../logger.js';

/** Accepts `trace`, `debug`, `info`, `warn`, `error`, `fatal` or `silent` in any case; outputs lower case. */
export const logLevelSchema = z
  .string()
  .transform((level) => level.toLowerCase())
  .pipe(z.enum(LOG_LEVELS)) satisfies z.ZodType<LogLevel, string>;
