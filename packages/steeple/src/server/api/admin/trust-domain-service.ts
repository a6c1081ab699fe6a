/**
 * TrustDomainService: federation relationships (where and how this server fetches another trust
 * domain's bundle). This stores the API's relationships; fetching is the federation component's
 * job, reached through `AdminDeps.refreshBundle`, and what it reports (`AdminDeps.federationStatus`)
 * is how relationships from the config file are listed and every relationship gets its status.
 *
 * A relationship from the config file (`federation.federates_with`) is read only here: create
 * answers AlreadyExists, update and delete FailedPrecondition, each naming the trust domain and
 * the config file, because the next restart would bring the file's version back anyway.
 * @module
 */
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type ServiceImpl } from '@connectrpc/connect';
import type { TrustDomain } from '@steeple/spiffe';
import {
  type FederatedBundleSummary,
  FederatedBundleSummarySchema,
  type FederationRelationship,
  FederationRelationshipSchema,
  FederationRelationshipStatusSchema,
  type FederationRelationshipStatus as StatusProto,
  type TrustDomainService,
} from '../../../gen/steeple/server/v1/trust_domain_pb.js';
import type { Bundle } from '../../../gen/steeple/types/v1/bundle_pb.js';
import type {
  BundleEndpointProfile,
  FederationRelationshipUpdate,
  StoredBundle,
  FederationRelationship as StoredRelationship,
} from '../../datastore/index.js';
import type { FederationRelationshipStatus } from '../../federation/federation-manager.js';
import type { AdminContext } from './admin-context.js';
import { bundleToProto, parseGivenBundle, sequencedBundle, storedBundleToProto } from './bundle-service.js';
import { quoteValue, requireForeignTrustDomain, requirePageSize, requireSpiffeId } from './field-rules.js';
import { invalidField, notFound } from './grpc-status.js';

interface CheckedProfile {
  readonly profile: BundleEndpointProfile;
  readonly endpointSpiffeId?: string;
}

function checkUrl(value: string): string {
  const field = 'relationship.bundleEndpointUrl';
  if (value === '') throw invalidField(field, 'required');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalidField(field, `${quoteValue(value)} is not a URL`);
  }
  if (url.protocol !== 'https:') throw invalidField(field, `${quoteValue(value)} must use https`);
  if (url.username !== '' || url.password !== '') throw invalidField(field, 'must not contain user information');
  return value;
}

function checkProfile(r: FederationRelationship): CheckedProfile {
  switch (r.bundleEndpointProfile.case) {
    case 'httpsWeb':
      return { profile: 'https_web' };
    case 'httpsSpiffe': {
      const id = requireSpiffeId(
        'relationship.httpsSpiffe.endpointSpiffeId',
        r.bundleEndpointProfile.value.endpointSpiffeId,
      );
      return { profile: 'https_spiffe', endpointSpiffeId: id.toString() };
    }
    default:
      throw invalidField('relationship.bundleEndpointProfile', 'required: httpsWeb or httpsSpiffe');
  }
}

/** A relationship as listed: from the datastore or from the config file. */
interface Described {
  readonly trustDomain: string;
  readonly bundleEndpointUrl: string;
  readonly profile: BundleEndpointProfile;
  readonly endpointSpiffeId?: string;
  readonly source: 'config' | 'datastore';
}

const seconds = (d: Date | undefined): bigint => (d === undefined ? 0n : BigInt(Math.floor(d.getTime() / 1000)));

/** Whether the manager's status is about this very relationship (not one it replaced, not yet synced). */
function sameRelationship(r: Described, s: FederationRelationshipStatus): boolean {
  return (
    s.source === r.source &&
    s.bundleEndpointUrl === r.bundleEndpointUrl &&
    s.profile === r.profile &&
    (s.endpointSpiffeId ?? '') === (r.endpointSpiffeId ?? '')
  );
}

/** `spiffe_refresh_hint` of a stored bundle document; 0 when absent or unreadable. */
function refreshHintOf(json: string): bigint {
  try {
    const hint = (JSON.parse(json) as { spiffe_refresh_hint?: unknown }).spiffe_refresh_hint;
    return typeof hint === 'number' && Number.isSafeInteger(hint) && hint > 0 ? BigInt(hint) : 0n;
  } catch {
    return 0n;
  }
}

