/**
 * The server's certificate authority over time: an X.509 CA and a JWT signing key, each
 * rotated with SPIRE's timing so that no workload ever sees a trust gap.
 *
 * Each kind has a `current` (active, signing) authority and, for the second half of its
 * life, a `next` one:
 *
 * - at 1/2 of the current authority's lifetime the next one is PREPARED: its key is
 *   generated, its certificate self-signed (or minted by the upstream authority), and it
 *   is PUBLISHED in the trust bundle, where it sits unused;
 * - at 5/6 (one sixth of the lifetime left) it is ACTIVATED and signs from then on; the
 *   previous one is retired (`old`) but stays in the bundle;
 * - an authority is PRUNED from the bundle when its notAfter passes, by which time
 *   nothing it signed is valid any more (SVIDs are capped at their CA's notAfter).
 *
 * So workloads hold the next authority for a third of a lifetime (8 h with the default
 * 24 h `ca_ttl`) before anything signed by it reaches them.
 *
 * Time comes from an injected {@link Clock} (timers via `clock.setTimer`), so tests drive
 * a whole rotation with a ManualClock. The state (which authorities exist, their state,
 * their key manager IDs) is saved in the CA journal after every change; keys stay with
 * the {@link KeyManager}. A restart with the `disk` key manager resumes the same CA; with
 * `memory` the old keys are gone, so a new CA is made at once, while the old authorities
 * stay published until they expire.
 * @module
 */
import { createPublicKey, type KeyObject, X509Certificate } from 'node:crypto';
import { type Clock, type SpiffeBundle, systemClock, TrustDomain } from '@steeple/spiffe';
import { type DistinguishedName, keyIdentifierForSpki, x509Fields } from '@steeple/spiffe/issuance';
import { createSilentLogger, type Logger } from '../../common/logger.js';
import type { BundlePublisher, JwtAuthority } from './bundle-publisher.js';
import {
  DEFAULT_CA_SUBJECT,
  DEFAULT_SVID_SUBJECT,
  randomSerialNumber,
  selfSignCaCertificate,
  subjectWithSerial,
} from './ca-certificate.js';
import { CaError } from './ca-errors.js';
import {
  type AuthorityState,
  type CaJournal,
  type CaJournalStorage,
  parseJournal,
  serializeJournal,
} from './ca-journal.js';
import { JwtSigner, newKeyId } from './jwt-signer.js';
import type { KeyManager, KeyType } from './key-manager.js';
import type { UpstreamAuthority } from './upstream-authority.js';
import { DEFAULT_X509_SVID_TTL_SECONDS, type SignedX509Svid, X509Ca } from './x509-ca.js';

/** SPIRE's default `ca_ttl`: 24 hours. */
export const DEFAULT_CA_TTL_SECONDS = 24 * 3600;
/** How soon a failed rotation step is tried again. */
export const DEFAULT_RETRY_INTERVAL_MS = 30_000;

/** Key manager IDs: two per kind, used in turn (the retired authority's key is never needed again). */
const X509_KEY_IDS = ['x509-ca-a', 'x509-ca-b'] as const;
const JWT_KEY_IDS = ['jwt-signer-a', 'jwt-signer-b'] as const;

/** What a {@link CaManager} is built from; the `snake_case` names in comments are the config keys. */
export interface CaManagerOptions {
  /** `trust_domain`. */
  readonly trustDomain: TrustDomain | string;
  /** `key_manager`: where the CA's private keys live. */
  readonly keyManager: KeyManager;
  /** Where the CA journal is saved (`fileJournalStorage(journalPath(data_dir))`). */
  readonly journal: CaJournalStorage;
  /** Where the authorities are published (the trust bundle, possibly shared with other servers). */
  readonly publisher: BundlePublisher;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** `ca_ttl` in seconds; default 24 h. Also the lifetime of JWT signing keys, as in SPIRE. */
  readonly caTtlSeconds?: number;
  /** `ca_key_type`; default `ec-p256`. */
  readonly caKeyType?: KeyType;
  /** `jwt_key_type`; default `ca_key_type`. */
  readonly jwtKeyType?: KeyType;
  /** `ca_subject`; default `C=US, O=Steeple` (each CA adds its serial number, as SPIRE does). */
  readonly caSubject?: DistinguishedName;
  /** Subject of issued X.509-SVIDs; default `C=US, O=Steeple`. */
  readonly svidSubject?: DistinguishedName;
  /** `jwt_issuer`: the `iss` claim of JWT-SVIDs; none by default. */
  readonly jwtIssuer?: string;
  /** `upstream_authority`: makes the CA an intermediate of an upstream CA. */
  readonly upstreamAuthority?: UpstreamAuthority;
  /** Delay before retrying a failed rotation step; default 30 s. */
  readonly retryIntervalMs?: number;
}

