/**
 * What the agent keeps in `data_dir` so that a restart does not attest again: its SVID
 * with the private key, how it attested, and the latest trust bundle of its trust domain
 * (which replaces the bootstrap bundle once the server has sent one). Files are written
 * atomically with mode 0600 in a 0700 directory.
 *
 * - `agent.json`: `{ version, trust_domain, spiffe_id, attestor, can_reattest,
 *   join_token_sha256?, svid_pem, key_pem }` — one file, so SVID and key never disagree.
 * - `bundle.json`: the SPIFFE bundle document of the trust domain.
 * @module
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SpiffeBundle, type TrustDomain, X509Svid } from '@steeple/spiffe';
import { ensureSecureDir, writeFileAtomic } from '../../common/fs-secure.js';
import { AgentStateError } from '../agent-errors.js';

export const IDENTITY_FILE = 'agent.json';
export const BUNDLE_FILE = 'bundle.json';

/** The agent's identity as persisted. */
export interface PersistedIdentity {
  readonly svid: X509Svid;
  /** The node attestor that produced it ('join_token', 'x509pop'). */
  readonly attestor: string;
  readonly canReattest: boolean;
  /** SHA-256 (hex) of the join token used, so a new token in the config is noticed. */
  readonly joinTokenSha256?: string;
}

/** SHA-256 hex of a join token: stored instead of the token, which is a secret until used. */
export function joinTokenDigest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export class IdentityStore {
  constructor(
    readonly dataDir: string,
    readonly trustDomain: TrustDomain,
  ) {}

  /** The persisted identity, or undefined when none was saved. @throws AgentStateError for a corrupt or foreign file. */
  async loadIdentity(): Promise<PersistedIdentity | undefined> {
    const path = join(this.dataDir, IDENTITY_FILE);
    const text = await readOptional(path);
    if (text === undefined) return undefined;
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(text) as Record<string, unknown>;
    } catch (cause) {
      throw new AgentStateError(path, 'not valid JSON', { cause });
    }
    if (doc['version'] !== 1) throw new AgentStateError(path, `unknown version ${JSON.stringify(doc['version'])}`);
    if (doc['trust_domain'] !== this.trustDomain.name) {
      throw new AgentStateError(
        path,
        `it belongs to trust domain ${JSON.stringify(doc['trust_domain'])}, the config says "${this.trustDomain.name}"; move the data_dir aside to attest anew`,
      );
    }
    let svid: X509Svid;
    try {
      svid = X509Svid.parse(String(doc['svid_pem']), String(doc['key_pem']));
    } catch (cause) {
      throw new AgentStateError(path, `its SVID cannot be read: ${(cause as Error).message}`, { cause });
    }
    const digest = doc['join_token_sha256'];
    return {
      svid,
      attestor: String(doc['attestor']),
      canReattest: doc['can_reattest'] === true,
      ...(typeof digest === 'string' ? { joinTokenSha256: digest } : {}),
    };
  }

  async saveIdentity(identity: PersistedIdentity): Promise<void> {
    await ensureSecureDir(this.dataDir);
    const { certificates, privateKey } = identity.svid.marshal();
    const doc = {
      version: 1,
      trust_domain: this.trustDomain.name,
      spiffe_id: identity.svid.id.toString(),
      attestor: identity.attestor,
      can_reattest: identity.canReattest,
      ...(identity.joinTokenSha256 === undefined ? {} : { join_token_sha256: identity.joinTokenSha256 }),
      svid_pem: certificates,
      key_pem: privateKey,
    };
    await writeFileAtomic(join(this.dataDir, IDENTITY_FILE), `${JSON.stringify(doc, null, 2)}\n`);
  }

  /** The saved bundle, or undefined. @throws AgentStateError for a corrupt file. */
  async loadBundle(): Promise<SpiffeBundle | undefined> {
    const path = join(this.dataDir, BUNDLE_FILE);
    const text = await readOptional(path);
    if (text === undefined) return undefined;
    try {
      return SpiffeBundle.parse(this.trustDomain, text);
    } catch (cause) {
      throw new AgentStateError(path, (cause as Error).message, { cause });
    }
  }

  async saveBundle(bundle: SpiffeBundle): Promise<void> {
    await ensureSecureDir(this.dataDir);
    await writeFileAtomic(join(this.dataDir, BUNDLE_FILE), `${bundle.marshal()}\n`);
  }
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AgentStateError(path, (err as Error).message, { cause: err });
  }
}
