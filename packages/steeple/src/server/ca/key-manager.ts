/**
 * Key managers hold the CA's private keys (X.509 CA and JWT signing keys) under stable
 * IDs, the way SPIRE's KeyManager plugins do. The CA asks for a key by ID when it
 * restarts, so with the `disk` manager a restarted server resumes with the same CA; with
 * `memory` keys die with the process and a restart makes a new CA (what was published
 * stays trusted until it expires, so nothing already issued breaks).
 * @module
 */
import { createPrivateKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensureSecureDir, writeFileAtomic } from '../../common/fs-secure.js';
import { CaError } from './ca-errors.js';

/** Key types a CA key can have (`ca_key_type`). */
export type KeyType = 'ec-p256' | 'ec-p384' | 'rsa-2048';

export const KEY_TYPES: readonly KeyType[] = Object.freeze(['ec-p256', 'ec-p384', 'rsa-2048']);

/** Stores the CA's private keys by ID. */
export interface KeyManager {
  /** `disk` or `memory`. */
  readonly name: string;
  /** Generates a key of `type` under `id`, replacing any key that had that ID, and returns it once it is stored. */
  generateKey(id: string, type: KeyType): Promise<KeyObject>;
  /** The key stored under `id`, or undefined when there is none. */
  getKey(id: string): Promise<KeyObject | undefined>;
}

const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function checkId(id: string): void {
  // IDs become file names: nothing that could climb out of the keys directory.
  if (typeof id !== 'string' || !KEY_ID.test(id)) {
    throw new TypeError(`key ID ${JSON.stringify(id)} must match ${KEY_ID} (it names a file)`);
  }
}

const generateKeyPairAsync = promisify(generateKeyPair);

/** A fresh private key of `type`, generated off the main thread. */
export async function generatePrivateKey(type: KeyType): Promise<KeyObject> {
  switch (type) {
    case 'ec-p256':
      return (await generateKeyPairAsync('ec', { namedCurve: 'P-256' })).privateKey;
    case 'ec-p384':
      return (await generateKeyPairAsync('ec', { namedCurve: 'P-384' })).privateKey;
    case 'rsa-2048':
      return (await generateKeyPairAsync('rsa', { modulusLength: 2048 })).privateKey;
    default:
      throw new TypeError(`unknown key type ${JSON.stringify(type)}; expected one of ${KEY_TYPES.join(', ')}`);
  }
}

/** Keys in process memory only: gone on restart. */
export class MemoryKeyManager implements KeyManager {
  readonly name = 'memory';
  readonly #keys = new Map<string, KeyObject>();

  async generateKey(id: string, type: KeyType): Promise<KeyObject> {
    checkId(id);
    const key = await generatePrivateKey(type);
    this.#keys.set(id, key);
    return key;
  }

  async getKey(id: string): Promise<KeyObject | undefined> {
    checkId(id);
    return this.#keys.get(id);
  }
}

/**
 * Keys as unencrypted PKCS#8 PEM files `<data_dir>/keys/<id>.pem`: the directory is
 * 0700, each file 0600 and written atomically (a crash leaves the old key or the new
 * one, never half of one). Keys are cached after the first read.
 */
export class DiskKeyManager implements KeyManager {
  readonly name = 'disk';
  /** The directory holding the key files. */
  readonly directory: string;
  readonly #cache = new Map<string, KeyObject>();

  constructor(dataDir: string) {
    this.directory = join(dataDir, 'keys');
  }

  /** Path of the file that holds key `id`. */
  pathOf(id: string): string {
    checkId(id);
    return join(this.directory, `${id}.pem`);
  }

  async generateKey(id: string, type: KeyType): Promise<KeyObject> {
    const path = this.pathOf(id);
    const key = await generatePrivateKey(type);
    await ensureSecureDir(this.directory);
    await writeFileAtomic(path, key.export({ format: 'pem', type: 'pkcs8' }));
    this.#cache.set(id, key);
    return key;
  }

  async getKey(id: string): Promise<KeyObject | undefined> {
    const path = this.pathOf(id);
    const cached = this.#cache.get(id);
    if (cached) return cached;
    let pem: Buffer;
    try {
      pem = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new CaError('ERR_CA_STATE_INVALID', `cannot read CA key file ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    let key: KeyObject;
    try {
      key = createPrivateKey(pem);
    } catch (cause) {
      throw new CaError('ERR_CA_STATE_INVALID', `CA key file ${path} does not hold a PEM private key`, { cause });
    }
    this.#cache.set(id, key);
    return key;
  }
}

/** The `key_manager` config values. */
export type KeyManagerName = 'disk' | 'memory';

/** The key manager named by `key_manager` (`disk` keeps keys under `<dataDir>/keys/`). */
export function createKeyManager(name: KeyManagerName, options: { readonly dataDir: string }): KeyManager {
  switch (name) {
    case 'disk':
      return new DiskKeyManager(options.dataDir);
    case 'memory':
      return new MemoryKeyManager();
    default:
      throw new TypeError(`unknown key manager ${JSON.stringify(name)}; expected "disk" or "memory"`);
  }
}