/** One authority as {@link CaManager.status} reports it. */
export interface AuthorityStatus {
  /** X.509: the CA's subject key ID in hex (SPIRE's authority ID); JWT: the key ID. */
  readonly id: string;
  readonly state: AuthorityState;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** When the next step is due: preparing the next authority, or activating it (for the current one). */
  readonly nextStepAt?: Date;
}

/** The authorities of one kind. */
export interface AuthoritySetStatus {
  readonly current?: AuthorityStatus;
  readonly next?: AuthorityStatus;
  /** Retired but still published until they expire. */
  readonly old: readonly AuthorityStatus[];
}

/** The state of the CA, for `/ready` and the CLI. */
export interface CaStatus {
  readonly state: 'stopped' | 'starting' | 'ready' | 'failed';
  /** True when both kinds have a current authority that has not expired: the CA can sign. */
  readonly ready: boolean;
  readonly x509: AuthoritySetStatus;
  readonly jwt: AuthoritySetStatus;
  readonly bundleSequence: bigint | undefined;
  /** The upstream authority's name (`disk`), when one is configured. */
  readonly upstreamAuthority: string | undefined;
  /** The last rotation failure, until a rotation succeeds again. */
  readonly lastError: string | undefined;
}

interface X509Entry {
  state: AuthorityState;
  keyId: string | undefined;
  readonly certificate: X509Certificate;
  readonly upstreamChain: readonly X509Certificate[];
  readonly upstreamRoots: readonly X509Certificate[];
  readonly notBefore: number;
  readonly notAfter: number;
  readonly id: string;
  /** The signer, while the key is held. */
  ca: X509Ca | undefined;
}

interface JwtEntry {
  state: AuthorityState;
  keyId: string | undefined;
  readonly kid: string;
  readonly publicKey: KeyObject;
  readonly notBefore: number;
  readonly notAfter: number;
  signer: JwtSigner | undefined;
}

type Entry = X509Entry | JwtEntry;

/** notAfter − lifetime/2: when the next authority is prepared and published. */
export function preparationTime(notBefore: number, notAfter: number): number {
  return notAfter - (notAfter - notBefore) / 2;
}

/** notAfter − lifetime/6: when the next authority becomes the current one. */
export function activationTime(notBefore: number, notAfter: number): number {
  return notAfter - (notAfter - notBefore) / 6;
}

const spkiOf = (key: KeyObject): Buffer =>
  (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'der', type: 'spki' });

/**
 * Runs the CA: loads or creates its authorities, rotates them on schedule, publishes
 * them, and hands out the current signers.
 *
 * @example
 * const ca = new CaManager({ trustDomain, keyManager: createKeyManager('disk', { dataDir }),
 *   journal: fileJournalStorage(journalPath(dataDir)), publisher, clock, logger });
 * await ca.start();
 * const svid = ca.x509Ca().signX509Svid({ publicKey: csr.subjectPublicKeyInfo, spiffeId, ttlSeconds: 3600 });
 */
export class CaManager {
  readonly trustDomain: TrustDomain;
  readonly #options: CaManagerOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #caTtlSeconds: number;
  readonly #retryMs: number;
  #x509: X509Entry[] = [];
  #jwt: JwtEntry[] = [];
  #currentX509: X509Entry | undefined;
  #currentJwt: JwtEntry | undefined;
  #bundle: SpiffeBundle | undefined;
  readonly #listeners = new Set<(bundle: SpiffeBundle) => void>();
  #state: CaStatus['state'] = 'stopped';
  #lastError: string | undefined;
  #timer: { cancel(): void } | undefined;
  #queue: Promise<void> = Promise.resolve();

