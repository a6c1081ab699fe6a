/**
 * EntryService: registration entries. Batch calls answer item by item in request order, so one
 * refused entry does not fail the others (as SPIRE's BatchCreateEntry does).
 * @module
 */
import { create } from '@bufbuild/protobuf';
import type { ServiceImpl } from '@connectrpc/connect';
import {
  type CreateEntriesResponse_Result,
  CreateEntriesResponse_ResultSchema,
  type DeleteEntriesResponse_Result,
  DeleteEntriesResponse_ResultSchema,
  type EntryFilter,
  type EntryService,
  type FederatesWithMatch,
  MatchBehavior,
  type SelectorMatch,
  type UpdateEntriesResponse_Result,
  UpdateEntriesResponse_ResultSchema,
} from '../../../gen/steeple/server/v1/entry_pb.js';
import type { Entry } from '../../../gen/steeple/types/v1/entry_pb.js';
import {
  type EntryFilter as DatastoreEntryFilter,
  isDatastoreError,
  type NewEntry,
  type RegistrationEntry,
  type SetMatch,
} from '../../datastore/index.js';
import { loggableId } from './admin-caller.js';
import type { AdminContext } from './admin-context.js';
import { entryToProto, maskedFields, toEntryUpdate, toNewEntry } from './entry-fields.js';
import { requirePageSize, requireSelectors, requireSpiffeId, requireTrustDomain } from './field-rules.js';
import { type ItemStatus, invalidField, itemStatusFor, notFound, OK_STATUS } from './grpc-status.js';

/** At most this many entry ids are listed in one audit line; the count is always there. */
const AUDIT_ID_LIMIT = 20;

export function setMatchOf(match: MatchBehavior): SetMatch {
  switch (match) {
    case MatchBehavior.SUBSET:
      return 'subset';
    case MatchBehavior.SUPERSET:
      return 'superset';
    case MatchBehavior.ANY:
      return 'any';
    default:
      return 'exact';
  }
}

export function selectorFilterOf(field: string, m: SelectorMatch): NonNullable<DatastoreEntryFilter['selectors']> {
  return { selectors: requireSelectors(`${field}.selectors`, m.selectors), match: setMatchOf(m.match) };
}

function federatesWithFilterOf(m: FederatesWithMatch): NonNullable<DatastoreEntryFilter['federatesWith']> {
  if (m.trustDomains.length === 0) {
    throw invalidField('filter.byFederatesWith.trustDomains', 'at least one trust domain is required');
  }
  return {
    trustDomains: m.trustDomains.map(
      (td, i) => requireTrustDomain(`filter.byFederatesWith.trustDomains[${i}]`, td).name,
    ),
    match: setMatchOf(m.match),
  };
}

function entryFilterOf(f: EntryFilter | undefined): DatastoreEntryFilter {
  if (f === undefined) return {};
  return {
    ...(f.bySpiffeId !== undefined ? { spiffeId: requireSpiffeId('filter.bySpiffeId', f.bySpiffeId).toString() } : {}),
    ...(f.byParentId !== undefined ? { parentId: requireSpiffeId('filter.byParentId', f.byParentId).toString() } : {}),
    ...(f.bySelectors !== undefined ? { selectors: selectorFilterOf('filter.bySelectors', f.bySelectors) } : {}),
    ...(f.byFederatesWith !== undefined ? { federatesWith: federatesWithFilterOf(f.byFederatesWith) } : {}),
    ...(f.byHint !== undefined ? { hint: f.byHint } : {}),
    ...(f.byDownstream !== undefined ? { downstream: f.byDownstream } : {}),
  };
}

function auditEntries(entries: readonly RegistrationEntry[]): Record<string, unknown> {
  return {
    count: entries.length,
    entries: entries
      .slice(0, AUDIT_ID_LIMIT)
      .map((e) => ({ id: e.id, spiffeId: loggableId(e.spiffeId), parentId: loggableId(e.parentId) })),
  };
}

