/**
 * Files that hold keys and SVIDs: written atomically (a reader or a crash sees the old
 * file or the new one, never half of one) and readable by the owner only.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Mode of secret files: owner read and write only. */
export const SECRET_FILE_MODE = 0o600;
/** Mode of directories holding secret files: owner only. */
export const SECRET_DIR_MODE = 0o700;

/**
 * Writes `data` to `path` atomically with mode 0600 (or `options.mode`): the bytes go to a
 * new temporary file in the same directory (created exclusively, so a planted symlink is
 * never followed), are flushed to disk, and the file is renamed over `path`; then the
 * directory is flushed so the rename itself survives a crash. An existing file at `path` is
 * replaced, and the new file has the requested mode whatever the old one had or the umask says.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: { readonly mode?: number } = {},
): Promise<void> {
  const mode = options.mode ?? SECRET_FILE_MODE;
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const file = await open(temp, 'wx', mode);
  try {
    try {
      await file.chmod(mode); // the umask may have removed bits from the mode given to open
      await file.writeFile(data);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => {});
    throw err;
  }
  await syncDirectory(dir);
}

/**
 * Makes sure `path` is a directory only its owner can use (0700), creating it and any
 * missing parents. An existing directory that others could enter or read is tightened to
 * 0700, since it is about to hold keys. Throws if `path` exists and is not a directory.
 */
export async function ensureSecureDir(path: string): Promise<void> {
  try {
    await mkdir(path, { recursive: true, mode: SECRET_DIR_MODE });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const info = await stat(path);
  if (!info.isDirectory()) throw new Error(`${path} exists and is not a directory`);
  if ((info.mode & 0o777) !== SECRET_DIR_MODE) await chmod(path, SECRET_DIR_MODE);
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
