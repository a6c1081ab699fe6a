/**
 * How attested agents print for people, in SPIRE's block style.
 * @module
 */

import { formatKeyValues } from '../common/cli/output.js';
import type { Agent } from '../gen/steeple/server/v1/agent_pb.js';
import { formatEpoch } from './entry-format.js';

export function formatAgent(a: Agent, options: { selectors?: boolean } = {}): string {
  return formatKeyValues([
    ['SPIFFE ID', a.spiffeId],
    ['Attestation type', a.attestationType],
    ['Expiration time', formatEpoch(a.x509SvidExpiresAt) ?? '-'],
    ['Serial number', a.x509SvidSerialNumber],
    ['Can re-attest', String(a.canReattest)],
    ['Banned', a.banned ? 'true' : undefined],
    ['Selector', options.selectors ? a.selectors.map((s) => `${s.type}:${s.value}`) : undefined],
  ]);
}
