/**
 * The `unix` workload attestor (SPIRE's plugin of that name): selectors from the calling
 * process's credentials as /proc/<pid>/status shows them, and optionally from its
 * executable.
 *
 * | selector | from |
 * |---|---|
 * | `unix:uid:<n>`, `unix:user:<name>` | the effective uid, its name in /etc/passwd |
 * | `unix:gid:<n>`, `unix:group:<name>` | the effective gid, its name in /etc/group |
 * | `unix:supplementary_gid:<n>`, `unix:supplementary_group:<name>` | each supplementary group |
 * | `unix:path:<path>` | /proc/<pid>/exe (with `discover_workload_path`) |
 * | `unix:sha256:<hex>` | SHA-256 of that executable, read through /proc/<pid>/exe so a replaced file on disk cannot fool it (with `discover_workload_path`, within `workload_size_limit`) |
 * @module
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, readlink, stat } from 'node:fs/promises';
import type { Logger } from '../../common/logger.js';
import type { UnixAttestorConfig } from '../config.js';
import { createUserDatabase, type UserDatabase } from './user-database.js';
import type { PeerCredentials, Selector, WorkloadAttestor } from './workload-attestor.js';

/** Options of {@link createUnixAttestor}. */
export interface UnixAttestorOptions {
  readonly users?: UserDatabase;
  /** Where /proc is mounted; default `/proc`. */
  readonly procRoot?: string;
  readonly logger?: Logger;
}

/** What /proc/<pid>/status says about a process's credentials. */
export interface ProcessIds {
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
}

/** Parses the Uid/Gid/Groups lines of /proc/<pid>/status; the effective id is the second column. */
export function parseProcStatus(text: string): ProcessIds {
  const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim();
  const ids = (name: string) => {
    const value = field(name);
    if (value === undefined) throw new Error(`/proc status has no ${name} line`);
    return value === '' ? [] : value.split(/\s+/).map(Number);
  };
  const uids = ids('Uid');
  const gids = ids('Gid');
  if (uids.length < 2 || gids.length < 2) throw new Error('/proc status Uid/Gid lines are malformed');
  return { uid: uids[1] as number, gid: gids[1] as number, groups: ids('Groups') };
}

interface HashMemo {
  readonly key: string;
  readonly sha256: string;
}

/** Creates the attestor for `config` (`workload_attestors.unix`). */
export function createUnixAttestor(config: UnixAttestorConfig, options: UnixAttestorOptions = {}): WorkloadAttestor {
  const users = options.users ?? createUserDatabase();
  const proc = options.procRoot ?? '/proc';
  // Hashing a large binary per call would be slow; the same file (device, inode, size,
  // mtime) hashes the same, so remember the last few.
  const hashes = new Map<string, HashMemo>();

  const sha256Of = async (pid: number): Promise<string | undefined> => {
    const exe = `${proc}/${pid}/exe`;
    const st = await stat(exe);
    if (config.workload_size_limit < 0) return undefined;
    if (config.workload_size_limit > 0 && st.size > config.workload_size_limit) {
      options.logger?.warn(
        { pid, size: st.size, limit: config.workload_size_limit },
        'workload executable exceeds workload_size_limit; no unix:sha256 selector',
      );
      return undefined;
    }
    const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
    const memo = hashes.get(key);
    if (memo !== undefined) return memo.sha256;
    const hash = createHash('sha256');
    await new Promise<void>((resolve, reject) => {
      createReadStream(exe)
        .on('data', (chunk) => hash.update(chunk))
        .on('end', resolve)
        .on('error', reject);
    });
    const sha256 = hash.digest('hex');
    if (hashes.size >= 64) hashes.delete(hashes.keys().next().value as string);
    hashes.set(key, { key, sha256 });
    return sha256;
  };

  return Object.freeze({
    name: 'unix',
    async attest(peer: PeerCredentials): Promise<Selector[]> {
      const ids = parseProcStatus(await readFile(`${proc}/${peer.pid}/status`, 'utf8'));
      const out: Selector[] = [];
      const add = (value: string) => out.push({ type: 'unix', value });
      add(`uid:${ids.uid}`);
      const user = users.userName(ids.uid);
      if (user !== undefined) add(`user:${user}`);
      add(`gid:${ids.gid}`);
      const group = users.groupName(ids.gid);
      if (group !== undefined) add(`group:${group}`);
      for (const gid of ids.groups) {
        add(`supplementary_gid:${gid}`);
        const name = users.groupName(gid);
        if (name !== undefined) add(`supplementary_group:${name}`);
      }
      if (config.discover_workload_path) {
        add(`path:${await readlink(`${proc}/${peer.pid}/exe`)}`);
        const sha256 = await sha256Of(peer.pid);
        if (sha256 !== undefined) add(`sha256:${sha256}`);
      }
      return out;
    },
  });
}