  constructor(options: CaManagerOptions) {
    this.trustDomain = TrustDomain.from(options.trustDomain);
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#log = options.logger ?? createSilentLogger();
    this.#caTtlSeconds = options.caTtlSeconds ?? DEFAULT_CA_TTL_SECONDS;
    if (!Number.isFinite(this.#caTtlSeconds) || this.#caTtlSeconds < 60) {
      throw new TypeError(`ca_ttl of ${this.#caTtlSeconds} s is too short (at least 60 s)`);
    }
    this.#retryMs = options.retryIntervalMs ?? DEFAULT_RETRY_INTERVAL_MS;
  }

  /**
   * Loads the journal (resuming the saved authorities whose keys the key manager still
   * holds), creates and publishes what is missing, and schedules rotation. Rejects with
   * {@link CaError} `ERR_CA_STATE_INVALID` for an unusable journal or key file, or
   * `ERR_UPSTREAM_AUTHORITY_INVALID` when the upstream authority cannot sign.
   */
  async start(): Promise<void> {
    if (this.#state === 'starting' || this.#state === 'ready') throw new TypeError('CaManager: already started');
    this.#state = 'starting';
    try {
      await this.#serialize(async () => {
        await this.#load();
        await this.#rotate(true);
      });
      this.#state = 'ready';
    } catch (err) {
      this.#state = 'failed';
      this.#lastError = (err as Error).message;
      this.#cancelTimer();
      throw err;
    }
  }

  /** Cancels the rotation timer. The current signers stay usable until they expire. */
  stop(): void {
    this.#cancelTimer();
    this.#state = 'stopped';
  }

  /** Resolves once no rotation step is running (tests; orderly shutdown). */
  whenIdle(): Promise<void> {
    return this.#queue;
  }

  /** The active X.509 CA. Throws {@link CaError} `ERR_CA_NOT_READY` when there is none or it has expired. */
  x509Ca(): X509Ca {
    const entry = this.#currentX509;
    if (!entry?.ca) throw new CaError('ERR_CA_NOT_READY', 'the CA has no active X.509 authority (not started yet?)');
    if (entry.notAfter <= this.#clock.now().getTime()) {
      throw new CaError('ERR_CA_NOT_READY', `the active X.509 authority ${entry.id} has expired${this.#why()}`);
    }
    return entry.ca;
  }

  /** The active JWT signer. Throws {@link CaError} `ERR_CA_NOT_READY` when there is none or it has expired. */
  jwtSigner(): JwtSigner {
    const entry = this.#currentJwt;
    if (!entry?.signer)
      throw new CaError('ERR_CA_NOT_READY', 'the CA has no active JWT signing key (not started yet?)');
    if (entry.notAfter <= this.#clock.now().getTime()) {
      throw new CaError('ERR_CA_NOT_READY', `the active JWT signing key ${entry.kid} has expired${this.#why()}`);
    }
    return entry.signer;
  }

  /** The server's own SVID (`spiffe://<td>/spire/server`) from the active CA, for its TLS listeners. */
  signServerSvid(publicKey: KeyObject | Uint8Array, ttlSeconds = DEFAULT_X509_SVID_TTL_SECONDS): SignedX509Svid {
    return this.x509Ca().signServerSvid(publicKey, ttlSeconds);
  }

  /**
   * The trust domain's bundle as last published: the current and next authorities (the
   * upstream roots under an upstream authority), retired ones until they expire, and
   * whatever other servers published. Throws {@link CaError} `ERR_CA_NOT_READY` before start.
   */
  bundle(): SpiffeBundle {
    if (!this.#bundle) throw new CaError('ERR_CA_NOT_READY', 'the CA has not published a bundle yet (not started?)');
    return this.#bundle;
  }

  /** Calls `listener` with the new bundle whenever it changes; returns a function that unsubscribes. */
  onBundleChange(listener: (bundle: SpiffeBundle) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  status(): CaStatus {
    const now = this.#clock.now().getTime();
    const x509 = this.#setStatus(this.#x509, (e) => e.id);
    const jwt = this.#setStatus(this.#jwt, (e) => e.kid);
    const live = (e: Entry | undefined) => e !== undefined && e.notAfter > now;
    return {
      state: this.#state,
      ready: live(this.#currentX509) && live(this.#currentJwt),
      x509,
      jwt,
      bundleSequence: this.#bundle?.sequenceNumber,
      upstreamAuthority: this.#options.upstreamAuthority?.name,
      lastError: this.#lastError,
    };
  }

  #setStatus<E extends Entry>(entries: readonly E[], id: (e: E) => string): AuthoritySetStatus {
    const view = (e: E, nextStepAt?: number): AuthorityStatus => ({
      id: id(e),
      state: e.state,
      notBefore: new Date(e.notBefore),
      notAfter: new Date(e.notAfter),
      ...(nextStepAt === undefined ? {} : { nextStepAt: new Date(nextStepAt) }),
    });
    const current = entries.find((e) => e.state === 'active');
    const next = entries.find((e) => e.state === 'prepared');
    const step = current
      ? next
        ? activationTime(current.notBefore, current.notAfter)
        : preparationTime(current.notBefore, current.notAfter)
      : undefined;
    return {
      ...(current ? { current: view(current, step) } : {}),
      ...(next ? { next: view(next) } : {}),
      old: entries.filter((e) => e.state === 'old').map((e) => view(e)),
    };
  }

  #why(): string {
    return this.#lastError ? ` (rotation is failing: ${this.#lastError})` : '';
  }

  #serialize(step: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(step);
    this.#queue = run.catch(() => {});
    return run;
  }

