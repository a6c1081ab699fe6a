/**
 * Whether a process with this pid exists (signal 0 delivers nothing; EPERM means it exists
 * but belongs to another user).
 * @module
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