function bundleSummary(b: StoredBundle): FederatedBundleSummary {
  return create(FederatedBundleSummarySchema, {
    sequence: b.sequence,
    refreshHintSeconds: refreshHintOf(b.bundle),
    storedAt: BigInt(Math.floor(b.updatedAt)),
  });
}

function statusToProto(s: FederationRelationshipStatus | undefined, stored: StoredBundle | undefined): StatusProto {
  const current = stored === undefined ? {} : { currentBundle: bundleSummary(stored) };
  // Not run yet: created a moment ago, and the federation component has not picked it up.
  if (s === undefined) return create(FederationRelationshipStatusSchema, { state: 'not-yet-fetched', ...current });
  return create(FederationRelationshipStatusSchema, {
    state: s.state,
    lastAttemptAt: seconds(s.lastAttemptAt),
    lastSuccessAt: seconds(s.lastSuccessAt),
    lastChangeAt: seconds(s.lastChangeAt),
    failingSince: seconds(s.failingSince),
    consecutiveFailures: s.consecutiveFailures,
    ...(s.lastError === undefined
      ? {}
      : {
          lastError: {
            at: seconds(s.lastError.at),
            code: s.lastError.code ?? '',
            reason: s.lastError.reason,
            message: s.lastError.message,
          },
        }),
    nextRefreshAt: seconds(s.nextRefreshAt),
    refreshIntervalSeconds: s.refreshIntervalSeconds,
    ...current,
  });
}

function toProto(
  r: Described,
  stored: StoredBundle | undefined,
  status: { readonly known: boolean; readonly of?: FederationRelationshipStatus },
): FederationRelationship {
  return create(FederationRelationshipSchema, {
    trustDomain: r.trustDomain,
    bundleEndpointUrl: r.bundleEndpointUrl,
    bundleEndpointProfile:
      r.profile === 'https_spiffe'
        ? { case: 'httpsSpiffe', value: { endpointSpiffeId: r.endpointSpiffeId ?? '' } }
        : { case: 'httpsWeb', value: {} },
    ...(stored !== undefined ? { trustDomainBundle: storedBundleToProto(stored) } : {}),
    source: r.source,
    ...(status.known ? { status: statusToProto(status.of, stored) } : {}),
  });
}

function fromStore(r: StoredRelationship): Described {
  return {
    trustDomain: r.trustDomain,
    bundleEndpointUrl: r.bundleEndpointUrl,
    profile: r.profile,
    ...(r.endpointSpiffeId === undefined ? {} : { endpointSpiffeId: r.endpointSpiffeId }),
    source: 'datastore',
  };
}

function fromConfig(s: FederationRelationshipStatus): Described {
  return {
    trustDomain: s.trustDomain,
    bundleEndpointUrl: s.bundleEndpointUrl,
    profile: s.profile,
    ...(s.endpointSpiffeId === undefined ? {} : { endpointSpiffeId: s.endpointSpiffeId }),
    source: 'config',
  };
}

/** The refusal of a change to a relationship that the config file defines. */
function definedInConfig(td: string, what: string): ConnectError {
  return new ConnectError(
    `cannot ${what} the federation relationship with trust domain "${td}": it is defined in the server's ` +
      `config file (federation.federates_with["${td}"]); change it there and restart the server`,
    Code.FailedPrecondition,
  );
}

