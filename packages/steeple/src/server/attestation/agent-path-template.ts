/**
 * x509pop's `agent_path_template` (SPIRE's key): the part of the agent ID after
 * `/spire/agent/`, with `{{ .Name }}` placeholders. SPIRE evaluates a Go text/template;
 * we accept only plain placeholders of the values below, which covers the documented
 * uses (`{{ .PluginName }}/{{ .Fingerprint }}`, `cn/{{ .Subject.CommonName }}`) without
 * a template language. Anything else is refused when the config is loaded.
 * @module
 */

/** The values a template may name, as SPIRE spells them. */
export const AGENT_PATH_TEMPLATE_VALUES = [
  'PluginName',
  'Fingerprint',
  'TrustDomain',
  'Subject.CommonName',
  'SerialNumberHex',
] as const;
export type AgentPathTemplateValue = (typeof AGENT_PATH_TEMPLATE_VALUES)[number];

/** SPIRE's default for x509pop in external_pki mode. */
export const DEFAULT_AGENT_PATH_TEMPLATE = '{{ .PluginName }}/{{ .Fingerprint }}';

type Part = { readonly text: string } | { readonly value: AgentPathTemplateValue };

/** A parsed template; render it with the certificate's values. */
export interface AgentPathTemplate {
  readonly source: string;
  /** The values the template uses. */
  readonly uses: ReadonlySet<AgentPathTemplateValue>;
  /** The path relative to `/spire/agent/` (a leading "/" is dropped, as SPIRE joins paths). */
  render(
    values: Readonly<Partial<Record<AgentPathTemplateValue, string>>>,
  ): string | { readonly missing: AgentPathTemplateValue };
}

const PLACEHOLDER = /\{\{\s*\.([A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*)*)\s*\}\}/y;

/** Parses `source`, or returns a message saying what is wrong with it. */
export function parseAgentPathTemplate(source: string): AgentPathTemplate | string {
  const parts: Part[] = [];
  const uses = new Set<AgentPathTemplateValue>();
  let text = '';
  let i = 0;
  while (i < source.length) {
    if (source.startsWith('{{', i)) {
      PLACEHOLDER.lastIndex = i;
      const m = PLACEHOLDER.exec(source);
      if (!m) return `"${source}" has a "{{" that is not a placeholder such as {{ .Fingerprint }}`;
      const name = m[1] as string;
      if (!(AGENT_PATH_TEMPLATE_VALUES as readonly string[]).includes(name)) {
        return `"${source}" uses .${name}; allowed: ${AGENT_PATH_TEMPLATE_VALUES.map((v) => `.${v}`).join(', ')}`;
      }
      if (text !== '') parts.push({ text });
      text = '';
      parts.push({ value: name as AgentPathTemplateValue });
      uses.add(name as AgentPathTemplateValue);
      i = PLACEHOLDER.lastIndex;
    } else if (source.startsWith('}}', i)) {
      return `"${source}" has a "}}" without a matching "{{"`;
    } else {
      text += source[i];
      i++;
    }
  }
  if (text !== '') parts.push({ text });
  if (uses.size === 0)
    return `"${source}" must use at least one value, e.g. {{ .Fingerprint }}, or every agent gets the same ID`;
  return Object.freeze({
    source,
    uses,
    render(values: Readonly<Partial<Record<AgentPathTemplateValue, string>>>) {
      let out = '';
      for (const part of parts) {
        if ('text' in part) {
          out += part.text;
          continue;
        }
        const v = values[part.value];
        if (v === undefined || v === '') return { missing: part.value };
        out += v;
      }
      return out.replace(/^\/+/, '');
    },
  });
}
