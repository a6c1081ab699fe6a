/**
 * BundleService: the server's own bundle (from the CA) and the stored bundles of other trust
 * domains (set from SPIFFE bundle JSON or PEM, listed, shown, deleted).
 * @module
 */
import { create } from '@bufbuild/protobuf';
import type { ServiceImpl } from '@connectrpc/connect';
import { BundleError, SpiffeBundle, type TrustDomain, X509Bundle } from '@steeple/spiffe';
import {
  BundleDeleteMode,
  type BundleService,
  type SetFederatedBundleRequest,
} from '../../../gen/steeple/server/v1/bundle_pb.js';
import { type Bundle, BundleSchema } from '../../../gen/steeple/types/v1/bundle_pb.js';
import type { BundleDeleteMode as DatastoreDeleteMode, StoredBundle } from '../../datastore/index.js';
import type { AdminContext } from './admin-context.js';
import { requireForeignTrustDomain, requirePageSize } from './field-rules.js';
import { invalidField, notFound } from './grpc-status.js';

export function bundleToProto(b: SpiffeBundle): Bundle {
  return create(BundleSchema, {
    trustDomain: b.trustDomain.name,
    spiffeBundleJson: b.marshal(),
    sequence: b.sequenceNumber ?? 0n,
  });
}

export function storedBundleToProto(b: StoredBundle): Bundle {
  return create(BundleSchema, { trustDomain: b.trustDomain, spiffeBundleJson: b.bundle, sequence: b.sequence });
}

/**
 * Parses a bundle given for `td` (SPIFFE bundle JSON, or PEM certificates for X.509 authorities
 * only) and refuses one without any authority. `field` names the request field in errors.
 */
export function parseGivenBundle(field: string, td: TrustDomain, format: 'spiffe' | 'pem', text: string): SpiffeBundle {
  let bundle: SpiffeBundle;
  try {
    bundle =
      format === 'spiffe'
        ? SpiffeBundle.parse(td, text)
        : SpiffeBundle.fromBundles({ x509: X509Bundle.parse(td, text) });
  } catch (err) {
    if (err instanceof BundleError) throw invalidField(field, err.message);
    throw err;
  }
  if (bundle.isEmpty()) throw invalidField(field, `the bundle of "${td.name}" holds no X.509 or JWT authority`);
  return bundle;
}

/**
 * The bundle to store: a document's own `spiffe_sequence` is kept; without one (always for PEM)
 * the sequence grows by one over the stored bundle's whenever the authorities change.
 */
export function sequencedBundle(
  bundle: SpiffeBundle,
  previous: StoredBundle | undefined,
  td: TrustDomain,
): SpiffeBundle {
  if (bundle.sequenceNumber !== undefined) return bundle;
  if (previous === undefined) return bundle.withSequenceNumber(1n);
  let same = false;
  try {
    same = SpiffeBundle.parse(td, previous.bundle)
      .withSequenceNumber(undefined)
      .withRefreshHint(undefined)
      .equals(bundle.withRefreshHint(undefined));
  } catch {
    same = false; // an unreadable stored bundle is simply replaced
  }
  return bundle.withSequenceNumber(same ? previous.sequence : previous.sequence + 1n);
}

function deleteModeOf(mode: BundleDeleteMode): DatastoreDeleteMode {
  switch (mode) {
    case BundleDeleteMode.DISSOCIATE:
      return 'dissociate';
    case BundleDeleteMode.DELETE:
      return 'delete';
    default:
      return 'restrict';
  }
}

function contentOf(req: SetFederatedBundleRequest): { format: 'spiffe' | 'pem'; text: string; field: string } {
  switch (req.content.case) {
    case 'spiffeBundleJson':
      return { format: 'spiffe', text: req.content.value, field: 'spiffeBundleJson' };
    case 'x509AuthoritiesPem':
      return { format: 'pem', text: req.content.value, field: 'x509AuthoritiesPem' };
    default:
      throw invalidField('content', 'required: spiffeBundleJson or x509AuthoritiesPem');
  }
}

export function bundleService(c: AdminContext): Partial<ServiceImpl<typeof BundleService>> {
  const bundles = c.datastore.bundles;
  const own = c.trustDomain;

  return {
    async getBundle() {
      return { bundle: bundleToProto(c.ca.bundle()) };
    },

    async listFederatedBundles(req) {
      const pageSize = requirePageSize('pageSize', req.pageSize);
      const foreign = (await bundles.list()).filter((b) => b.trustDomain !== own.name && b.trustDomain > req.pageToken);
      const more = pageSize > 0 && foreign.length > pageSize;
      const items = more ? foreign.slice(0, pageSize) : foreign;
      return {
        bundles: items.map(storedBundleToProto),
        nextPageToken: more ? items[items.length - 1]!.trustDomain : '',
      };
    },

    async getFederatedBundle(req) {
      const td = requireForeignTrustDomain('trustDomain', req.trustDomain, own);
      const stored = await bundles.get(td.name);
      if (stored === undefined) throw notFound(`no bundle stored for trust domain "${td.name}"`);
      return { bundle: storedBundleToProto(stored) };
    },

    async setFederatedBundle(req, ctx) {
      const td = requireForeignTrustDomain('trustDomain', req.trustDomain, own);
      const { format, text, field } = contentOf(req);
      const parsed = parseGivenBundle(field, td, format, text);
      const previous = await bundles.get(td.name);
      const bundle = sequencedBundle(parsed, previous, td);
      const stored = await bundles.set({
        trustDomain: td.name,
        bundle: bundle.marshal(),
        sequence: bundle.sequenceNumber ?? 0n,
      });
      c.changed('bundles');
      c.audit(
        ctx,
        {
          trustDomain: td.name,
          format,
          x509Authorities: bundle.x509Authorities.length,
          jwtAuthorities: bundle.jwtAuthorities.size,
          sequence: stored.sequence.toString(),
        },
        previous === undefined ? 'created federated bundle' : 'replaced federated bundle',
      );
      return { bundle: storedBundleToProto(stored) };
    },

    async deleteFederatedBundle(req, ctx) {
      const td = requireForeignTrustDomain('trustDomain', req.trustDomain, own);
      const mode = deleteModeOf(req.mode);
      const result = await bundles.delete(td.name, mode);
      c.changed('bundles');
      if (result.affectedEntries > 0) c.changed('entries');
      c.audit(ctx, { trustDomain: td.name, mode, affectedEntries: result.affectedEntries }, 'deleted federated bundle');
      return {};
    },
  };
}
