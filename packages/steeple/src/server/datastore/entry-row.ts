/**
 * A registration entry as a row: the canonical form of what a caller supplies (sorted
 * selectors, deduplicated lists, defaults), the identity hash that makes duplicates a
 * unique-index violation, and the mapping back to the immutable domain value.
 * @module
 */
import { createHash } from 'node:crypto';
import type { Selectable } from 'kysely';
import { dedupeInOrder, normalizeNames, normalizeSelectors } from './selector-set.js';
import type { RegistrationEntryTable } from './sql/schema.js';
import type { NewEntry, RegistrationEntry, Selector } from './types.js';

export type EntryRow = Selectable<RegistrationEntryTable>;

function identityHash(spiffeId: string, parentId: string, selectors: readonly Selector[]): string {
  const canonical = JSON.stringify([spiffeId, parentId, selectors.map((s) => [s.type, s.value])]);
  return createHash('sha256').update(canonical).digest('hex');
}

function nonNegativeInteger(name: string, value: number | undefined): number {
  const v = value ?? 0;
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${name} must be a non-negative integer, got ${v}`);
  return v;
}

function expiry(value: number | null | undefined): number | null {
  if (value === undefined || value === null) return null;
  return nonNegativeInteger('expiresAt', value);
}

/** The fields of a row that a caller controls, canonicalized. */
export interface EntryContent {
  spiffeId: string;
  parentId: string;
  selectors: readonly Selector[];
  x509SvidTtl: number;
  jwtSvidTtl: number;
  dnsNames: readonly string[];
  federatesWith: readonly string[];
  admin: boolean;
  downstream: boolean;
  hint: string;
  expiresAt: number | null;
}

export function contentOf(input: NewEntry): EntryContent {
  if (typeof input.spiffeId !== 'string' || typeof input.parentId !== 'string') {
    throw new TypeError('entry spiffeId and parentId must be strings');
  }
  return {
    spiffeId: input.spiffeId,
    parentId: input.parentId,
    selectors: normalizeSelectors(input.selectors ?? []),
    x509SvidTtl: nonNegativeInteger('x509SvidTtl', input.x509SvidTtl),
    jwtSvidTtl: nonNegativeInteger('jwtSvidTtl', input.jwtSvidTtl),
    dnsNames: dedupeInOrder(input.dnsNames ?? []),
    federatesWith: normalizeNames(input.federatesWith ?? []),
    admin: input.admin ?? false,
    downstream: input.downstream ?? false,
    hint: input.hint ?? '',
    expiresAt: expiry(input.expiresAt),
  };
}

export function rowOf(id: string, c: EntryContent, createdAt: number, revision: number): EntryRow {
  return {
    id,
    spiffe_id: c.spiffeId,
    parent_id: c.parentId,
    identity_hash: identityHash(c.spiffeId, c.parentId, c.selectors),
    selectors: JSON.stringify(c.selectors),
    selector_count: c.selectors.length,
    x509_svid_ttl: c.x509SvidTtl,
    jwt_svid_ttl: c.jwtSvidTtl,
    dns_names: JSON.stringify(c.dnsNames),
    federates_with: JSON.stringify(c.federatesWith),
    federates_with_count: c.federatesWith.length,
    admin: c.admin ? 1 : 0,
    downstream: c.downstream ? 1 : 0,
    hint: c.hint,
    expires_at: c.expiresAt,
    created_at: createdAt,
    revision_number: revision,
  };
}

function freezeSelectors(list: Selector[]): readonly Selector[] {
  for (const s of list) Object.freeze(s);
  return Object.freeze(list);
}

/** Row to domain value. Numbers go through Number() so that no engine's integer type leaks out. */
export function entryFromRow(r: EntryRow): RegistrationEntry {
  return Object.freeze({
    id: r.id,
    spiffeId: r.spiffe_id,
    parentId: r.parent_id,
    selectors: freezeSelectors(JSON.parse(r.selectors) as Selector[]),
    x509SvidTtl: Number(r.x509_svid_ttl),
    jwtSvidTtl: Number(r.jwt_svid_ttl),
    dnsNames: Object.freeze(JSON.parse(r.dns_names) as string[]),
    federatesWith: Object.freeze(JSON.parse(r.federates_with) as string[]),
    admin: Number(r.admin) === 1,
    downstream: Number(r.downstream) === 1,
    hint: r.hint,
    expiresAt: r.expires_at === null ? null : Number(r.expires_at),
    createdAt: Number(r.created_at),
    revisionNumber: Number(r.revision_number),
  });
}

export function sameContent(a: EntryContent, b: EntryContent): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function contentOfEntry(e: RegistrationEntry): EntryContent {
  return {
    spiffeId: e.spiffeId,
    parentId: e.parentId,
    selectors: e.selectors,
    x509SvidTtl: e.x509SvidTtl,
    jwtSvidTtl: e.jwtSvidTtl,
    dnsNames: e.dnsNames,
    federatesWith: e.federatesWith,
    admin: e.admin,
    downstream: e.downstream,
    hint: e.hint,
    expiresAt: e.expiresAt,
  };
}
