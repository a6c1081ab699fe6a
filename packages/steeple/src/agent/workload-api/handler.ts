/**
 * The SPIFFE Workload API (`SpiffeWorkloadAPI`) served from the agent's caches. Every call
 * attests its caller from the connection's peer credentials; the caller gets exactly the
 * identities whose entries' selectors are all among its own (PERMISSION_DENIED when none,
 * also mid-stream when its last entry goes away). Streams send the complete current state
 * at once and again whenever something they show changes (W-3). The WIT-SVID profile is
 * not offered: those two methods answer UNIMPLEMENTED (W-1).
 *
 * The `workload.spiffe.io` header is checked before any of this, by the interceptor in
 * server.ts (E-2).
 * @module
 */

import type { JsonObject } from '@bufbuild/protobuf';
import { Code, ConnectError, createContextKey, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import {
  type Clock,
  type JwtBundle,
  JwtSvid,
  SpiffeError,
  SpiffeId,
  systemClock,
  type TrustDomain,
} from '@steeple/spiffe';
import type { Logger } from '../../common/logger.js';
import type { SpiffeWorkloadAPI } from '../../gen/spiffe/workload/workload_pb.js';
import { WorkloadAttestationError } from '../agent-errors.js';
import type { WorkloadAttestation } from '../attestation/workload-attestation.js';
import type { PeerCredentials } from '../attestation/workload-attestor.js';
import type { CachedEntry } from '../cache/cached-entry.js';
import type { CachedJwtSvid } from '../cache/jwt-svid-cache.js';
import type { WorkloadCache, WorkloadView } from '../cache/workload-cache.js';
import {
  bundlesStateKey,
  jwtBundlesResponse,
  readyIdentities,
  x509BundlesResponse,
  x509StateKey,
  x509SvidResponse,
} from './responses.js';

/** The caller's peer credentials, or why they could not be read; set per request by the server. */
export const kPeer = createContextKey<PeerCredentials | Error | undefined>(undefined, {
  description: 'peer credentials',
});

export interface WorkloadApiDeps {
  readonly cache: WorkloadCache;
  readonly attestation: WorkloadAttestation;
  /** A JWT-SVID for the entry and audiences (cached until half life, else minted by the server). */
  readonly mintJwtSvid: (entry: CachedEntry, audience: readonly string[]) => Promise<CachedJwtSvid>;
  /** Let callers without an identity fetch bundles and validate JWT-SVIDs (SPIRE's allow_unauthenticated_verifiers). */
  readonly allowUnauthenticatedVerifiers?: boolean;
  /** Whether the caches hold the server's view yet; until then callers get UNAVAILABLE (E-5), not a refusal. */
  readonly ready?: () => boolean;
  readonly clock?: Clock;
  readonly logger: Logger;
}

/** Registered JWT claims kept when validating a token of a foreign trust domain (W-11). */
const FOREIGN_CLAIMS = new Set(['sub', 'aud', 'exp', 'iat', 'nbf', 'iss', 'jti']);

function denied(message = 'no identity issued'): ConnectError {
  return new ConnectError(message, Code.PermissionDenied);
}

/** Creates the service implementation. */
export function createWorkloadApiHandler(deps: WorkloadApiDeps): Partial<ServiceImpl<typeof SpiffeWorkloadAPI>> {
  const { cache, logger } = deps;
  const clock = deps.clock ?? systemClock;

  /** The caller's selectors as `type:value` strings. */
  const attest = async (ctx: HandlerContext): Promise<Set<string>> => {
    const peer = ctx.values.get(kPeer);
    if (peer === undefined || peer instanceof Error) {
      logger.warn({ err: peer?.message, method: ctx.method.name }, 'caller has no readable peer credentials');
      throw denied('the caller could not be identified');
    }
    try {
      const selectors = await deps.attestation.attest(peer, ctx.signal);
      const keys = new Set(selectors.map((s) => `${s.type}:${s.value}`));
      logger.debug({ pid: peer.pid, uid: peer.uid, method: ctx.method.name, selectors: [...keys] }, 'caller attested');
      return keys;
    } catch (err) {
      if (err instanceof WorkloadAttestationError) {
        logger.warn({ pid: peer.pid, reason: err.reason, method: ctx.method.name }, 'workload attestation failed');
        throw denied(err.message);
      }
      throw err;
    }
  };

  /** A view that must hold an identity (or be allowed without one for verifiers). */
  const viewFor = (selectors: ReadonlySet<string>, verifierOnly: boolean): WorkloadView => {
    if (deps.ready !== undefined && !deps.ready()) {
      throw new ConnectError('the agent is not ready: it has not synced with the server yet', Code.Unavailable);
    }
    const view = cache.view(selectors);
    if (view.identities.length === 0 && !(verifierOnly && deps.allowUnauthenticatedVerifiers === true)) throw denied();
    return view;
  };

  /**
   * Runs a stream: `compute` returns the message and its state key, undefined while there
   * is nothing to send yet, or throws (PERMISSION_DENIED ends the stream). A message goes
   * out at once and then whenever the state key changes.
   */
  async function* follow<M>(
    ctx: HandlerContext,
    compute: () => { message: M; key: string } | undefined,
  ): AsyncGenerator<M> {
    const signal = ctx.signal;
    let dirty = true;
    let wake: (() => void) | undefined;
    const unsubscribe = cache.onChange(() => {
      dirty = true;
      wake?.();
    });
    const onAbort = () => wake?.();
    signal.addEventListener('abort', onAbort);
    try {
      let lastKey: string | undefined;
      for (;;) {
        // Ending an aborted stream normally would send grpc-status 0; rethrow the reason (P4).
        if (signal.aborted) throw signal.reason;
        if (dirty) {
          dirty = false;
          const next = compute();
          if (next !== undefined && next.key !== lastKey) {
            lastKey = next.key;
            yield next.message;
            continue;
          }
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          if (dirty || signal.aborted) resolve();
        });
        wake = undefined;
      }
    } finally {
      unsubscribe();
      signal.removeEventListener('abort', onAbort);
    }
  }

  const jwtBundleSource = {
    getJwtBundleForTrustDomain(td: TrustDomain): JwtBundle | undefined {
      return cache.bundles.bundleFor(td)?.jwtBundle();
    },
  };

  return {
    async *fetchX509SVID(_req, ctx) {
      const selectors = await attest(ctx);
      yield* follow(ctx, () => {
        const view = viewFor(selectors, false);
        const ready = readyIdentities(view.identities, clock.now().getTime());
        // Matching entries whose SVIDs are still being signed: wait for them rather than refuse.
        if (ready.length === 0) return undefined;
        return {
          message: x509SvidResponse(ready, cache.bundles, view.federatesWith),
          key: x509StateKey(ready, cache.bundles, view.federatesWith),
        };
      });
    },

    async *fetchX509Bundles(_req, ctx) {
      const selectors = await attest(ctx);
      yield* follow(ctx, () => {
        const view = viewFor(selectors, true);
        return {
          message: x509BundlesResponse(cache.bundles, view.federatesWith),
          key: bundlesStateKey(cache.bundles, view.federatesWith),
        };
      });
    },

    async *fetchJWTBundles(_req, ctx) {
      const selectors = await attest(ctx);
      yield* follow(ctx, () => {
        const view = viewFor(selectors, true);
        return {
          message: jwtBundlesResponse(cache.bundles, view.federatesWith),
          key: bundlesStateKey(cache.bundles, view.federatesWith),
        };
      });
    },

    async fetchJWTSVID(req, ctx) {
      if (req.audience.length === 0 || req.audience.some((a) => a === '')) {
        throw new ConnectError('audience must be specified', Code.InvalidArgument);
      }
      let wanted: string | undefined;
      if (req.spiffeId !== '') {
        const id = SpiffeId.tryParse(req.spiffeId);
        if (id instanceof SpiffeError) throw new ConnectError(id.message, Code.InvalidArgument);
        wanted = id.toString();
      }
      const selectors = await attest(ctx);
      const view = viewFor(selectors, false);
      const seen = new Set<string>();
      const chosen = view.identities.filter(({ entry }) => {
        // One token per identity: two entries for the same SPIFFE ID yield one.
        if ((wanted !== undefined && entry.spiffeId !== wanted) || seen.has(entry.spiffeId)) return false;
        seen.add(entry.spiffeId);
        return true;
      });
      if (chosen.length === 0) throw denied(`no identity issued for ${wanted}`);
      try {
        const svids = await Promise.all(
          chosen.map(async ({ entry }) => {
            const svid = await deps.mintJwtSvid(entry, req.audience);
            return { spiffeId: svid.spiffeId, svid: svid.token, hint: entry.hint };
          }),
        );
        return { svids };
      } catch (err) {
        const status = ConnectError.from(err);
        logger.warn({ err: status.rawMessage, code: Code[status.code] }, 'could not get a JWT-SVID from the server');
        throw new ConnectError(`could not mint a JWT-SVID: ${status.rawMessage}`, Code.Unavailable);
      }
    },

    async validateJWTSVID(req, ctx) {
      if (req.audience === '') throw new ConnectError('audience must be specified', Code.InvalidArgument);
      if (req.svid === '') throw new ConnectError('svid must be specified', Code.InvalidArgument);
      const selectors = await attest(ctx);
      viewFor(selectors, true);
      let svid: JwtSvid;
      try {
        svid = await JwtSvid.parseAndValidate(req.svid, jwtBundleSource, [req.audience], { clock });
      } catch (err) {
        if (err instanceof SpiffeError) throw new ConnectError(err.message, Code.InvalidArgument);
        throw err;
      }
      const own = svid.id.trustDomain.name === cache.bundles.trustDomain;
      const claims: JsonObject = {};
      for (const [name, value] of Object.entries(svid.claims)) {
        if (own || FOREIGN_CLAIMS.has(name)) claims[name] = value as JsonObject[string];
      }
      claims['aud'] = [...svid.audience];
      return { spiffeId: svid.id.toString(), claims };
    },
  };
}
