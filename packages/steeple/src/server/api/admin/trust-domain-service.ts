/**
 * TrustDomainService: federation relationships (where and how this server fetches another trust
 * domain's bundle). This stores them; fetching is the federation component's job, reached
 * through `AdminDeps.refreshBundle`.
 * @module
 */
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type ServiceImpl } from '@connectrpc/connect';
import type { TrustDomain } from '@steeple/spiffe';
import {
  type FederationRelationship,
  FederationRelationshipSchema,
  type TrustDomainService,
} from '../../../gen/steeple/server/v1/trust_domain_pb.js';
import type { Bundle } from '../../../gen/steeple/types/v1/bundle_pb.js';
import type {
  BundleEndpointProfile,
  FederationRelationshipUpdate,
  FederationRelationship as StoredRelationship,
} from '../../datastore/index.js';
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

function toProto(r: StoredRelationship, bundle: Bundle | undefined): FederationRelationship {
  return create(FederationRelationshipSchema, {
    trustDomain: r.trustDomain,
    bundleEndpointUrl: r.bundleEndpointUrl,
    bundleEndpointProfile:
      r.profile === 'https_spiffe'
        ? { case: 'httpsSpiffe', value: { endpointSpiffeId: r.endpointSpiffeId ?? '' } }
        : { case: 'httpsWeb', value: {} },
    ...(bundle !== undefined ? { trustDomainBundle: bundle } : {}),
  });
}

export function trustDomainService(c: AdminContext): Partial<ServiceImpl<typeof TrustDomainService>> {
  const store = c.datastore.federation;
  const bundles = c.datastore.bundles;

  async function withBundle(r: StoredRelationship): Promise<FederationRelationship> {
    const stored = await bundles.get(r.trustDomain);
    return toProto(r, stored === undefined ? undefined : storedBundleToProto(stored));
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
      const all = (await store.list()).filter((r) => r.trustDomain > req.pageToken);
      const more = pageSize > 0 && all.length > pageSize;
      const items = more ? all.slice(0, pageSize) : all;
      return {
        relationships: await Promise.all(items.map(withBundle)),
        nextPageToken: more ? items[items.length - 1]!.trustDomain : '',
      };
    },

    async getFederationRelationship(req) {
      const td = requireForeignTrustDomain('trustDomain', req.trustDomain, c.trustDomain);
      const found = await store.get(td.name);
      if (found === undefined) throw notFound(`no federation relationship with trust domain "${td.name}"`);
      return { relationship: await withBundle(found) };
    },

    async updateFederationRelationship(req, ctx) {
      const r = req.relationship;
      if (r === undefined) throw invalidField('relationship', 'required');
      const td = requireForeignTrustDomain('relationship.trustDomain', r.trustDomain, c.trustDomain);
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
