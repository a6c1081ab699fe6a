/**
 * The `telemetry` section shared by server, agent and proxy: where Prometheus scrapes.
 * SPIRE's HCL spells the block `Prometheus`; YAML keys here are lower case.
 * @module
 */
import { z } from 'zod';
import { portSchema } from './health-checks-schema.js';

/** `telemetry: { prometheus: { host, port } }`; without `prometheus` no metrics listener runs. */
export const telemetrySchema = z
  .strictObject({
    prometheus: z
      .strictObject({
        host: z.string().min(1).prefault('localhost'),
        port: portSchema,
      })
      .optional(),
  })
  .prefault({});

export type TelemetryConfig = z.output<typeof telemetrySchema>;
