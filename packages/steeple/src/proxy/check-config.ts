/**
 * `steeple proxy check`: validates a proxy configuration, its policy file and its
 * identity files without opening a socket, and lists every problem found.
 * @module
 */

import type { PolicyFile } from '@steeple/spiffe/policy';
import type { LoadYamlConfigOptions } from '../common/config/load-yaml.js';
import { ConfigError } from '../common/errors.js';
import { loadProxyConfig, type ProxyConfig } from './config.js';
import { readIdentityFiles } from './identity/file-identity.js';
import { loadPolicyFile } from './policy/policy-store.js';

export interface ProxyCheckResult {
  readonly ok: boolean;
  /** Each problem on its own, already formatted (file, key path, line). */
  readonly problems: readonly string[];
  /** Things that work but are probably not meant (a policy for a listener that does not exist). */
  readonly warnings: readonly string[];
  /** A one-line summary when the files are fine. */
  readonly summary: string;
}

/** Checks `configFile` and the files it names. Never throws for bad input. */
export function checkProxyConfig(configFile: string, options: LoadYamlConfigOptions = {}): ProxyCheckResult {
  const problems: string[] = [];
  const warnings: string[] = [];
  let config: ProxyConfig;
  try {
    config = loadProxyConfig(configFile, options);
  } catch (err) {
    return { ok: false, problems: [(err as Error).message], warnings, summary: '' };
  }
  let policy: PolicyFile | undefined;
  if (config.policy.file !== undefined) {
    try {
      policy = loadPolicyFile(config.policy.file);
    } catch (err) {
      problems.push(
        err instanceof ConfigError ? err.message : `policy ${config.policy.file}: ${(err as Error).message}`,
      );
    }
  }
  if (config.identity.files !== undefined) {
    try {
      readIdentityFiles(config.identity.files);
    } catch (err) {
      problems.push(`identity: ${(err as Error).message}`);
    }
  }
  const inboundNames = new Set(config.inbound.map((l) => l.name));
  for (const p of policy?.policies ?? []) {
    for (const name of p.listeners ?? []) {
      if (!inboundNames.has(name)) {
        warnings.push(`policy "${p.name}" names listener "${name}", which is not an inbound listener of ${configFile}`);
      }
    }
    if (p.rules.length === 0 && p.action === 'ALLOW' && !p.dryRun) {
      warnings.push(`policy "${p.name}" is an ALLOW policy without rules: it allows nothing`);
    }
  }
  const summary =
    `configuration OK: ${config.inbound.length} inbound and ${config.outbound.length} outbound listeners` +
    (policy === undefined
      ? ', no policy file (every verified caller allowed)'
      : `, ${policy.policies.length} policies`);
  return { ok: problems.length === 0, problems, warnings, summary };
}
