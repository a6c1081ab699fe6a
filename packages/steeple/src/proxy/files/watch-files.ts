/**
 * Tells when any of a few files may have changed: `fs.watch` on their directories (so a
 * file replaced by rename, as atomic writers and Kubernetes secret volumes do, is still
 * seen) plus a poll of their metadata as a fallback where notifications are missed
 * (network file systems, some container overlays). Callers re-read and compare contents.
 * @module
 */
import { type FSWatcher, statSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';

export interface FileWatch {
  close(): void;
}

export interface WatchFilesOptions {
  /** Poll interval in milliseconds. */
  readonly pollIntervalMs: number;
  /** Quiet time after a notification before `onChange` runs (writers touch files several times). Default 50 ms. */
  readonly debounceMs?: number;
}

function signature(path: string): string {
  try {
    const s = statSync(path, { bigint: true });
    return `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
  } catch (err) {
    return `missing:${(err as NodeJS.ErrnoException).code ?? ''}`;
  }
}

/** Calls `onChange` (debounced) when any of `paths` may have changed. */
export function watchFiles(paths: readonly string[], onChange: () => void, options: WatchFilesOptions): FileWatch {
  const debounceMs = options.debounceMs ?? 50;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const fire = () => {
    if (closed) return;
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      if (!closed) onChange();
    }, debounceMs);
    timer.unref();
  };

  const watchers: FSWatcher[] = [];
  const byDir = new Map<string, Set<string>>();
  for (const p of paths) {
    const names = byDir.get(dirname(p)) ?? new Set<string>();
    names.add(basename(p));
    byDir.set(dirname(p), names);
  }
  for (const [dir, names] of byDir) {
    try {
      const w = watch(dir, { persistent: false }, (_event, name) => {
        // Some platforms omit the name; then any change in the directory counts.
        if (name === null || names.has(String(name)) || String(name).startsWith('..')) fire();
      });
      w.on('error', () => {
        /* polling still covers this directory */
      });
      watchers.push(w);
    } catch {
      /* no notifications here (missing directory, no inotify): polling covers it */
    }
  }

  let last = paths.map(signature).join('|');
  const poll = setInterval(() => {
    const now = paths.map(signature).join('|');
    if (now !== last) {
      last = now;
      fire();
    }
  }, options.pollIntervalMs);
  poll.unref();

  return {
    close() {
      closed = true;
      clearInterval(poll);
      if (timer !== undefined) clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}
