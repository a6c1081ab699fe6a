/**
 * HealthService: `steeple server healthcheck`. The datastore and the CA are always checked;
 * other components report through `AdminDeps.healthChecks`.
 * @module
 */
import type { ServiceImpl } from '@connectrpc/connect';
import { type HealthService, ServingStatus } from '../../../gen/steeple/server/v1/health_pb.js';
import type { AdminContext } from './admin-context.js';
import type { ComponentHealth } from './admin-deps.js';

async function probe(name: string, check: () => unknown): Promise<ComponentHealth> {
  try {
    await check();
    return { name, healthy: true };
  } catch (err) {
    return { name, healthy: false, message: err instanceof Error ? err.message : String(err) };
  }
}

export function healthService(c: AdminContext): Partial<ServiceImpl<typeof HealthService>> {
  return {
    async check() {
      const components: ComponentHealth[] = [
        await probe('datastore', () => c.datastore.entries.currentRevision()),
        await probe('ca', () => {
          if (c.ca.bundle().x509Authorities.length === 0) throw new Error('the trust bundle has no X.509 authority');
        }),
      ];
      if (c.healthChecks !== undefined) {
        try {
          components.push(...(await c.healthChecks()));
        } catch (err) {
          components.push({
            name: 'health_checks',
            healthy: false,
            message: err instanceof Error ? err.message : String(err),
          });
        }
      }
      const healthy = components.every((h) => h.healthy);
      return {
        status: healthy ? ServingStatus.SERVING : ServingStatus.NOT_SERVING,
        components: components.map((h) => ({ name: h.name, healthy: h.healthy, message: h.message ?? '' })),
      };
    },
  };
}
