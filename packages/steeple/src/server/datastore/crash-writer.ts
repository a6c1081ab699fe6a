/**
 * Child process of crash.test.ts: opens the datastore named by argv[2] (a JSON
 * DatastoreConfig, plus optional `synchronous` for SQLite), then creates entries from
 * several concurrent loops forever, printing each id on its own line only after create()
 * resolved — i.e. after the write was acknowledged. The parent SIGKILLs it mid-burst.
 * stdout is a pipe, which Node writes synchronously on Linux, so a printed id has left
 * this process before the next write starts.
 */
import { openDatastore } from './datastore.js';

const arg = JSON.parse(process.argv[2] ?? '{}') as { synchronous?: 'full' | 'normal' } & Parameters<
  typeof openDatastore
>[0];
const ds = await openDatastore(arg, arg.synchronous ? { sqliteSynchronous: arg.synchronous } : {});
process.stdout.write('ready\n');

async function loop(worker: number): Promise<never> {
  for (let i = 0; ; i++) {
    const e = await ds.entries.create({
      spiffeId: `spiffe://crash.test/w/${worker}/${i}`,
      parentId: 'spiffe://crash.test/agent',
      selectors: [{ type: 'unix', value: `uid:${i}` }],
    });
    process.stdout.write(`${e.id}\n`);
  }
}

await Promise.all([0, 1, 2, 3].map(loop));
