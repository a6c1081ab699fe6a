/**
 * Workload attestation: who is calling on the Workload API socket, told by the kernel
 * (peer credentials) and turned into selectors by attestor plugins.
 * @module
 */

/** A property of a workload as an attestor found it: `{ type: 'unix', value: 'uid:1000' }`. */
export interface Selector {
  readonly type: string;
  readonly value: string;
}

/** The peer of one Workload API connection, as the kernel reported it when it connected. */
export interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
  /**
   * A pidfd for exactly that process (SO_PEERPIDFD, Linux ≥ 6.5), or undefined where the
   * kernel has none. It lets the agent prove the pid was not reused during attestation.
   */
  readonly pidfd?: number;
  /** Without a pidfd: the process start time at connect time (/proc/<pid>/stat field 22), to detect pid reuse. */
  readonly startTime?: string;
}

/** Turns a caller into selectors. Every configured attestor runs; their selectors are united. */
export interface WorkloadAttestor {
  /** The selector type it yields and the config key it is chosen by: 'unix'. */
  readonly name: string;
  /** The selectors of the process `peer.pid`; rejects when the process cannot be inspected. */
  attest(peer: PeerCredentials, signal?: AbortSignal): Promise<Selector[]>;
}

/** `type:value`, the form selectors are written in on the command line and in logs. */
export function formatSelector(selector: Selector): string {
  return `${selector.type}:${selector.value}`;
}
