/**
 * Asks a Workload API for the caller's identity, waiting while the agent has none for it yet
 * (its entry not synced, its SVID not signed): what the demos print as "identity issued".
 * @module
 */
import { createWorkloadApiClient, WorkloadApiError } from '@steeple/spiffe';

/** What a workload received: its default SVID and the trust domains of the bundles that came with it. */
export interface IssuedIdentity {
  readonly id: string;
  /** ISO 8601. */
  readonly expires: string;
  readonly bundles: readonly string[];
}

/** gRPC PermissionDenied: the agent knows no identity for this caller (yet). */
const PERMISSION_DENIED = 7;

/**
 * The caller's identity from the Workload API at `address` (default SPIFFE_ENDPOINT_SOCKET),
 * asking again every 250 ms for up to `waitMs` while the agent answers PermissionDenied.
 */
export async function probeIdentity(address: string | undefined, waitMs: number): Promise<IssuedIdentity> {
  const client = createWorkloadApiClient(address === undefined ? {} : { address });
  const deadline = Date.now() + waitMs;
  try {
    for (;;) {
      try {
        const ctx = await client.fetchX509Context();
        const svid = ctx.svids[0];
        if (svid === undefined) throw new Error('the Workload API answered without an SVID');
        return {
          id: svid.id.toString(),
          expires: svid.expiresAt.toISOString(),
          bundles: ctx.bundles.trustDomains().map((td) => td.name),
        };
      } catch (err) {
        const denied = err instanceof WorkloadApiError && err.grpcCode === PERMISSION_DENIED;
        if (!denied || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  } finally {
    await client.close();
  }
}
