/**
 * Datastore at 100,000 registration entries, on SQLite (file in a temp dir, WAL,
 * synchronous=FULL) and PostgreSQL (a scratch schema in the test database): batched
 * create, list, count, a delta sync of one changed entry (which must cost the same at 1,000
 * and at 100,000 entries), cold open and cache load, and an agent's authorization lookup.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Datastore,
  type DatastoreConfig,
  openDatastore,
} from '../packages/steeple/src/server/datastore/datastore.js';
import { EntryCache } from '../packages/steeple/src/server/datastore/entry-cache.js';
import { createScratchSchema } from '../packages/steeple/src/server/datastore/testing/postgres-scratch-schema.js';
import type { NewEntry } from '../packages/steeple/src/server/datastore/types.js';
import { fmt, type Row } from './table.js';

const TOTAL = 100_000;
const SMALL = 1_000;
const BATCH = 5_000;
const AGENTS = 1_000;
const TD = 'bench.example';

function newEntry(i: number): NewEntry {
  return {
    spiffeId: `spiffe://${TD}/ns/ns${i % 50}/sa/workload-${i}`,
    parentId: `spiffe://${TD}/spire/agent/join_token/agent-${i % AGENTS}`,
    selectors: [
      { type: 'k8s', value: `ns:ns${i % 50}` },
      { type: 'k8s', value: `sa:workload-${i}` },
    ],
    dnsNames: [`workload-${i}.ns${i % 50}.svc`],
  };
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const start = performance.now();
  const value = await fn();
  return { ms: performance.now() - start, value };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

const ms = (v: number) => `${v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(2)} ms`;

/** One changed entry, then the delta read back: median time over `rounds`, and the bytes returned. */
async function deltaSync(ds: Datastore, ids: string[], rounds = 15) {
  const times: number[] = [];
  const eventTimes: number[] = [];
  let bytes = 0;
  let eventBytes = 0;
  for (let r = 0; r < rounds; r++) {
    const since = await ds.entries.currentRevision();
    await ds.entries.update(ids[(r * 7919) % ids.length]!, { hint: `round-${r}-of-${ids.length}` });
    const events = await timed(() => ds.entries.listEventsSince(since));
    const changes = await timed(() => ds.entries.changesSince(since));
    if (changes.value.events.length !== 1) throw new Error('expected exactly one event');
    eventTimes.push(events.ms);
    times.push(changes.ms);
    eventBytes = JSON.stringify(events.value).length;
    bytes = JSON.stringify(changes.value).length;
  }
  return { eventMs: median(eventTimes), ms: median(times), eventBytes, bytes };
}

async function benchEngine(engine: string, config: DatastoreConfig, sizeOf?: () => number): Promise<Row[]> {
  const rows: Row[] = [];
  const row = (operation: string, entries: number, time: string, rate: string, bytes: string | number = '') =>
    rows.push({ engine, operation, entries: entries.toLocaleString('en-US'), time, rate, bytes });

  let ds = await openDatastore(config);
  const ids: string[] = [];

  // The small store first, so the delta-sync figure can be compared with the large one.
  for (const e of await ds.entries.createMany(Array.from({ length: SMALL }, (_, i) => newEntry(i)))) ids.push(e.id);
  const small = await deltaSync(ds, ids);
  row('delta sync of 1 changed entry: events only', SMALL, ms(small.eventMs), '', small.eventBytes);
  row('delta sync of 1 changed entry: events + entry', SMALL, ms(small.ms), '', small.bytes);

  const create = await timed(async () => {
    for (let start = SMALL; start < TOTAL; start += BATCH) {
      const batch = Array.from({ length: Math.min(BATCH, TOTAL - start) }, (_, k) => newEntry(start + k));
      for (const e of await ds.entries.createMany(batch)) ids.push(e.id);
    }
  });
  const created = TOTAL - SMALL;
  row(
    `create ${created.toLocaleString('en-US')} entries (createMany, ${BATCH.toLocaleString('en-US')} per transaction)`,
    TOTAL,
    ms(create.ms),
    `${fmt((created * 1000) / create.ms)} entries/s`,
  );

  const single = await timed(async () => {
    for (let i = 0; i < 200; i++) await ds.entries.create(newEntry(TOTAL + i));
  });
  row(
    'create 1 entry (one transaction each, 200 in a row)',
    TOTAL,
    ms(single.ms / 200),
    `${fmt((200 * 1000) / single.ms)} entries/s`,
  );

  const list = await timed(() => ds.entries.list());
  row(
    'list all entries (one query)',
    list.value.items.length,
    ms(list.ms),
    `${fmt((list.value.items.length * 1000) / list.ms)} entries/s`,
  );

  const paged = await timed(async () => {
    let n = 0;
    let token: string | undefined;
    do {
      const page = await ds.entries.list(undefined, { pageSize: 500, ...(token ? { pageToken: token } : {}) });
      n += page.items.length;
      token = page.nextPageToken;
    } while (token);
    return n;
  });
  row(
    'list all entries (pages of 500)',
    paged.value,
    ms(paged.ms),
    `${fmt((paged.value * 1000) / paged.ms)} entries/s`,
  );

  const count = await timed(() => ds.entries.count());
  row('count entries', count.value, ms(count.ms), '');

  const bySelector = await timed(() =>
    ds.entries.list({ selectors: { selectors: [{ type: 'k8s', value: 'ns:ns7' }], match: 'superset' } }),
  );
  row('list by selector (superset, 2,000 matches)', count.value, ms(bySelector.ms), '');

  const large = await deltaSync(ds, ids);
  row('delta sync of 1 changed entry: events only', count.value, ms(large.eventMs), '', large.eventBytes);
  row('delta sync of 1 changed entry: events + entry', count.value, ms(large.ms), '', large.bytes);

  await ds.close();
  const open = await timed(() => openDatastore(config));
  ds = open.value;
  row('cold open (connect, check schema)', count.value, ms(open.ms), '');
  const load = await timed(() => EntryCache.load(ds.entries));
  row('cold start: load the entry cache (full snapshot)', load.value.size, ms(load.ms), '');

  const agentSelectors = [{ type: 'join_token', value: 'agent-42' }];
  const agentId = `spiffe://${TD}/spire/agent/join_token/agent-42`;
  const lookups = 2_000;
  const auth = await timed(async () => {
    let n = 0;
    for (let i = 0; i < lookups; i++) n = load.value.authorizedEntries(agentId, agentSelectors).length;
    return n;
  });
  row(
    `authorized entries of one agent from the cache (${auth.value} of ${load.value.size.toLocaleString('en-US')})`,
    load.value.size,
    ms(auth.ms / lookups),
    `${fmt((lookups * 1000) / auth.ms)} lookups/s`,
  );
  if (sizeOf) row('database size on disk', count.value, '', '', `${(sizeOf() / 1024 / 1024).toFixed(1)} MiB`);
  await ds.close();
  return rows;
}

export async function benchDatastore(): Promise<Row[]> {
  const rows: Row[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'steeple-bench-ds-'));
  try {
    const path = join(dir, 'datastore.sqlite3');
    rows.push(...(await benchEngine('SQLite', { type: 'sqlite', path }, () => statSync(path).size)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const scratch = await createScratchSchema(undefined, 'steeple_bench');
  try {
    rows.push(...(await benchEngine('PostgreSQL', { type: 'postgres', connection_string: scratch.connectionString })));
  } finally {
    await scratch.drop();
  }
  return rows;
}
