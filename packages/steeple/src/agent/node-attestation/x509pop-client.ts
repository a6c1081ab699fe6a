/**
 * The agent's `x509pop` method (SPIRE's agent plugin of that name): it sends the node's
 * certificate chain and signs the server's nonce with the node's private key. The keys
 * follow SPIRE's agent config:
 *
 * ```yaml
 * x509pop:
 *   private_key_path: /etc/steeple/node.key       # PEM: PKCS#8, PKCS#1 (RSA) or SEC1 (EC)
 *   certificate_path: /etc/steeple/node.pem       # PEM: the node certificate first, then any intermediates
 *   intermediates_path: /etc/steeple/chain.pem    # optional PEM: more intermediates, appended
 * ```
 *
 * The wire format is in x509pop-format.ts. The files are read when the client is created
 * (so a bad path stops the agent at start, naming the key) and again for every
 * attestation, so a certificate renewed on disk is used when the agent re-attests.
 * @module
 */
import { createPrivateKey, createPublicKey, type KeyObject, sign, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { TrustDomain } from '@steeple/spiffe';
import * as z from 'zod/mini';
import {
  encodeX509PopPayload,
  X509POP_ATTESTOR_NAME,
  X509POP_NONCE_LENGTH,
  type X509PopSignatureScheme,
  x509PopSchemeFor,
  x509PopSignedMessage,
} from '../../common/attestation/x509pop-format.js';
import { ConfigError } from '../../common/errors.js';
import { NodeAttestationClientError, type NodeAttestorClient } from './node-attestor-client.js';

const path = z.string().check(z.minLength(1));

/** The x509pop settings of the agent config (SPIRE's key names); embed it in the agent config schema. */
export const x509PopClientConfigSchema = z.strictObject({
  private_key_path: path,
  certificate_path: path,
  intermediates_path: z.optional(path),
});

export type X509PopClientConfig = z.output<typeof x509PopClientConfigSchema>;

/** Options of {@link createX509PopClient}. */
export interface X509PopClientOptions {
  /** The trust domain of the server the agent attests to: the signature is bound to it. */
  readonly trustDomain: TrustDomain;
  /** Where the settings sit in the agent config, for error messages; default `x509pop`. */
  readonly configKey?: string;
  /** Reads a file as text; default fs.readFileSync(path, 'utf8'). */
  readonly readFile?: (path: string) => string;
}

interface LoadedIdentity {
  readonly chain: readonly X509Certificate[];
  readonly privateKey: KeyObject;
  readonly scheme: X509PopSignatureScheme;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\s]*?)-----END \1-----/g;

/**
 * A client for the node identity in `config`.
 * @throws ConfigError (`ERR_CONFIG_INVALID`) naming the key (`x509pop.private_key_path`, …)
 *   when a file cannot be read or parsed, the key does not belong to the certificate, or
 *   the key type is not supported.
 */
export function createX509PopClient(config: X509PopClientConfig, options: X509PopClientOptions): NodeAttestorClient {
  const prefix = options.configKey ?? 'x509pop';
  const readFile = options.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
  const trustDomain = options.trustDomain.name;
  const load = () => loadIdentity(config, prefix, readFile);
  let current = load();

  return Object.freeze({
    name: X509POP_ATTESTOR_NAME,
    async payload() {
      current = load();
      return Uint8Array.from(encodeX509PopPayload(current.chain));
    },
    async answer(challenge: Uint8Array) {
      if (!(challenge instanceof Uint8Array) || challenge.length !== X509POP_NONCE_LENGTH) {
        throw new NodeAttestationClientError(
          X509POP_ATTESTOR_NAME,
          `the server sent a challenge of ${challenge?.length ?? 0} bytes; x509pop expects a ${X509POP_NONCE_LENGTH}-byte nonce`,
        );
      }
      const { hash, ...options } = current.scheme;
      const message = x509PopSignedMessage(trustDomain, challenge);
      return Uint8Array.from(sign(hash, message, { ...options, key: current.privateKey }));
    },
  });
}

function loadIdentity(config: X509PopClientConfig, prefix: string, readFile: (path: string) => string): LoadedIdentity {
  const keyOf = (name: string) => `${prefix}.${name}`;
  const problem = (name: string, message: string, cause?: unknown) =>
    new ConfigError([{ path: keyOf(name), message }], cause === undefined ? {} : { cause });
  const read = (name: string, file: string) => {
    try {
      return readFile(file);
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      throw problem(name, `cannot read ${JSON.stringify(file)}${code ? ` (${code})` : ''}`, cause);
    }
  };

  const chain = readCertificates('certificate_path', config.certificate_path, read, problem);
  if (config.intermediates_path !== undefined) {
    chain.push(...readCertificates('intermediates_path', config.intermediates_path, read, problem));
  }

  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(read('private_key_path', config.private_key_path));
  } catch (cause) {
    if (cause instanceof ConfigError) throw cause;
    // Never echo the file's content or OpenSSL's text about it: it is a private key.
    throw problem(
      'private_key_path',
      `${JSON.stringify(config.private_key_path)} holds no usable unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1)`,
    );
  }
  const leaf = chain[0] as X509Certificate;
  const spki = (k: KeyObject) => k.export({ format: 'der', type: 'spki' });
  if (!spki(createPublicKey(privateKey)).equals(spki(leaf.publicKey))) {
    throw problem(
      'private_key_path',
      `the key in ${JSON.stringify(config.private_key_path)} does not belong to the first certificate of ${JSON.stringify(config.certificate_path)}`,
    );
  }
  const scheme = x509PopSchemeFor(privateKey);
  if (typeof scheme === 'string') throw problem('private_key_path', scheme);
  return { chain, privateKey, scheme };
}

function readCertificates(
  name: string,
  file: string,
  read: (name: string, file: string) => string,
  problem: (name: string, message: string, cause?: unknown) => ConfigError,
): X509Certificate[] {
  const out: X509Certificate[] = [];
  for (const m of read(name, file).matchAll(PEM_BLOCK)) {
    if (m[1] !== 'CERTIFICATE') continue;
    try {
      out.push(new X509Certificate(Buffer.from((m[2] as string).replace(/\s+/g, ''), 'base64')));
    } catch (cause) {
      throw problem(name, `${JSON.stringify(file)}: PEM block #${out.length} is not a valid X.509 certificate`, cause);
    }
  }
  if (out.length === 0) throw problem(name, `${JSON.stringify(file)} holds no PEM CERTIFICATE block`);
  return out;
}
