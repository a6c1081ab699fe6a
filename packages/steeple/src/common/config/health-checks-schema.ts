/**
 * The `health_checks` section shared by server and agent, with SPIRE's key names and
 * defaults: the listener is off unless enabled.
 * @module
 */
import { z } from 'zod';

/** Port numbers, 0 meaning "pick a free one". */
export const portSchema = z.number().int().min(0).max(65_535);

/** `health_checks: { listener_enabled, bind_address, bind_port, live_path, ready_path }`. */
export const healthChecksSchema = z
  .strictObject({
    listener_enabled: z.boolean().prefault(false),
    bind_address: z.string().min(1).prefault('localhost'),
    bind_port: portSchema.prefault(80),
    live_path: z.string().startsWith('/', 'must start with "/"').prefault('/live'),
    ready_path: z.string().startsWith('/', 'must start with "/"').prefault('/ready'),
  })
  .prefault({});

export type HealthChecksConfig = z.output<typeof healthChecksSchema>;
