/**
 * Attests one Workload API caller: runs every configured attestor on its peer
 * credentials, unites their selectors, and then checks that the pid still names the
 * process that connected, so selectors read from a recycled pid are never used.
 * @module
 */
import { WorkloadAttestationError } from '../agent-errors.js';
import { isSameProcess } from './peer-credentials.js';
import type { PeerCredentials, Selector, WorkloadAttestor } from './workload-attestor.js';

/** Attests callers with a fixed set of attestors. */
export interface WorkloadAttestation {
  /**
   * The caller's selectors, deduplicated.
   * @throws WorkloadAttestationError when an attestor fails or the process changed meanwhile.
   */
  attest(peer: PeerCredentials, signal?: AbortSignal): Promise<Selector[]>;
}

/** Options of {@link createWorkloadAttestation}. */
export interface WorkloadAttestationOptions {
  /** Replaces the pid-reuse check (tests attest processes that are not socket peers). */
  readonly sameProcess?: (peer: PeerCredentials) => boolean;
}

export function createWorkloadAttestation(
  attestors: readonly WorkloadAttestor[],
  options: WorkloadAttestationOptions = {},
): WorkloadAttestation {
  const sameProcess = options.sameProcess ?? isSameProcess;
  return {
    async attest(peer, signal) {
      let results: Selector[][];
      try {
        results = await Promise.all(attestors.map((a) => a.attest(peer, signal)));
      } catch (err) {
        const reason =
          (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'the process has exited' : (err as Error).message;
        throw new WorkloadAttestationError(peer.pid, reason, { cause: err });
      }
      if (!sameProcess(peer)) {
        throw new WorkloadAttestationError(peer.pid, 'the process exited or its pid was reused during attestation');
      }
      const seen = new Set<string>();
      const out: Selector[] = [];
      for (const s of results.flat()) {
        const key = `${s.type}:${s.value}`;
        if (seen.has(key)) continue;
        seen.add(key);
        out.push(s);
      }
      return out;
    },
  };
}
