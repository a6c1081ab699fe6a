/**
 * Attested agents (nodes): created at attestation, updated at renewal and re-attestation,
 * banned by an operator, deleted on eviction.
 * @module
 */
import type { Kysely, Selectable } from 'kysely';
import { DatastoreError, quote } from './datastore-error.js';
import { normalizeSelectors } from './selector-set.js';
import { type Engine, guarded } from './sql/engine.js';
import type { AttestedAgentTable, Database } from './sql/schema.js';
import type { AgentFilter, AgentUpdate, AttestedAgent, NewAgent, Page, PageRequest, Selector } from './types.js';

function agentFromRow(r: Selectable<AttestedAgentTable>): AttestedAgent {
  const selectors = JSON.parse(r.selectors) as Selector[];
  for (const s of selectors) Object.freeze(s);
  return Object.freeze({
    spiffeId: r.spiffe_id,
    attestationType: r.attestation_type,
    serialNumber: r.serial_number,
    expiresAt: Number(r.expires_at),
    banned: Number(r.banned) === 1,
    selectors: Object.freeze(selectors),
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  });
}

function notFound(spiffeId: string): DatastoreError {
  return new DatastoreError('ERR_AGENT_NOT_FOUND', `no attested agent ${quote(spiffeId)}`);
}

function epochSeconds(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be epoch seconds, got ${value}`);
  return value;
}

export class AgentStore {
  readonly #engine: Engine;
  readonly #now: () => number;

  /** @param now current time in epoch seconds */
  constructor(engine: Engine, now: () => number) {
    this.#engine = engine;
    this.#now = now;
  }

  /** Records a newly attested agent; ERR_AGENT_EXISTS when the SPIFFE ID is already attested. */
  async create(input: NewAgent): Promise<AttestedAgent> {
    const now = this.#now();
    const row = {
      spiffe_id: input.spiffeId,
      attestation_type: input.attestationType,
      serial_number: input.serialNumber,
      expires_at: epochSeconds('expiresAt', input.expiresAt),
      banned: 0,
      selectors: JSON.stringify(normalizeSelectors(input.selectors ?? [])),
      created_at: now,
      updated_at: now,
    };
    return guarded(this.#engine, async () => {
      try {
        await this.#engine.write((tx) => tx.insertInto('attested_agents').values(row).execute());
      } catch (err) {
        if (this.#engine.isUniqueViolation(err)) {
          throw new DatastoreError('ERR_AGENT_EXISTS', `agent ${quote(input.spiffeId)} is already attested`, {
            cause: err,
          });
        }
        throw err;
      }
      return agentFromRow(row);
    });
  }

  async get(spiffeId: string): Promise<AttestedAgent | undefined> {
    return guarded(this.#engine, async () => {
      const row = await this.#engine.db
        .selectFrom('attested_agents')
        .selectAll()
        .where('spiffe_id', '=', spiffeId)
        .executeTakeFirst();
      return row ? agentFromRow(row) : undefined;
    });
  }

  /** Agents matching the filter, ordered by SPIFFE ID, paginated by key like EntryStore.list. */
  async list(filter: AgentFilter = {}, page: PageRequest = {}): Promise<Page<AttestedAgent>> {
    const pageSize = page.pageSize ?? 0;
    if (!Number.isSafeInteger(pageSize) || pageSize < 0) {
      throw new RangeError(`pageSize must be a non-negative integer, got ${pageSize}`);
    }
    return guarded(this.#engine, async () => {
      let query = this.#filtered(this.#engine.db, filter).selectAll().orderBy('spiffe_id');
      if (page.pageToken) query = query.where('spiffe_id', '>', page.pageToken);
      if (pageSize > 0) query = query.limit(pageSize + 1);
      const rows = await query.execute();
      const more = pageSize > 0 && rows.length > pageSize;
      const items = (more ? rows.slice(0, pageSize) : rows).map(agentFromRow);
      return { items, nextPageToken: more ? items[items.length - 1]!.spiffeId : undefined };
    });
  }

  async count(filter: AgentFilter = {}): Promise<number> {
    return guarded(this.#engine, async () => {
      const row = await this.#filtered(this.#engine.db, filter)
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow();
      return Number(row.n);
    });
  }

  #filtered(db: Kysely<Database>, filter: AgentFilter) {
    let query = db.selectFrom('attested_agents');
    if (filter.attestationType !== undefined) query = query.where('attestation_type', '=', filter.attestationType);
    if (filter.banned !== undefined) query = query.where('banned', '=', filter.banned ? 1 : 0);
    if (filter.expiresBefore !== undefined) query = query.where('expires_at', '<', filter.expiresBefore);
    return query;
  }

  /** Updates the given fields (re-attestation, renewal); ERR_AGENT_NOT_FOUND when absent. Never clears `banned`. */
  async update(spiffeId: string, patch: AgentUpdate): Promise<AttestedAgent> {
    const set: Partial<Selectable<AttestedAgentTable>> = { updated_at: this.#now() };
    if (patch.attestationType !== undefined) set.attestation_type = patch.attestationType;
    if (patch.serialNumber !== undefined) set.serial_number = patch.serialNumber;
    if (patch.expiresAt !== undefined) set.expires_at = epochSeconds('expiresAt', patch.expiresAt);
    if (patch.selectors !== undefined) set.selectors = JSON.stringify(normalizeSelectors(patch.selectors));
    return this.#updateReturning(spiffeId, set);
  }

  /**
   * Records the serial number and expiry of the agent's renewed SVID. With `expectedSerial`,
   * the update happens only if the stored serial still equals it (compare-and-set, so two
   * concurrent renewals cannot both win); otherwise returns undefined.
   */
  async updateSerial(
    spiffeId: string,
    serialNumber: string,
    expiresAt: number,
    options: { expectedSerial?: string } = {},
  ): Promise<AttestedAgent | undefined> {
    const set = {
      serial_number: serialNumber,
      expires_at: epochSeconds('expiresAt', expiresAt),
      updated_at: this.#now(),
    };
    if (options.expectedSerial === undefined) return this.#updateReturning(spiffeId, set);
    return guarded(this.#engine, async () => {
      const row = await this.#engine.write((tx) =>
        tx
          .updateTable('attested_agents')
          .set(set)
          .where('spiffe_id', '=', spiffeId)
          .where('serial_number', '=', options.expectedSerial!)
          .returningAll()
          .executeTakeFirst(),
      );
      if (row) return agentFromRow(row);
      if (!(await this.get(spiffeId))) throw notFound(spiffeId);
      return undefined;
    });
  }

  /** Bans the agent: it can neither renew nor re-attest until evicted (delete). */
  async ban(spiffeId: string): Promise<AttestedAgent> {
    return this.#updateReturning(spiffeId, { banned: 1, updated_at: this.#now() });
  }

  /** Evicts the agent (it may attest again, as a new agent); returns it as it was. */
  async delete(spiffeId: string): Promise<AttestedAgent> {
    return guarded(this.#engine, async () => {
      const row = await this.#engine.write((tx) =>
        tx.deleteFrom('attested_agents').where('spiffe_id', '=', spiffeId).returningAll().executeTakeFirst(),
      );
      if (!row) throw notFound(spiffeId);
      return agentFromRow(row);
    });
  }

  async #updateReturning(spiffeId: string, set: Partial<Selectable<AttestedAgentTable>>): Promise<AttestedAgent> {
    return guarded(this.#engine, async () => {
      const row = await this.#engine.write((tx) =>
        tx.updateTable('attested_agents').set(set).where('spiffe_id', '=', spiffeId).returningAll().executeTakeFirst(),
      );
      if (!row) throw notFound(spiffeId);
      return agentFromRow(row);
    });
  }
}
