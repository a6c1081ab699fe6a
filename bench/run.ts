/**
 * `npm run bench`: prints one table per area. Pass area names to run a subset:
 * `npm run bench -- sdk`.
 */
import { cpus } from 'node:os';
import { benchAgent } from './agent.js';
import { benchCa } from './ca.js';
import { benchDatastore } from './datastore.js';
import { benchProxy } from './proxy.js';
import { benchProxyInstructions } from './proxy-instructions.js';
import { benchSdk } from './sdk.js';
import { printTable, type Row } from './table.js';

const areas: Record<string, { title: string; run: () => Promise<Row[]> }> = {
  sdk: { title: 'SDK: SVID verification (one core)', run: benchSdk },
  ca: { title: 'CA: X.509-SVID and JWT-SVID signing (one core)', run: benchCa },
  agent: { title: 'Agent: Workload API latency, entry propagation, memory', run: benchAgent },
  proxy: { title: 'mTLS proxy: Steeple vs nginx, HAProxy, node:tls pipe', run: benchProxy },
  'proxy-instructions': {
    title: 'mTLS proxy: user-space instructions per keep-alive request (callgrind; steady on a busy machine)',
    run: benchProxyInstructions,
  },
  datastore: { title: 'Server datastore: 100,000 entries on SQLite and PostgreSQL', run: benchDatastore },
};

const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const selected = wanted.length > 0 ? wanted : Object.keys(areas);
console.log(
  `# Steeple benchmarks — Node ${process.version}, OpenSSL ${process.versions.openssl}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`,
);
for (const name of selected) {
  const area = areas[name];
  if (!area) {
    console.error(`unknown benchmark "${name}"; known: ${Object.keys(areas).join(', ')}`);
    process.exit(2);
  }
  printTable(area.title, await area.run());
}
