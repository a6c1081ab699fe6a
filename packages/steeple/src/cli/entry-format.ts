/**
 * How registration entries print for people (`-output pretty`), in SPIRE's block style.
 * @module
 */

import { formatKeyValues } from '../common/cli/output.js';
import type { Entry } from '../gen/steeple/types/v1/entry_pb.js';

function ttl(seconds: number): string {
  return seconds === 0 ? 'default' : String(seconds);
}

/** When an epoch-seconds value is set, as an ISO 8601 time. */
export function formatEpoch(seconds: bigint): string | undefined {
  return seconds === 0n ? undefined : new Date(Number(seconds) * 1000).toISOString();
}

/** One entry as `Label : value` lines. */
export function formatEntry(e: Entry): string {
  const stored = e.id !== ''; // an entry as requested (not yet stored) has no id or revision
  return formatKeyValues([
    ['Entry ID', stored ? e.id : undefined],
    ['SPIFFE ID', e.spiffeId],
    ['Parent ID', e.parentId],
    ['Revision', stored ? e.revisionNumber.toString() : undefined],
    ['X509-SVID TTL', ttl(e.x509SvidTtl)],
    ['JWT-SVID TTL', ttl(e.jwtSvidTtl)],
    ['Entry expiry', formatEpoch(e.expiresAt)],
    ['Selector', e.selectors.map((s) => `${s.type}:${s.value}`)],
    ['FederatesWith', e.federatesWith],
    ['DNS name', e.dnsNames],
    ['Admin', e.admin ? 'true' : undefined],
    ['Downstream', e.downstream ? 'true' : undefined],
    ['Hint', e.hint === '' ? undefined : e.hint],
  ]);
}

/** "Found 2 entries" followed by the entries, separated by blank lines. */
export function formatEntryList(entries: readonly Entry[]): string {
  const head = `Found ${entries.length} ${entries.length === 1 ? 'entry' : 'entries'}`;
  return [head, ...entries.map(formatEntry)].join('\n\n');
}