  #cancelTimer(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  // -------------------------------------------------------------------------
  // Loading

  async #load(): Promise<void> {
    const { journal } = this.#options;
    this.#x509 = [];
    this.#jwt = [];
    this.#currentX509 = undefined;
    this.#currentJwt = undefined;
    const text = await journal.load();
    if (text === undefined) {
      this.#log.info({ journal: journal.location }, 'no CA journal yet: creating a new CA');
      return;
    }
    const saved = parseJournal(text, journal.location);
    if (saved.trustDomain !== this.trustDomain.name) {
      throw new CaError(
        'ERR_CA_STATE_INVALID',
        `the CA journal ${journal.location} belongs to trust domain "${saved.trustDomain}", but the server is configured for "${this.trustDomain.name}"`,
      );
    }
    const now = this.#clock.now().getTime();
    for (const [i, e] of saved.x509.entries()) {
      const certs = e.chain.map((der, j) => this.#certificate(der, `x509[${i}].chain[${j}]`));
      const roots = e.upstreamRoots.map((der, j) => this.#certificate(der, `x509[${i}].upstream_roots[${j}]`));
      const certificate = certs[0] as X509Certificate;
      const fields = x509Fields(certificate);
      if (fields.notAfter.getTime() <= now) continue;
      const entry: X509Entry = {
        state: e.state,
        keyId: e.keyId,
        certificate,
        upstreamChain: certs.slice(1),
        upstreamRoots: roots,
        notBefore: fields.notBefore.getTime(),
        notAfter: fields.notAfter.getTime(),
        id: (fields.subjectKeyIdentifier ?? keyIdentifierForSpki(fields.subjectPublicKeyInfo)).toString('hex'),
        ca: undefined,
      };
      if (e.state !== 'old') {
        const key = e.keyId === undefined ? undefined : await this.#options.keyManager.getKey(e.keyId);
        if (key && spkiOf(key).equals(fields.subjectPublicKeyInfo)) {
          entry.ca = this.#x509Ca(certificate, key, entry.upstreamChain);
        } else {
          this.#retire(entry, 'its key is gone from the key manager');
        }
      }
      this.#x509.push(entry);
    }
    for (const e of saved.jwt) {
      if (e.notAfter.getTime() <= now) continue;
      const entry: JwtEntry = {
        state: e.state,
        keyId: e.keyId,
        kid: e.kid,
        publicKey: createPublicKey({ key: e.publicKey, format: 'der', type: 'spki' }),
        notBefore: e.notBefore.getTime(),
        notAfter: e.notAfter.getTime(),
        signer: undefined,
      };
      if (e.state !== 'old') {
        const key = e.keyId === undefined ? undefined : await this.#options.keyManager.getKey(e.keyId);
        if (key && spkiOf(key).equals(e.publicKey)) entry.signer = this.#jwtSignerFor(entry.kid, key, entry.notAfter);
        else this.#retire(entry, 'its key is gone from the key manager');
      }
      this.#jwt.push(entry);
    }
    for (const entries of [this.#x509, this.#jwt] as Entry[][]) {
      // At most one current and one next per kind; anything else in the journal is retired.
      for (const state of ['active', 'prepared'] as const) {
        for (const extra of entries.filter((e) => e.state === state).slice(1))
          this.#retire(extra, `a second ${state} one`);
      }
    }
    this.#currentX509 = this.#x509.find((e) => e.state === 'active');
    this.#currentJwt = this.#jwt.find((e) => e.state === 'active');
    this.#log.info(
      {
        journal: journal.location,
        x509: this.#x509.map((e) => ({ id: e.id, state: e.state })),
        jwt: this.#jwt.map((e) => ({ kid: e.kid, state: e.state })),
      },
      'resumed the CA from its journal',
    );
  }

  #certificate(der: Buffer, where: string): X509Certificate {
    try {
      return new X509Certificate(der);
    } catch (cause) {
      throw new CaError(
        'ERR_CA_STATE_INVALID',
        `the CA journal ${this.#options.journal.location}: ${where} is not a certificate`,
        {
          cause,
        },
      );
    }
  }

