/**
 * The CA journal: which authorities this server has (X.509 CAs and JWT keys), which one
 * is active, which is prepared, which are retired but still trusted, and under which key
 * manager ID each key lives. Saved after every change, so a restarted server resumes the
 * same CA and the same rotation schedule. Private keys are never in it: they stay with
 * the key manager.
 *
 * Stored as `<data_dir>/ca-journal.json` (0600, written atomically), or anywhere else
 * through {@link CaJournalStorage}.
 * @module
 */
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../../common/fs-secure.js';
import { CaError } from './ca-errors.js';

/** File name of the journal inside `data_dir`. */
export const CA_JOURNAL_FILE = 'ca-journal.json';

/** prepared: published, not signing yet; active: signing; old: retired, published until it expires. */
export type AuthorityState = 'prepared' | 'active' | 'old';

export interface X509JournalEntry {
  readonly state: AuthorityState;
  /** Key manager ID of the private key; absent once the key is no longer needed. */
  readonly keyId?: string;
  /** DER: this server's CA certificate, then the upstream intermediates (excluding roots). */
  readonly chain: readonly Buffer[];
  /** DER: the upstream roots (empty for a self-signed CA). */
  readonly upstreamRoots: readonly Buffer[];
}

export interface JwtJournalEntry {
  readonly state: AuthorityState;
  readonly keyId?: string;
  readonly kid: string;
  /** SubjectPublicKeyInfo DER. */
  readonly publicKey: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface CaJournal {
  readonly trustDomain: string;
  readonly x509: readonly X509JournalEntry[];
  readonly jwt: readonly JwtJournalEntry[];
}

/** Where the journal text lives. */
export interface CaJournalStorage {
  /** For messages: a path or a description. */
  readonly location: string;
  /** The saved text, or undefined when nothing was ever saved. */
  load(): Promise<string | undefined>;
  /** Replaces the saved text durably. */
  save(text: string): Promise<void>;
}

/** The journal as a 0600 file, replaced atomically; its directory is created (0700) when missing. */
export function fileJournalStorage(path: string): CaJournalStorage {
  return {
    location: path,
    async load() {
      try {
        return await readFile(path, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw new CaError('ERR_CA_STATE_INVALID', `cannot read the CA journal ${path}: ${(err as Error).message}`, {
          cause: err,
        });
      }
    },
    async save(text) {
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      await writeFileAtomic(path, text);
    },
  };
}

/** `<dataDir>/ca-journal.json`. */
export function journalPath(dataDir: string): string {
  return join(dataDir, CA_JOURNAL_FILE);
}

/** A journal kept in memory (tests; servers whose keys are in memory too). */
export class MemoryJournalStorage implements CaJournalStorage {
  readonly location = 'memory';
  text: string | undefined;

  async load(): Promise<string | undefined> {
    return this.text;
  }

  async save(text: string): Promise<void> {
    this.text = text;
  }
}

const STATES: ReadonlySet<string> = new Set(['prepared', 'active', 'old']);
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** The journal as JSON text (format version 1). */
export function serializeJournal(journal: CaJournal): string {
  const b64 = (b: Buffer) => b.toString('base64');
  return `${JSON.stringify(
    {
      version: 1,
      trust_domain: journal.trustDomain,
      x509: journal.x509.map((e) => ({
        state: e.state,
        ...(e.keyId === undefined ? {} : { key_id: e.keyId }),
        chain: e.chain.map(b64),
        upstream_roots: e.upstreamRoots.map(b64),
      })),
      jwt: journal.jwt.map((e) => ({
        state: e.state,
        ...(e.keyId === undefined ? {} : { key_id: e.keyId }),
        kid: e.kid,
        public_key: b64(e.publicKey),
        not_before: e.notBefore.toISOString(),
        not_after: e.notAfter.toISOString(),
      })),
    },
    null,
    2,
  )}\n`;
}

/** Parses journal text; throws {@link CaError} `ERR_CA_STATE_INVALID` naming `location` and the problem. */
export function parseJournal(text: string, location: string): CaJournal {
  const fail = (what: string): CaError =>
    new CaError('ERR_CA_STATE_INVALID', `the CA journal ${location} is unusable: ${what}`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (cause) {
    throw new CaError('ERR_CA_STATE_INVALID', `the CA journal ${location} is not valid JSON`, { cause });
  }
  const obj = (v: unknown, where: string): Record<string, unknown> => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw fail(`${where} must be an object`);
    return v as Record<string, unknown>;
  };
  const str = (o: Record<string, unknown>, key: string, where: string): string => {
    const v = o[key];
    if (typeof v !== 'string' || v === '') throw fail(`${where}.${key} must be a non-empty string`);
    return v;
  };
  const bytes = (v: unknown, where: string): Buffer => {
    if (typeof v !== 'string' || v === '' || v.length % 4 !== 0 || !BASE64.test(v))
      throw fail(`${where} must be base64`);
    return Buffer.from(v, 'base64');
  };
  const list = (o: Record<string, unknown>, key: string, where: string): unknown[] => {
    const v = o[key];
    if (!Array.isArray(v)) throw fail(`${where}.${key} must be an array`);
    return v;
  };
  const state = (o: Record<string, unknown>, where: string): AuthorityState => {
    const s = o['state'];
    if (typeof s !== 'string' || !STATES.has(s)) throw fail(`${where}.state must be prepared, active or old`);
    return s as AuthorityState;
  };
  const keyId = (o: Record<string, unknown>, where: string): { keyId?: string } =>
    o['key_id'] === undefined ? {} : { keyId: str(o, 'key_id', where) };
  const date = (o: Record<string, unknown>, key: string, where: string): Date => {
    const d = new Date(str(o, key, where));
    if (Number.isNaN(d.getTime())) throw fail(`${where}.${key} must be an ISO date`);
    return d;
  };

  const root = obj(doc, 'the document');
  if (root['version'] !== 1) throw fail(`version ${JSON.stringify(root['version'])} is not supported (expected 1)`);
  const trustDomain = str(root, 'trust_domain', 'the document');
  const x509 = list(root, 'x509', 'the document').map((raw, i): X509JournalEntry => {
    const where = `x509[${i}]`;
    const e = obj(raw, where);
    const chain = list(e, 'chain', where).map((c, j) => bytes(c, `${where}.chain[${j}]`));
    if (chain.length === 0) throw fail(`${where}.chain must hold the CA certificate`);
    return {
      state: state(e, where),
      ...keyId(e, where),
      chain,
      upstreamRoots: list(e, 'upstream_roots', where).map((c, j) => bytes(c, `${where}.upstream_roots[${j}]`)),
    };
  });
  const jwt = list(root, 'jwt', 'the document').map((raw, i): JwtJournalEntry => {
    const where = `jwt[${i}]`;
    const e = obj(raw, where);
    return {
      state: state(e, where),
      ...keyId(e, where),
      kid: str(e, 'kid', where),
      publicKey: bytes(e['public_key'], `${where}.public_key`),
      notBefore: date(e, 'not_before', where),
      notAfter: date(e, 'not_after', where),
    };
  });
  return { trustDomain, x509, jwt };
}