export function entryService(c: AdminContext): Partial<ServiceImpl<typeof EntryService>> {
  const store = c.datastore.entries;

  /** The result of creating one entry, when the batch could not be created in one go. */
  async function createOne(entry: NewEntry): Promise<{ status: ItemStatus; entry?: RegistrationEntry }> {
    try {
      return { status: OK_STATUS, entry: await store.create(entry) };
    } catch (err) {
      const status = itemStatusFor(err);
      if (status === undefined) throw err;
      const existingId = isDatastoreError(err, 'ERR_ENTRY_DUPLICATE') ? err.existingEntryId : undefined;
      const existing = existingId === undefined ? undefined : await store.get(existingId);
      return existing === undefined ? { status } : { status, entry: existing };
    }
  }

  return {
    async createEntries(req, ctx) {
      const results: CreateEntriesResponse_Result[] = new Array(req.entries.length);
      const valid: { index: number; entry: NewEntry }[] = [];
      req.entries.forEach((e: Entry, index) => {
        try {
          valid.push({ index, entry: toNewEntry(e, c.trustDomain) });
        } catch (err) {
          const status = itemStatusFor(err);
          if (status === undefined) throw err;
          results[index] = create(CreateEntriesResponse_ResultSchema, { status });
        }
      });
      const created: RegistrationEntry[] = [];
      if (valid.length > 0) {
        // One transaction for the whole batch when nothing in it is a duplicate (the common case,
        // and what makes bulk loads fast); item by item otherwise, so each gets its own answer.
        let batch: RegistrationEntry[] | undefined;
        try {
          batch = await store.createMany(valid.map((v) => v.entry));
        } catch (err) {
          if (!isDatastoreError(err, 'ERR_ENTRY_DUPLICATE')) throw err;
        }
        for (const [k, v] of valid.entries()) {
          const one = batch !== undefined ? { status: OK_STATUS, entry: batch[k] } : await createOne(v.entry);
          if (one.status.code === 0 && one.entry !== undefined) created.push(one.entry);
          results[v.index] = create(CreateEntriesResponse_ResultSchema, {
            status: one.status,
            ...(one.entry !== undefined ? { entry: entryToProto(one.entry) } : {}),
          });
        }
      }
      if (created.length > 0) {
        c.changed('entries');
        c.audit(
          ctx,
          { ...auditEntries(created), refused: req.entries.length - created.length },
          'created registration entries',
        );
      } else if (req.entries.length > 0) {
        c.audit(ctx, { count: 0, refused: req.entries.length }, 'created no registration entries');
      }
      return { results };
    },

    async getEntry(req) {
      if (req.id === '') throw invalidField('id', 'required');
      const entry = await store.get(req.id);
      if (entry === undefined) throw notFound(`no registration entry with id ${JSON.stringify(req.id)}`);
      return { entry: entryToProto(entry) };
    },

    async listEntries(req) {
      const filter = entryFilterOf(req.filter);
      const pageSize = requirePageSize('pageSize', req.pageSize);
      const page = await store.list(filter, { pageSize, ...(req.pageToken ? { pageToken: req.pageToken } : {}) });
      return { entries: page.items.map(entryToProto), nextPageToken: page.nextPageToken ?? '' };
    },

    async countEntries(req) {
      return { count: BigInt(await store.count(entryFilterOf(req.filter))) };
    },

    async updateEntries(req, ctx) {
      const fields = maskedFields(req.mask);
      const results: UpdateEntriesResponse_Result[] = [];
      const updated: RegistrationEntry[] = [];
      for (const e of req.entries) {
        try {
          if (e.id === '') throw invalidField('id', 'required: the id of the entry to update');
          const entry = await store.update(e.id, toEntryUpdate(e, fields, c.trustDomain));
          updated.push(entry);
          results.push(create(UpdateEntriesResponse_ResultSchema, { status: OK_STATUS, entry: entryToProto(entry) }));
        } catch (err) {
          const status = itemStatusFor(err);
          if (status === undefined) throw err;
          results.push(create(UpdateEntriesResponse_ResultSchema, { status }));
        }
      }
      if (updated.length > 0) {
        c.changed('entries');
        c.audit(
          ctx,
          { ...auditEntries(updated), fields, refused: req.entries.length - updated.length },
          'updated registration entries',
        );
      }
      return { results };
    },

    async deleteEntries(req, ctx) {
      const results: DeleteEntriesResponse_Result[] = [];
      const deleted: RegistrationEntry[] = [];
      for (const id of req.ids) {
        try {
          if (id === '') throw invalidField('ids', 'an entry id must not be empty');
          deleted.push(await store.delete(id));
          results.push(create(DeleteEntriesResponse_ResultSchema, { status: OK_STATUS, id }));
        } catch (err) {
          const status = itemStatusFor(err);
          if (status === undefined) throw err;
          results.push(create(DeleteEntriesResponse_ResultSchema, { status, id }));
        }
      }
      if (deleted.length > 0) {
        c.changed('entries');
        c.audit(
          ctx,
          { ...auditEntries(deleted), refused: req.ids.length - deleted.length },
          'deleted registration entries',
        );
      }
      return { results };
    },
  };
}
