/**
 * The `node_attestors` section of the server config, keyed by SPIRE's plugin names:
 *
 * ```yaml
 * node_attestors:
 *   join_token: {}            # or just `join_token:`
 *   x509pop:
 *     ca_bundle_path: /etc/steeple/agent-ca.pem
 *     # agent_path_template: "{{ .PluginName }}/{{ .Fingerprint }}"
 * ```
 *
 * A plugin is enabled by naming it; an unknown name is an error that names the key.
 * Without the section, join_token alone is enabled (what `token generate` needs).
 * @module
 */
import * as z from 'zod/mini';
import { parseAgentPathTemplate } from './agent-path-template.js';

const path = z.string().check(z.minLength(1));

const x509PopSchema = z
  .strictObject({
    /** One PEM file of trusted CA certificates (SPIRE's key). */
    ca_bundle_path: z.optional(path),
    /** Several PEM files of trusted CA certificates (SPIRE's key); combined with ca_bundle_path. */
    ca_bundle_paths: z.optional(z.array(path).check(z.minLength(1))),
    /** The agent ID's path after `/spire/agent/`; see agent-path-template.ts. */
    agent_path_template: z.optional(
      z.string().check(
        z.minLength(1),
        z.superRefine((value: string, ctx) => {
          const parsed = parseAgentPathTemplate(value);
          if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', message: parsed });
        }),
      ),
    ),
  })
  .check(
    z.superRefine((value, ctx) => {
      if (value.ca_bundle_path === undefined && value.ca_bundle_paths === undefined) {
        ctx.addIssue({ code: 'custom', path: ['ca_bundle_path'], message: 'is required (or ca_bundle_paths)' });
      }
    }),
  );

/** `node_attestors`; embed it in the server config schema under that key. */
export const nodeAttestorsSchema = z.prefault(
  z
    .strictObject({
      /** `{}` or null (an empty YAML value) enables it; it has no settings. */
      join_token: z.optional(z.nullable(z.strictObject({}))),
      x509pop: z.optional(x509PopSchema),
    })
    .check((ctx) => {
      // Only when nothing else is wrong: `{ join_tokn: {} }` is a typo, not an empty section.
      if (ctx.issues.length === 0 && ctx.value.join_token === undefined && ctx.value.x509pop === undefined) {
        ctx.issues.push({
          code: 'custom',
          message: 'enable at least one node attestor: join_token, x509pop',
          input: ctx.value,
        });
      }
    }),
  { join_token: {} },
);

export type NodeAttestorsConfig = z.output<typeof nodeAttestorsSchema>;
export type X509PopConfig = z.output<typeof x509PopSchema>;
