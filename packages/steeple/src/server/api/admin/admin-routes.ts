/**
 * The admin API's routes: every service of `steeple.server.v1`, ready for a ConnectRouter.
 * @module
 */
import type { ConnectRouter } from '@connectrpc/connect';
import { AgentService } from '../../../gen/steeple/server/v1/agent_pb.js';
import { BundleService } from '../../../gen/steeple/server/v1/bundle_pb.js';
import { EntryService } from '../../../gen/steeple/server/v1/entry_pb.js';
import { HealthService } from '../../../gen/steeple/server/v1/health_pb.js';
import { SvidService } from '../../../gen/steeple/server/v1/svid_pb.js';
import { TrustDomainService } from '../../../gen/steeple/server/v1/trust_domain_pb.js';
import { guardService, resolveAdminContext } from './admin-context.js';
import type { AdminDeps } from './admin-deps.js';
import { agentService } from './agent-service.js';
import { bundleService } from './bundle-service.js';
import { entryService } from './entry-service.js';
import { healthService } from './health-service.js';
import { svidService } from './svid-service.js';
import { trustDomainService } from './trust-domain-service.js';

/**
 * Registers EntryService, AgentService, BundleService, SvidService, TrustDomainService and
 * HealthService. Pass the result to {@link startAdminServer} (or any connect adapter).
 * @example
 * const admin = await startAdminServer({ socketPath, routes: createAdminRoutes(deps), logger });
 */
export function createAdminRoutes(deps: AdminDeps): (router: ConnectRouter) => void {
  const c = resolveAdminContext(deps);
  return (router) => {
    router.service(EntryService, guardService(EntryService, entryService(c), c));
    router.service(AgentService, guardService(AgentService, agentService(c), c));
    router.service(BundleService, guardService(BundleService, bundleService(c), c));
    router.service(SvidService, guardService(SvidService, svidService(c), c));
    router.service(TrustDomainService, guardService(TrustDomainService, trustDomainService(c), c));
    router.service(HealthService, guardService(HealthService, healthService(c), c));
  };
}
