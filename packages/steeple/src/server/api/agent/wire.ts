/**
 * Datastore and CA values to Agent API messages, at the API's edge (the rest of the server
 * never sees protobuf types).
 * @module
 */
import { create } from '@bufbuild/protobuf';
import { type Bundle, BundleSchema } from '../../../gen/steeple/types/v1/bundle_pb.js';
import { type Entry, EntrySchema } from '../../../gen/steeple/types/v1/entry_pb.js';
import { SelectorSchema } from '../../../gen/steeple/types/v1/selector_pb.js';
import { type JwtSvid, JwtSvidSchema, type X509Svid, X509SvidSchema } from '../../../gen/steeple/types/v1/svid_pb.js';
import type { RegistrationEntry, StoredBundle } from '../../datastore/index.js';
import type { IssuedJwtSvid, IssuedX509Svid } from './ports.js';

export function entryToProto(e: RegistrationEntry): Entry {
  return create(EntrySchema, {
    id: e.id,
    spiffeId: e.spiffeId,
    parentId: e.parentId,
    selectors: e.selectors.map((s) => create(SelectorSchema, { type: s.type, value: s.value })),
    x509SvidTtl: e.x509SvidTtl,
    jwtSvidTtl: e.jwtSvidTtl,
    dnsNames: [...e.dnsNames],
    federatesWith: [...e.federatesWith],
    admin: e.admin,
    downstream: e.downstream,
    hint: e.hint,
    expiresAt: BigInt(e.expiresAt ?? 0),
    revisionNumber: BigInt(e.revisionNumber),
    createdAt: BigInt(e.createdAt),
  });
}

export function bundleToProto(b: StoredBundle): Bundle {
  return create(BundleSchema, { trustDomain: b.trustDomain, spiffeBundleJson: b.bundle, sequence: b.sequence });
}

export function x509SvidToProto(spiffeId: string, svid: IssuedX509Svid): X509Svid {
  return create(X509SvidSchema, {
    spiffeId,
    certChain: [...svid.certChain],
    expiresAt: BigInt(svid.expiresAt),
  });
}

export function jwtSvidToProto(spiffeId: string, svid: IssuedJwtSvid): JwtSvid {
  return create(JwtSvidSchema, {
    spiffeId,
    token: svid.token,
    expiresAt: BigInt(svid.expiresAt),
    issuedAt: BigInt(svid.issuedAt),
  });
}
