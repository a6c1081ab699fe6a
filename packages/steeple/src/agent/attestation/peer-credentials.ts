/**
 * Peer credentials of a Unix socket connection: Node has no API for them, so
 * `getsockopt(SO_PEERCRED)` and `getsockopt(SO_PEERPIDFD)` are called through koffi on the
 * socket's file descriptor, once per connection, right when it is accepted (the values
 * are those of the moment the peer called connect()).
 *
 * PID reuse: a pid read at connect time may belong to another process by the time the
 * agent reads /proc/<pid>. Like SPIRE's peertracker, the agent checks after attestation
 * that the pid still names the process that connected: with a pidfd (Linux ≥ 6.5) the
 * kernel says so exactly (the pidfd's `Pid:` in /proc/self/fdinfo stays the pid while the
 * process is not reaped, and a reaped pid cannot have been reused); without one, the
 * process start time read at connect time must be unchanged.
 *
 * `socket._handle.fd` is Node-internal; it is read only here, and this file's test keeps
 * it honest.
 * @module
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { PeerCredentials } from './workload-attestor.js';

// Linux constants, the same on x86_64 and arm64 (asm-generic).
const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const SO_PEERPIDFD = 77;
const UCRED_BYTES = 12;

interface Libc {
  getsockopt(fd: number, level: number, name: number, out: Buffer, len: number[]): number;
  close(fd: number): number;
  errno(): number;
}

let libc: Libc | undefined;

/** Loads libc through koffi on first use, so merely importing this module never fails. */
function loadLibc(): Libc {
  if (libc !== undefined) return libc;
  if (process.platform !== 'linux') {
    throw new Error(`peer credentials need Linux (SO_PEERCRED); this is ${process.platform}`);
  }
  const require = createRequire(import.meta.url);
  const koffi = require('koffi') as typeof import('koffi');
  const lib = koffi.load('libc.so.6');
  const getsockopt = lib.func('int getsockopt(int, int, int, _Out_ uint8_t *buf, _Inout_ uint32_t *len)');
  const close = lib.func('int close(int)');
  libc = {
    getsockopt: (fd, level, name, out, len) => getsockopt(fd, level, name, out, len) as number,
    close: (fd) => close(fd) as number,
    errno: () => koffi.errno(),
  };
  return libc;
}

/** The file descriptor behind a net.Socket (Node-internal: `_handle.fd`). */
export function socketFd(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0)
    throw new Error('the socket has no file descriptor (closed, or not a Unix socket)');
  return fd;
}

/**
 * Reads the peer credentials of an accepted Unix socket connection, and a pidfd when the
 * kernel offers one. Release them with {@link releasePeerCredentials} when the connection closes.
 * @throws Error when the socket has no descriptor or getsockopt fails.
 */
export function readPeerCredentials(socket: Socket): PeerCredentials {
  const c = loadLibc();
  const fd = socketFd(socket);
  const cred = Buffer.alloc(UCRED_BYTES);
  const len = [UCRED_BYTES];
  if (c.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, len) !== 0) {
    throw new Error(`getsockopt(SO_PEERCRED) failed with errno ${c.errno()}`);
  }
  const pid = cred.readInt32LE(0);
  const uid = cred.readUInt32LE(4);
  const gid = cred.readUInt32LE(8);
  const pidfdBuf = Buffer.alloc(4);
  const pidfdLen = [4];
  // ENOPROTOOPT before Linux 6.5: fall back to the start-time check.
  if (c.getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, pidfdBuf, pidfdLen) === 0) {
    const pidfd = pidfdBuf.readInt32LE(0);
    if (pidfd >= 0) return Object.freeze({ pid, uid, gid, pidfd });
  }
  const startTime = processStartTime(pid);
  return Object.freeze(startTime === undefined ? { pid, uid, gid } : { pid, uid, gid, startTime });
}

/** Closes the pidfd of `peer`, if it has one. Call it once, when the connection closes. */
export function releasePeerCredentials(peer: PeerCredentials): void {
  if (peer.pidfd !== undefined) loadLibc().close(peer.pidfd);
}

/**
 * Whether `peer.pid` still names the process that connected (and it has not been reaped).
 * Call it after reading /proc/<pid>: if it holds, what was read belonged to that process.
 */
export function isSameProcess(peer: PeerCredentials): boolean {
  if (peer.pid <= 0) return false;
  if (peer.pidfd !== undefined) {
    try {
      const info = readFileSync(`/proc/self/fdinfo/${peer.pidfd}`, 'utf8');
      const m = /^Pid:\s*(-?\d+)/m.exec(info);
      return m !== null && Number(m[1]) === peer.pid;
    } catch {
      return false;
    }
  }
  return peer.startTime !== undefined && processStartTime(peer.pid) === peer.startTime;
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or undefined when the process is gone. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces or ")".
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19];
  } catch {
    return undefined;
  }
}
