/**
 * Registration entries at the API edge: the checks of every field of an incoming entry
 * (errors name the field), and the conversions between the wire message and the datastore's
 * record.
 * @module
 */
import { create } from '@bufbuild/protobuf';
import type { TrustDomain } from '@steeple/spiffe';
import type { EntryMask } from '../../../gen/steeple/server/v1/entry_pb.js';
import { type Entry, EntrySchema } from '../../../gen/steeple/types/v1/entry_pb.js';
import type { EntryUpdate, NewEntry, RegistrationEntry } from '../../datastore/index.js';
import {
  quoteValue,
  requireDnsNames,
  requireEpochSeconds,
  requireForeignTrustDomain,
  requireMemberId,
  requireNonNegative,
  requireSelectors,
  requireWorkloadId,
  serverIdOf,
} from './field-rules.js';
import { invalidField } from './grpc-status.js';

/** SPIRE's limit on an entry's hint. */
export const MAX_HINT_BYTES = 1024;

/** The fields an operator sets, in the order they are checked. */
export const ENTRY_FIELDS = [
  'spiffeId',
  'parentId',
  'selectors',
  'x509SvidTtl',
  'jwtSvidTtl',
  'dnsNames',
  'federatesWith',
  'admin',
  'downstream',
  'hint',
  'expiresAt',
] as const satisfies readonly (keyof EntryMask & keyof Entry & keyof NewEntry)[];

export type EntryField = (typeof ENTRY_FIELDS)[number];

/** Checks one field of `e` and returns it as the datastore wants it. */
function checkField(field: EntryField, e: Entry, td: TrustDomain): EntryUpdate {
  switch (field) {
    case 'spiffeId': {
      const id = requireWorkloadId('spiffeId', e.spiffeId, td);
      if (id.toString() === serverIdOf(td)) {
        throw invalidField('spiffeId', `${quoteValue(e.spiffeId)} is the server's own ID and cannot be registered`);
      }
      return { spiffeId: id.toString() };
    }
    case 'parentId':
      return { parentId: requireMemberId('parentId', e.parentId, td).toString() };
    case 'selectors':
      return { selectors: requireSelectors('selectors', e.selectors) };
    case 'x509SvidTtl':
      return { x509SvidTtl: requireNonNegative('x509SvidTtl', e.x509SvidTtl) };
    case 'jwtSvidTtl':
      return { jwtSvidTtl: requireNonNegative('jwtSvidTtl', e.jwtSvidTtl) };
    case 'dnsNames':
      return { dnsNames: requireDnsNames('dnsNames', e.dnsNames) };
    case 'federatesWith':
      return {
        federatesWith: e.federatesWith.map(
          (name, i) => requireForeignTrustDomain(`federatesWith[${i}]`, name, td).name,
        ),
      };
    case 'admin':
      return { admin: e.admin };
    case 'downstream':
      return { downstream: e.downstream };
    case 'hint': {
      const bytes = Buffer.byteLength(e.hint, 'utf8');
      if (bytes > MAX_HINT_BYTES)
        throw invalidField('hint', `is ${bytes} bytes; at most ${MAX_HINT_BYTES} are allowed`);
      return { hint: e.hint };
    }
    case 'expiresAt': {
      const at = requireEpochSeconds('expiresAt', e.expiresAt);
      return { expiresAt: at === 0 ? null : at };
    }
  }
}

/** Checks a whole entry to be created. Throws InvalidArgument naming the first bad field. */
export function toNewEntry(e: Entry, td: TrustDomain): NewEntry {
  if (e.id !== '') throw invalidField('id', 'is assigned by the server; leave it empty when creating an entry');
  if (e.revisionNumber !== 0n) throw invalidField('revisionNumber', 'is assigned by the server; leave it 0');
  if (e.createdAt !== 0n) throw invalidField('createdAt', 'is assigned by the server; leave it 0');
  let out: EntryUpdate = {};
  for (const field of ENTRY_FIELDS) out = { ...out, ...checkField(field, e, td) };
  return out as NewEntry;
}

/** Checks the fields of `e` named by `fields` and returns them as a partial update. */
export function toEntryUpdate(e: Entry, fields: readonly EntryField[], td: TrustDomain): EntryUpdate {
  let out: EntryUpdate = {};
  for (const field of fields) out = { ...out, ...checkField(field, e, td) };
  return out;
}

/** The fields a mask selects; no mask means all of them (the whole entry is replaced). */
export function maskedFields(mask: EntryMask | undefined): readonly EntryField[] {
  return mask === undefined ? ENTRY_FIELDS : ENTRY_FIELDS.filter((f) => mask[f]);
}

/** The datastore record as a wire message. */
export function entryToProto(r: RegistrationEntry): Entry {
  return create(EntrySchema, {
    id: r.id,
    spiffeId: r.spiffeId,
    parentId: r.parentId,
    selectors: r.selectors.map((s) => ({ type: s.type, value: s.value })),
    x509SvidTtl: r.x509SvidTtl,
    jwtSvidTtl: r.jwtSvidTtl,
    dnsNames: [...r.dnsNames],
    federatesWith: [...r.federatesWith],
    admin: r.admin,
    downstream: r.downstream,
    hint: r.hint,
    expiresAt: BigInt(r.expiresAt ?? 0),
    revisionNumber: BigInt(r.revisionNumber),
    createdAt: BigInt(r.createdAt),
  });
}
