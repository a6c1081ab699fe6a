/**
 * The `telemetry` section shared by server, agent and proxy: where Prometheus scrapes.
 * SPIRE's HCL spells the block `Prometheus`; YAML keys here are lower case.
 * @module
 */
import * as z from 'zod/mini';
import { portSchema } from './health-checks-schema.js';

/** `telemetry: { prometheus: { host, port } }`; without `prometheus` no metrics listener runs. */
export const telemetrySchema = z.prefault(
  z.strictObject({
    prometheus: z.optional(
      z.strictObject({
        host: z.prefault(z.string().check(z.minLength(1)), 'localhost'),
        port: portSchema,
      }),
    ),
  }),
  {},
);

export type TelemetryConfig = z.output<typeof telemetrySchema>;