  #retire(entry: Entry, reason: string): void {
    const what = 'kid' in entry ? `JWT key ${entry.kid}` : `X.509 authority ${entry.id}`;
    this.#log.warn(
      { authority: what, reason },
      'retiring authority: it stays published until it expires but signs nothing',
    );
    entry.state = 'old';
    entry.keyId = undefined;
    if ('kid' in entry) entry.signer = undefined;
    else entry.ca = undefined;
  }

  // -------------------------------------------------------------------------
  // Rotation

  /**
   * One rotation step: prune, prepare (and publish), activate, save, reschedule. At start
   * (`starting`) everything loaded is published, whether or not anything changed.
   */
  async #rotate(starting = false): Promise<void> {
    const now = this.#clock.now().getTime();
    let changed = this.#prune(now) || starting;

    // Prepare first and publish, so nothing is ever signed by an unpublished authority.
    const x509 = this.#due(this.#x509, now);
    if (x509.prepare) {
      await this.#prepareX509(now);
      changed = true;
    }
    const jwt = this.#due(this.#jwt, now);
    if (jwt.prepare) {
      await this.#prepareJwt(now);
      changed = true;
    }
    if (changed) {
      await this.#saveJournal();
      await this.#publish();
    }

    let activated = false;
    for (const entries of [this.#x509, this.#jwt] as Entry[][]) {
      if (this.#due(entries, now).activate) {
        this.#activate(entries);
        activated = true;
      }
    }
    if (activated) await this.#saveJournal();
    this.#lastError = undefined;
    this.#schedule(this.#clock.now().getTime(), false);
  }

  #due(entries: readonly Entry[], now: number): { prepare: boolean; activate: boolean } {
    const current = entries.find((e) => e.state === 'active' && e.notAfter > now && this.#canSign(e));
    const next = entries.find((e) => e.state === 'prepared' && e.notAfter > now && this.#canSign(e));
    if (!current) return { prepare: !next, activate: true };
    if (!next) return { prepare: now >= preparationTime(current.notBefore, current.notAfter), activate: false };
    return { prepare: false, activate: now >= activationTime(current.notBefore, current.notAfter) };
  }

  #canSign(e: Entry): boolean {
    return 'kid' in e ? e.signer !== undefined : e.ca !== undefined;
  }

  /** Drops expired authorities; true when any was dropped. */
  #prune(now: number): boolean {
    const expired = (e: Entry) => e.notAfter <= now;
    const gone = [...this.#x509.filter(expired), ...this.#jwt.filter(expired)];
    if (gone.length === 0) return false;
    this.#x509 = this.#x509.filter((e) => !expired(e));
    this.#jwt = this.#jwt.filter((e) => !expired(e));
    if (this.#currentX509 && expired(this.#currentX509)) this.#currentX509 = undefined;
    if (this.#currentJwt && expired(this.#currentJwt)) this.#currentJwt = undefined;
    for (const e of gone) {
      this.#log.info(
        { authority: 'kid' in e ? e.kid : e.id, kind: 'kid' in e ? 'jwt' : 'x509', notAfter: new Date(e.notAfter) },
        'pruned expired authority from the bundle',
      );
    }
    return true;
  }

  #activate(entries: Entry[]): void {
    const next = entries.find((e) => e.state === 'prepared' && this.#canSign(e));
    if (!next) return;
    const previous = entries.find((e) => e.state === 'active');
    if (previous) {
      previous.state = 'old';
      previous.keyId = undefined;
    }
    next.state = 'active';
    const kind = 'kid' in next ? 'jwt' : 'x509';
    if ('kid' in next) this.#currentJwt = next;
    else this.#currentX509 = next;
    const id = (e: Entry) => ('kid' in e ? e.kid : e.id);
    this.#log.info(
      { kind, authority: id(next), previous: previous ? id(previous) : undefined, notAfter: new Date(next.notAfter) },
      previous ? 'activated the next authority' : 'activated a new authority (none was current)',
    );
  }

  #freeKeyId(entries: readonly Entry[], ids: readonly string[]): string {
    const used = new Set(entries.map((e) => e.keyId));
    const free = ids.find((id) => !used.has(id));
    if (!free) throw new Error('CaManager: no free key slot (both hold keys in use)');
    return free;
  }

  async #prepareX509(now: number): Promise<void> {
    const keyId = this.#freeKeyId(this.#x509, X509_KEY_IDS);
    const keyType = this.#options.caKeyType ?? 'ec-p256';
    const privateKey = await this.#options.keyManager.generateKey(keyId, keyType);
    const subject = this.#options.caSubject ?? DEFAULT_CA_SUBJECT;
    const upstream = this.#options.upstreamAuthority;
    let certificate: X509Certificate;
    let upstreamChain: readonly X509Certificate[] = [];
    let upstreamRoots: readonly X509Certificate[] = [];
    if (upstream) {
      const minted = await upstream.mintX509Ca({
        publicKey: createPublicKey(privateKey),
        subject: subjectWithSerial(subject, randomSerialNumber()),
        trustDomain: this.trustDomain,
        ttlSeconds: this.#caTtlSeconds,
      });
      const first = minted.chain[0];
      if (!first || !spkiOf(first.publicKey).equals(spkiOf(privateKey))) {
        throw new CaError(
          'ERR_UPSTREAM_AUTHORITY_INVALID',
          `upstream authority (${upstream.name}) returned a chain whose first certificate is not for the requested key`,
        );
      }
      if (minted.upstreamRoots.length === 0) {
        throw new CaError('ERR_UPSTREAM_AUTHORITY_INVALID', `upstream authority (${upstream.name}) returned no roots`);
      }
      certificate = first;
      upstreamChain = minted.chain.slice(1);
      upstreamRoots = minted.upstreamRoots;
    } else {
      certificate = selfSignCaCertificate({
        trustDomain: this.trustDomain,
        privateKey,
        subject,
        now: new Date(now),
        ttlSeconds: this.#caTtlSeconds,
      });
    }
    const fields = x509Fields(certificate);
    const ca = this.#x509Ca(certificate, privateKey, upstreamChain);
    const entry: X509Entry = {
      state: 'prepared',
      keyId,
      certificate,
      upstreamChain,
      upstreamRoots,
      notBefore: fields.notBefore.getTime(),
      notAfter: fields.notAfter.getTime(),
      id: ca.authorityId,
      ca,
    };
    this.#x509.push(entry);
    this.#log.info(
      { kind: 'x509', authority: entry.id, keyId, keyType, notAfter: fields.notAfter, upstream: upstream?.name },
      'prepared the next X.509 authority and publishing it',
    );
  }

  #x509Ca(certificate: X509Certificate, privateKey: KeyObject, upstreamChain: readonly X509Certificate[]): X509Ca {
    try {
      return new X509Ca({
        trustDomain: this.trustDomain,
        certificate,
        privateKey,
        upstreamChain,
        clock: this.#clock,
        svidSubject: this.#options.svidSubject ?? DEFAULT_SVID_SUBJECT,
      });
    } catch (cause) {
      const code = this.#options.upstreamAuthority ? 'ERR_UPSTREAM_AUTHORITY_INVALID' : 'ERR_CA_STATE_INVALID';
      throw new CaError(code, `the X.509 CA certificate cannot sign: ${(cause as Error).message}`, { cause });
    }
  }

  async #prepareJwt(now: number): Promise<void> {
    const keyId = this.#freeKeyId(this.#jwt, JWT_KEY_IDS);
    const keyType = this.#options.jwtKeyType ?? this.#options.caKeyType ?? 'ec-p256';
    const privateKey = await this.#options.keyManager.generateKey(keyId, keyType);
    const kid = newKeyId();
    // Whole seconds, like every other time here (the journal and JWT exp are in seconds).
    const notBefore = Math.floor(now / 1000) * 1000;
    const notAfter = notBefore + this.#caTtlSeconds * 1000;
    const entry: JwtEntry = {
      state: 'prepared',
      keyId,
      kid,
      publicKey: createPublicKey(privateKey),
      notBefore,
      notAfter,
      signer: this.#jwtSignerFor(kid, privateKey, notAfter),
    };
    this.#jwt.push(entry);
    this.#log.info(
      { kind: 'jwt', authority: kid, keyId, keyType, notAfter: new Date(notAfter) },
      'prepared the next JWT key and publishing it',
    );
  }

  #jwtSignerFor(kid: string, privateKey: KeyObject, notAfter: number): JwtSigner {
    return new JwtSigner({
      trustDomain: this.trustDomain,
      kid,
      privateKey,
      notAfter: new Date(notAfter),
      clock: this.#clock,
      ...(this.#options.jwtIssuer === undefined ? {} : { issuer: this.#options.jwtIssuer }),
    });
  }

  async #saveJournal(): Promise<void> {
    const journal: CaJournal = {
      trustDomain: this.trustDomain.name,
      x509: this.#x509.map((e) => ({
        state: e.state,
        ...(e.keyId === undefined ? {} : { keyId: e.keyId }),
        chain: [e.certificate.raw, ...e.upstreamChain.map((c) => c.raw)],
        upstreamRoots: e.upstreamRoots.map((c) => c.raw),
      })),
      jwt: this.#jwt.map((e) => ({
        state: e.state,
        ...(e.keyId === undefined ? {} : { keyId: e.keyId }),
        kid: e.kid,
        publicKey: e.publicKey.export({ format: 'der', type: 'spki' }),
        notBefore: new Date(e.notBefore),
        notAfter: new Date(e.notAfter),
      })),
    };
    await this.#options.journal.save(serializeJournal(journal));
  }

  async #publish(): Promise<void> {
    const seen = new Set<string>();
    const x509: X509Certificate[] = [];
    for (const e of this.#x509) {
      for (const anchor of e.upstreamRoots.length > 0 ? e.upstreamRoots : [e.certificate]) {
        const key = anchor.raw.toString('base64');
        if (!seen.has(key)) {
          seen.add(key);
          x509.push(anchor);
        }
      }
    }
    const jwt: JwtAuthority[] = this.#jwt.map((e) => ({
      kid: e.kid,
      publicKey: e.publicKey,
      notAfter: new Date(e.notAfter),
    }));
    const bundle = await this.#options.publisher.publish({ x509, jwt });
    if (this.#bundle && bundle.equals(this.#bundle)) return;
    this.#bundle = bundle;
    this.#log.info(
      {
        sequence: bundle.sequenceNumber?.toString(),
        x509: bundle.x509Authorities.length,
        jwt: bundle.jwtAuthorities.size,
      },
      'trust bundle changed',
    );
    for (const listener of this.#listeners) {
      try {
        listener(bundle);
      } catch (err) {
        this.#log.error({ err }, 'a bundle change listener threw');
      }
    }
  }

  /** Sets the timer for the next thing due: preparation, activation, or an expiry to prune. */
  #schedule(now: number, failed: boolean): void {
    this.#cancelTimer();
    if (this.#state === 'stopped' || this.#state === 'failed') return;
    let next = Number.POSITIVE_INFINITY;
    for (const entries of [this.#x509, this.#jwt] as Entry[][]) {
      const current = entries.find((e) => e.state === 'active');
      const prepared = entries.some((e) => e.state === 'prepared');
      if (current) {
        next = Math.min(
          next,
          prepared
            ? activationTime(current.notBefore, current.notAfter)
            : preparationTime(current.notBefore, current.notAfter),
        );
      }
      for (const e of entries) next = Math.min(next, e.notAfter);
    }
    if (failed) next = Math.min(next, now + this.#retryMs);
    if (!Number.isFinite(next)) return;
    // Never 0: a step that is due again at once would spin; the clock only moves forward.
    this.#timer = this.#clock.setTimer(() => this.#onTimer(), Math.max(1, Math.ceil(next - now)));
  }

  #onTimer(): void {
    this.#timer = undefined;
    void this.#serialize(async () => {
      if (this.#state === 'stopped' || this.#state === 'failed') return;
      try {
        await this.#rotate();
      } catch (err) {
        this.#lastError = (err as Error).message;
        this.#log.error({ err }, `CA rotation step failed; retrying in ${Math.round(this.#retryMs / 1000)} s`);
        // What was already done stays done; the next attempt picks up from there.
        this.#schedule(this.#clock.now().getTime(), true);
      }
    });
  }
}
