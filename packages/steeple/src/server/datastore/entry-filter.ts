/**
 * EntryFilter as SQL, the same on both engines. Selector and federates-with filters use the
 * child tables (indexed by selector and by trust domain) and the stored set sizes:
 * - any:      the entry has a row matching one of the filter's elements;
 * - superset: the entry has rows matching all n elements (count = n);
 * - exact:    superset, and the entry's set has exactly n elements;
 * - subset:   every row of the entry matches (count = the entry's set size), or its set is empty.
 * selector-set.ts `matchesSet` is the in-memory definition these must agree with.
 * @module
 */
import { type Expression, type ExpressionBuilder, type RawBuilder, type SqlBool, sql } from 'kysely';
import { normalizeNames, normalizeSelectors } from './selector-set.js';
import type { Database } from './sql/schema.js';
import type { EntryFilter, SetMatch } from './types.js';

type EntryExpressions = ExpressionBuilder<Database, 'registration_entries'>;

interface ChildSet {
  /** Child table with an entry_id column. */
  readonly table: 'entry_selectors' | 'entry_federates_with';
  /** Column of registration_entries holding the set's size. */
  readonly countColumn: 'selector_count' | 'federates_with_count';
  /** Number of distinct elements in the filter. */
  readonly size: number;
  /** Condition on the child row `c` matching one element of the filter. */
  readonly elementMatch: () => RawBuilder<SqlBool>;
}

function setCondition(set: ChildSet, match: SetMatch): RawBuilder<SqlBool> {
  const table = sql.table(set.table);
  const count = sql.ref(`registration_entries.${set.countColumn}`);
  const n = set.size;
  if (n === 0) {
    if (match === 'any') return sql<SqlBool>`1 = 0`;
    if (match === 'superset') return sql<SqlBool>`1 = 1`;
    return sql<SqlBool>`${count} = 0`; // exact and subset of the empty set
  }
  switch (match) {
    case 'any':
      return sql<SqlBool>`registration_entries.id in (select c.entry_id from ${table} c where ${set.elementMatch()})`;
    case 'superset':
      return sql<SqlBool>`registration_entries.id in (select c.entry_id from ${table} c where ${set.elementMatch()} group by c.entry_id having count(*) = ${n})`;
    case 'exact':
      return sql<SqlBool>`${count} = ${n} and registration_entries.id in (select c.entry_id from ${table} c where ${set.elementMatch()} group by c.entry_id having count(*) = ${n})`;
    case 'subset': {
      const innerCount = sql.ref(`e.${set.countColumn}`);
      return sql<SqlBool>`(${count} = 0 or (${count} <= ${n} and registration_entries.id in (select c.entry_id from ${table} c inner join registration_entries e on e.id = c.entry_id where ${set.elementMatch()} group by c.entry_id, ${innerCount} having count(*) = ${innerCount})))`;
    }
  }
}

/** The filter's conditions, to be AND-ed; empty when the filter is empty. */
export function entryFilterConditions(eb: EntryExpressions, filter: EntryFilter | undefined): Expression<SqlBool>[] {
  const out: Expression<SqlBool>[] = [];
  if (filter === undefined) return out;
  if (filter.spiffeId !== undefined) out.push(eb('registration_entries.spiffe_id', '=', filter.spiffeId));
  if (filter.parentId !== undefined) out.push(eb('registration_entries.parent_id', '=', filter.parentId));
  if (filter.hint !== undefined) out.push(eb('registration_entries.hint', '=', filter.hint));
  if (filter.downstream !== undefined) out.push(eb('registration_entries.downstream', '=', filter.downstream ? 1 : 0));
  if (filter.selectors !== undefined) {
    const selectors = normalizeSelectors(filter.selectors.selectors);
    out.push(
      setCondition(
        {
          table: 'entry_selectors',
          countColumn: 'selector_count',
          size: selectors.length,
          elementMatch: () =>
            sql<SqlBool>`(${sql.join(
              selectors.map((s) => sql`(c.type = ${s.type} and c.value = ${s.value})`),
              sql` or `,
            )})`,
        },
        filter.selectors.match,
      ),
    );
  }
  if (filter.federatesWith !== undefined) {
    const names = normalizeNames(filter.federatesWith.trustDomains);
    out.push(
      setCondition(
        {
          table: 'entry_federates_with',
          countColumn: 'federates_with_count',
          size: names.length,
          elementMatch: () => sql<SqlBool>`c.trust_domain in (${sql.join(names)})`,
        },
        filter.federatesWith.match,
      ),
    );
  }
  return out;
}
