/**
 * The `health_checks` section shared by server and agent, with SPIRE's key names and
 * defaults: the listener is off unless enabled.
 * @module
 */
import * as z from 'zod/mini';

/** Port numbers, 0 meaning "pick a free one". */
export const portSchema = z.number().check(z.int(), z.minimum(0), z.maximum(65_535));

/** `health_checks: { listener_enabled, bind_address, bind_port, live_path, ready_path }`. */
export const healthChecksSchema = z.prefault(
  z.strictObject({
    listener_enabled: z.prefault(z.boolean(), false),
    bind_address: z.prefault(z.string().check(z.minLength(1)), 'localhost'),
    bind_port: z.prefault(portSchema, 80),
    live_path: z.prefault(z.string().check(z.startsWith('/', 'must start with "/"')), '/live'),
    ready_path: z.prefault(z.string().check(z.startsWith('/', 'must start with "/"')), '/ready'),
  }),
  {},
);

export type HealthChecksConfig = z.output<typeof healthChecksSchema>;
