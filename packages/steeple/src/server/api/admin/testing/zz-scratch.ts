import { generateKeyPairSync } from 'node:crypto';
import { ConnectError } from '@connectrpc/connect';
import { createAdminClient } from '../../../../common/admin-client.js';
import { buildCsr } from '../../../../cli/build-csr.js';
import { startAdminFixture } from './admin-fixture.js';

const f = await startAdminFixture();
const r = await f.client.entries.createEntries({ entries: [
  { spiffeId: 'spiffe://example.org/web', parentId: 'spiffe://example.org/agent', selectors: [{ type: 'unix', value: 'uid:1000' }] },
  { spiffeId: 'spiffe://example.org/web', parentId: 'spiffe://example.org/agent', selectors: [{ type: 'unix', value: 'uid:1000' }] },
  { spiffeId: 'spiffe://other.org/web', parentId: 'spiffe://example.org/agent', selectors: [{ type: 'unix', value: 'uid:1000' }] },
]});
console.log(JSON.stringify(r.results.map(x => [x.status?.code, x.status?.message, x.entry?.id])));
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const m = await f.client.svids.mintX509Svid({ csr: buildCsr(privateKey, publicKey), spiffeId: 'spiffe://example.org/x', dnsNames: ['a.example.org'] });
console.log(m.svid?.certChain.length, m.svid?.expiresAt);
try { await f.client.entries.getEntry({ id: 'nope' }); } catch (e) { console.log((e as ConnectError).code, (e as ConnectError).rawMessage); }
const t = await f.client.agents.createJoinToken({ ttlSeconds: 60, agentAliasSpiffeId: 'spiffe://example.org/node' });
console.log(t.agentSpiffeId);
const h = await f.client.health.check({});
console.log(h.status, h.components);
const missing = createAdminClient('/tmp/nonexistent-dir/api.sock');
try { await missing.health.check({}); } catch (e) { console.log((e as ConnectError).code, (e as ConnectError).rawMessage); }
missing.close();
console.log(f.logs.filter(l => l.level === 'info').map(l => JSON.stringify(l)).join('\n'));
await f.close();
