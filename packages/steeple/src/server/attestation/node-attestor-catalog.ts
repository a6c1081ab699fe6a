/**
 * Builds the configured node attestors by name (the server config's `node_attestors`).
 * Each plugin's files are read here, once, so a bad `ca_bundle_path` stops the server at
 * start with an error naming the key, not at the first agent.
 * @module
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as z from 'zod/mini';
import { X509POP_ATTESTOR_NAME } from '../../common/attestation/x509pop-format.js';
import { validateConfig } from '../../common/config/validate-config.js';
import { ConfigError } from '../../common/errors.js';
import { createJoinTokenAttestor, JOIN_TOKEN_ATTESTOR_NAME, type JoinTokenConsumer } from './join-token.js';
import type { NodeAttestor } from './node-attestor.js';
import { nodeAttestorsSchema, type X509PopConfig } from './node-attestors-config.js';
import { createX509PopAttestor } from './x509pop.js';

/** The enabled node attestors by name (`AttestationData.type`). */
export type NodeAttestorCatalog = ReadonlyMap<string, NodeAttestor>;

/** What the plugins need from the rest of the server. */
export interface NodeAttestorDeps {
  /** The datastore's join-token store (`datastore.joinTokens`); required when join_token is enabled. */
  readonly joinTokens?: JoinTokenConsumer;
  /** Source of challenge nonces; default crypto.randomBytes. */
  readonly randomBytes?: (size: number) => Uint8Array;
  /** Reads a configured file as text; default fs.readFileSync(path, 'utf8'). */
  readonly readFile?: (path: string) => string;
}

const wrapper = z.strictObject({ node_attestors: nodeAttestorsSchema });

/**
 * Creates the node attestors named in `config` (the `node_attestors` section, raw or
 * already parsed).
 * @throws ConfigError (`ERR_CONFIG_INVALID`) for an unknown plugin name, a bad setting or
 *   an unreadable or invalid CA bundle, with key paths such as `node_attestors.x509pop.ca_bundle_path`.
 */
export function createNodeAttestors(config: unknown, deps: NodeAttestorDeps = {}): NodeAttestorCatalog {
  const parsed = validateConfig({ node_attestors: config }, wrapper).node_attestors;
  const catalog = new Map<string, NodeAttestor>();
  if (parsed.join_token !== undefined) {
    if (deps.joinTokens === undefined) throw new TypeError('createNodeAttestors: join_token needs deps.joinTokens');
    catalog.set(JOIN_TOKEN_ATTESTOR_NAME, createJoinTokenAttestor({ joinTokens: deps.joinTokens }));
  }
  if (parsed.x509pop !== undefined) {
    const caBundle = loadCaBundle(parsed.x509pop, deps.readFile ?? ((p) => readFileSync(p, 'utf8')));
    catalog.set(
      X509POP_ATTESTOR_NAME,
      createX509PopAttestor({
        caBundle,
        ...(parsed.x509pop.agent_path_template === undefined
          ? {}
          : { agentPathTemplate: parsed.x509pop.agent_path_template }),
        ...(deps.randomBytes === undefined ? {} : { randomBytes: deps.randomBytes }),
      }),
    );
  }
  return catalog;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\s]*?)-----END \1-----/g;

function loadCaBundle(config: X509PopConfig, readFile: (path: string) => string): X509Certificate[] {
  const files: [key: string, path: string][] = [];
  if (config.ca_bundle_path !== undefined) files.push(['node_attestors.x509pop.ca_bundle_path', config.ca_bundle_path]);
  (config.ca_bundle_paths ?? []).forEach((p, i) => {
    files.push([`node_attestors.x509pop.ca_bundle_paths[${i}]`, p]);
  });
  const certificates: X509Certificate[] = [];
  for (const [key, path] of files) {
    const problem = (message: string, cause?: unknown) =>
      new ConfigError([{ path: key, message }], cause === undefined ? {} : { cause });
    let text: string;
    try {
      text = readFile(path);
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      throw problem(`cannot read ${JSON.stringify(path)}${code ? ` (${code})` : ''}`, cause);
    }
    let count = 0;
    for (const m of text.matchAll(PEM_BLOCK)) {
      if (m[1] !== 'CERTIFICATE') continue;
      try {
        certificates.push(new X509Certificate(Buffer.from((m[2] as string).replace(/\s+/g, ''), 'base64')));
      } catch (cause) {
        throw problem(`${JSON.stringify(path)}: PEM block #${count} is not a valid X.509 certificate`, cause);
      }
      count++;
    }
    if (count === 0) throw problem(`${JSON.stringify(path)} holds no PEM CERTIFICATE block`);
  }
  return certificates;
}