export function trustDomainService(c: AdminContext): Partial<ServiceImpl<typeof TrustDomainService>> {
  const store = c.datastore.federation;
  const bundles = c.datastore.bundles;

  /** What the federation component runs, by trust domain; undefined when the server does not say. */
  function running(): Map<string, FederationRelationshipStatus> | undefined {
    if (c.federationStatus === undefined) return undefined;
    return new Map(c.federationStatus().map((s) => [s.trustDomain, s]));
  }

  /** The config file's relationship with `td`, if it defines one. */
  function configured(td: string): FederationRelationshipStatus | undefined {
    const s = c.federationStatus?.().find((x) => x.trustDomain === td);
    return s?.source === 'config' ? s : undefined;
  }

  async function describe(
    r: Described,
    statuses: Map<string, FederationRelationshipStatus> | undefined,
  ): Promise<FederationRelationship> {
    const stored = await bundles.get(r.trustDomain);
    const s = statuses?.get(r.trustDomain);
    return toProto(r, stored, {
      known: statuses !== undefined,
      ...(s !== undefined && sameRelationship(r, s) ? { of: s } : {}),
    });
  }

  function withBundle(r: StoredRelationship): Promise<FederationRelationship> {
    return describe(fromStore(r), running());
  }

  /** Every relationship by trust domain: the config file's, then the datastore's it does not override. */
  async function all(statuses: Map<string, FederationRelationshipStatus> | undefined): Promise<Described[]> {
    const byName = new Map<string, Described>();
    for (const s of statuses?.values() ?? []) if (s.source === 'config') byName.set(s.trustDomain, fromConfig(s));
    for (const r of await store.list()) if (!byName.has(r.trustDomain)) byName.set(r.trustDomain, fromStore(r));
    return [...byName.values()].sort((a, b) =>
      a.trustDomain < b.trustDomain ? -1 : a.trustDomain > b.trustDomain ? 1 : 0,
    );
  }

  /** Checks and stores a bundle given with a relationship; undefined when none was given. */
  function givenBundle(td: TrustDomain, b: Bundle | undefined) {
    if (b === undefined) return undefined;
    if (b.trustDomain !== '' && b.trustDomain !== td.name) {
      throw invalidField(
        'relationship.trustDomainBundle.trustDomain',
        `${quoteValue(b.trustDomain)} differs from the relationship's trust domain "${td.name}"`,
      );
    }
    return parseGivenBundle('relationship.trustDomainBundle.spiffeBundleJson', td, 'spiffe', b.spiffeBundleJson);
  }

  async function storeBundle(td: TrustDomain, bundle: ReturnType<typeof givenBundle>): Promise<void> {
    if (bundle === undefined) return;
    const sequenced = sequencedBundle(bundle, await bundles.get(td.name), td);
    await bundles.set({ trustDomain: td.name, bundle: sequenced.marshal(), sequence: sequenced.sequenceNumber ?? 0n });
    c.changed('bundles');
  }

  return {
    async createFederationRelationship(req, ctx) {
      const r = req.relationship;
      if (r === undefined) throw invalidField('relationship', 'required');
      const td = requireForeignTrustDomain('relationship.trustDomain', r.trustDomain, c.trustDomain);
      const url = checkUrl(r.bundleEndpointUrl);
      const profile = checkProfile(r);
      const bundle = givenBundle(td, r.trustDomainBundle);
      if (configured(td.name) !== undefined) {
        throw new ConnectError(
          `a federation relationship with trust domain "${td.name}" is already defined in the server's config ` +
            `file (federation.federates_with["${td.name}"]); change it there, or remove it there before creating ` +
            'one through the API',
          Code.AlreadyExists,
        );
      }
      const created = await store.create({ trustDomain: td.name, bundleEndpointUrl: url, ...profile });
      await storeBundle(td, bundle);
      c.changed('federation');
      c.audit(
        ctx,
        { trustDomain: td.name, bundleEndpointUrl: url, ...profile, bundleGiven: bundle !== undefined },
        'created federation relationship',
      );
      return { relationship: await withBundle(created) };
    },

    async listFederationRelationships(req) {
      const pageSize = requirePageSize('pageSize', req.pageSize);
      const statuses = running();
      const after = (await all(statuses)).filter((r) => r.trustDomain > req.pageToken);
      const more = pageSize > 0 && after.length > pageSize;
      const items = more ? after.slice(0, pageSize) : after;
      return {
        relationships: await Promise.all(items.map((r) => describe(r, statuses))),
        nextPageToken: more ? items[items.length - 1]!.trustDomain : '',
      };
    },

    async getFederationRelationship(req) {
      const td = requireForeignTrustDomain('trustDomain', req.trustDomain, c.trustDomain);
      const statuses = running();
      const fromFile = statuses?.get(td.name);
      if (fromFile?.source === 'config') return { relationship: await describe(fromConfig(fromFile), statuses) };
      const found = await store.get(td.name);
      if (found === undefined) throw notFound(`no federation relationship with trust domain "${td.name}"`);
      return { relationship: await describe(fromStore(found), statuses) };
    },

    async updateFederationRelationship(req, ctx) {
      const r = req.relationship;
      if (r === undefined) throw invalidField('relationship', 'required');
      const td = requireForeignTrustDomain('relationship.trustDomain', r.trustDomain, c.trustDomain);
      if (configured(td.name) !== undefined) throw definedInConfig(td.name, 'update');
      const mask = req.mask ?? { bundleEndpointUrl: true, bundleEndpointProfile: true, trustDomainBundle: true };
      const patch: { -readonly [K in keyof FederationRelationshipUpdate]: FederationRelationshipUpdate[K] } = {};
      if (mask.bundleEndpointUrl) patch.bundleEndpointUrl = checkUrl(r.bundleEndpointUrl);
      if (mask.bundleEndpointProfile) {
        const profile = checkProfile(r);
        patch.profile = profile.profile;
        patch.endpointSpiffeId = profile.endpointSpiffeId ?? null;
      }
      // An absent bundle leaves the stored one as it is, even when the mask names it.
      const bundle = mask.trustDomainBundle ? givenBundle(td, r.trustDomainBundle) : undefined;
      const updated = await store.update(td.name, patch);
      await storeBundle(td, bundle);
      c.changed('federation');
      c.audit(
        ctx,
        { trustDomain: td.name, ...patch, bundleGiven: bundle !== undefined },
        'updated federation relationship',
      );
      return { relationship: await withBundle(updated) };
    },

    async deleteFederationRelationship(req, ctx) {
      const td = requireForeignTrustDomain('trustDomain', req.trustDomain, c.trustDomain);
      // Even when the datastore holds one too (which the config overrides): deleting it would
      // delete the bundle the config's relationship keeps current.
      if (configured(td.name) !== undefined) throw definedInConfig(td.name, 'delete');
      if ((await store.get(td.name)) === undefined) {
        throw notFound(`no federation relationship with trust domain "${td.name}"`);
      }
      // Deleting the relationship deletes its bundle too, so workloads stop receiving it. While
      // entries federate with the trust domain that would silently change them, so refuse first.
      const users = await c.datastore.entries.count({ federatesWith: { trustDomains: [td.name], match: 'any' } });
      if (users > 0) {
        throw new ConnectError(
          `${users} registration entries federate with "${td.name}"; remove it from their federatesWith first, ` +
            'or delete its bundle with `steeple server bundle delete -id ' +
            td.name +
            ' -mode dissociate|delete`',
          Code.FailedPrecondition,
        );
      }
      await store.delete(td.name);
      const hadBundle = (await bundles.get(td.name)) !== undefined;
      if (hadBundle) await bundles.delete(td.name, 'restrict');
      c.changed('federation');
      if (hadBundle) c.changed('bundles');
      c.audit(ctx, { trustDomain: td.name, bundleDeleted: hadBundle }, 'deleted federation relationship');
      return {};
    },

    async refreshBundle(req, ctx) {
      const td = requireForeignTrustDomain('trustDomain', req.trustDomain, c.trustDomain);
      // With a fetcher, it decides: it also knows the relationships from the config file.
      if (c.refreshBundle === undefined && (await store.get(td.name)) === undefined) {
        throw notFound(`no federation relationship with trust domain "${td.name}"`);
      }
      if (c.refreshBundle === undefined) {
        throw new ConnectError(
          `cannot refresh the bundle of "${td.name}": this server does not fetch federated bundles yet ` +
            '(the relationship is stored and will be used once bundle fetching is available)',
          Code.Unimplemented,
        );
      }
      const bundle = await c.refreshBundle(td);
      c.changed('bundles');
      c.audit(ctx, { trustDomain: td.name, sequence: bundle.sequenceNumber?.toString() }, 'refreshed federated bundle');
      return { bundle: bundleToProto(bundle) };
    },
  };
}
