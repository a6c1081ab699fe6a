/**
 * The network the two clusters talk over: network namespaces with NAT between them when
 * this process may make them (root, iproute2, iptables), loopback otherwise. Either way the
 * test gets the same shape (set STEEPLE_TWO_CLUSTERS_NETWORK=loopback to force loopback): where each cluster's processes run, which address each side
 * dials to reach the other, and the address B should see A's calls come from.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './processes.js';

const SCRIPT = join(ROOT, 'packages/steeple/test/support/two-clusters/netns.sh');
/** Namespaces are named `<BASE>-<pid>-{a,b,r}`; a crashed run's are found by this base. */
export const NETNS_BASE = 'st2c';

export interface Network {
  readonly variant: 'netns' | 'loopback';
  /** Why the namespace variant did not run (loopback only). */
  readonly reason?: string;
  /** Network namespace of cluster A / B (netns only). */
  readonly nsA?: string;
  readonly nsB?: string;
  /** Where listeners that the other cluster reaches bind. */
  readonly listenHost: string;
  /** The address A dials to reach B (B's own address). */
  readonly bAddressFromA: string;
  /** The address B dials to reach A's bundle endpoint (the NAT gateway, which forwards the port). */
  readonly aAddressFromB: string;
  /** The source address B sees on A's calls. */
  readonly aSourceSeenByB: string;
  /** A's own address, which B must never see behind the NAT (netns only). */
  readonly aOwnAddress?: string;
  /** Removes the namespaces (and with them the iptables rules). Idempotent. */
  tearDown(): void;
}

function run(args: readonly string[]): { ok: boolean; output: string } {
  const r = spawnSync(args[0] as string, args.slice(1), { encoding: 'utf8', timeout: 30_000 });
  return { ok: r.status === 0, output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error?.message ?? ''}`.trim() };
}

function loopback(reason: string): Network {
  return {
    variant: 'loopback',
    reason,
    listenHost: '127.0.0.1',
    bAddressFromA: '127.0.0.1',
    aAddressFromB: '127.0.0.1',
    aSourceSeenByB: '127.0.0.1',
    tearDown: () => undefined,
  };
}

/**
 * Makes the namespace network (see netns.sh) with A's bundle endpoint port forwarded, after
 * removing what a crashed earlier run left behind; falls back to loopback, saying why.
 */
export function setUpNetwork(aBundlePort: number): Network {
  if (process.env['STEEPLE_TWO_CLUSTERS_NETWORK'] === 'loopback') {
    return loopback('asked for by STEEPLE_TWO_CLUSTERS_NETWORK=loopback');
  }
  if (process.platform !== 'linux') return loopback(`not Linux (${process.platform})`);
  if (process.getuid?.() !== 0) return loopback('not root: network namespaces need CAP_NET_ADMIN');
  for (const tool of [
    ['ip', '-V'],
    ['iptables', '-V'],
    ['setpriv', '--version'],
  ]) {
    const r = run(tool);
    if (!r.ok) return loopback(`${tool[0]} is not usable (${r.output || 'not installed'})`);
  }
  run(['bash', SCRIPT, 'clean-stale', NETNS_BASE]);
  const prefix = `${NETNS_BASE}-${process.pid}`;
  const tearDown = () => void run(['bash', SCRIPT, 'down', prefix]);
  const up = run(['bash', SCRIPT, 'up', prefix, String(aBundlePort)]);
  if (!up.ok) {
    tearDown();
    return loopback(`cannot create network namespaces: ${up.output.split('\n').slice(-3).join(' ')}`);
  }
  return {
    variant: 'netns',
    nsA: `${prefix}-a`,
    nsB: `${prefix}-b`,
    listenHost: '0.0.0.0',
    bAddressFromA: '10.231.2.2',
    aAddressFromB: '10.231.2.1',
    aSourceSeenByB: '10.231.2.1',
    aOwnAddress: '10.231.1.2',
    tearDown,
  };
}
