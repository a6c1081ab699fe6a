/**
 * User and group names from /etc/passwd and /etc/group, for the unix attestor's
 * `unix:user` and `unix:group` selectors. The files are read again only when their
 * modification time changes, so attesting a burst of callers costs two stat calls.
 * @module
 */
import { readFileSync, statSync } from 'node:fs';

/** Looks up names by numeric id; `undefined` when the id has no entry. */
export interface UserDatabase {
  userName(uid: number): string | undefined;
  groupName(gid: number): string | undefined;
}

/** Parses `name:x:id:…` lines (passwd and group share the first three fields) into id → first name. */
export function parseIdFile(text: string): Map<number, string> {
  const names = new Map<number, string>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const [name, , id] = line.split(':');
    const n = Number(id);
    if (name && id !== undefined && id !== '' && Number.isSafeInteger(n) && !names.has(n)) names.set(n, name);
  }
  return names;
}

class CachedIdFile {
  #mtimeMs = -1;
  #size = -1;
  #names = new Map<number, string>();
  constructor(readonly path: string) {}

  get(id: number): string | undefined {
    try {
      const st = statSync(this.path);
      if (st.mtimeMs !== this.#mtimeMs || st.size !== this.#size) {
        this.#names = parseIdFile(readFileSync(this.path, 'utf8'));
        this.#mtimeMs = st.mtimeMs;
        this.#size = st.size;
      }
    } catch {
      this.#names = new Map();
      this.#mtimeMs = -1;
    }
    return this.#names.get(id);
  }
}

/** The system's user database (or one rooted elsewhere, for tests). */
export function createUserDatabase(paths: { passwd?: string; group?: string } = {}): UserDatabase {
  const passwd = new CachedIdFile(paths.passwd ?? '/etc/passwd');
  const group = new CachedIdFile(paths.group ?? '/etc/group');
  return { userName: (uid) => passwd.get(uid), groupName: (gid) => group.get(gid) };
}
