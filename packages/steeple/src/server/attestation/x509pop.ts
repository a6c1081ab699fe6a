/**
 * The `x509pop` node attestor (SPIRE's "X.509 proof of possession"): the node holds a
 * certificate from an organisation's own PKI, provisioned out of band. The agent sends
 * the certificate chain; the server checks that it leads to a CA in `ca_bundle_path`
 * and that the leaf may sign (keyUsage digitalSignature), then sends a random nonce that
 * the agent must sign with the leaf's private key. The wire format is documented in
 * x509pop-format.ts.
 *
 * Outcome, as SPIRE: agent ID `spiffe://<td>/spire/agent/x509pop/<SHA-1 of the leaf's DER,
 * hex>` (or `agent_path_template`), selectors `x509pop:subject:cn:<CN>` (when the leaf
 * has a CN), `x509pop:ca:fingerprint:<SHA-1 hex>` for every CA certificate of the
 * verified path (intermediates and the anchor), `x509pop:serialnumber:<lowercase hex>`;
 * the agent may re-attest (it still holds the key).
 * @module
 */
import { createHash, randomBytes as cryptoRandomBytes, verify, X509Certificate } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Name } from '@peculiar/asn1-x509';
import { SpiffeId, SpiffeIdError } from '@steeple/spiffe';
import { x509Fields } from '@steeple/spiffe/issuance';
import {
  splitX509PopCertificates,
  X509POP_ATTESTOR_NAME,
  X509POP_MAX_RESPONSE_BYTES,
  X509POP_NONCE_LENGTH,
  type X509PopSignatureScheme,
  x509PopSchemeFor,
  x509PopSignedMessage,
} from '../../common/attestation/x509pop-format.js';
import { normalizeSelectors } from '../datastore/selector-set.js';
import { type AgentPathTemplate, DEFAULT_AGENT_PATH_TEMPLATE, parseAgentPathTemplate } from './agent-path-template.js';
import {
  type AttestationContext,
  AttestationError,
  type ChallengeFn,
  type NodeAttestation,
  type NodeAttestor,
  type NodeSelector,
} from './node-attestor.js';
import { CertificateChainError, verifyCertificateChain } from './verify-certificate-chain.js';

/** keyUsage digitalSignature (bit 0), as a mask of x509Fields' keyUsage flags. */
const KU_DIGITAL_SIGNATURE = 1;
const OID_COMMON_NAME = '2.5.4.3';

export interface X509PopAttestorOptions {
  /** The trust anchors (the certificates of `ca_bundle_path`). */
  readonly caBundle: readonly X509Certificate[];
  /** `agent_path_template`; default `{{ .PluginName }}/{{ .Fingerprint }}`. */
  readonly agentPathTemplate?: string;
  /** Source of the challenge nonce; default crypto.randomBytes. Tests inject it. */
  readonly randomBytes?: (size: number) => Uint8Array;
}

function refused(reason: string): AttestationError {
  return new AttestationError(X509POP_ATTESTOR_NAME, reason);
}

function malformed(reason: string): AttestationError {
  return new AttestationError(X509POP_ATTESTOR_NAME, reason, { code: 'ERR_ATTESTATION_DATA_INVALID' });
}

/** Parses the payload into certificates (leaf first), refusing anything that is not DER X.509. */
function parseChain(payload: Uint8Array): X509Certificate[] {
  let parts: Uint8Array[];
  try {
    parts = splitX509PopCertificates(payload);
  } catch (err) {
    throw malformed(`payload is not a DER certificate chain: ${(err as Error).message}`);
  }
  return parts.map((der, i) => {
    try {
      const cert = new X509Certificate(der);
      // Fail here, not later, on odd encodings: our own strict DER walk, and the key
      // (node:crypto parses it lazily and throws on first access).
      x509Fields(cert);
      void cert.publicKey;
      return cert;
    } catch {
      throw malformed(`certificate #${i} of the payload is not a valid DER X.509 certificate with a usable public key`);
    }
  });
}

/** The last CN of the subject (Go's pkix.Name keeps the last one, and so SPIRE). */
function subjectCommonName(cert: X509Certificate): string | undefined {
  let cn: string | undefined;
  try {
    const name = AsnConvert.parse(x509Fields(cert).subject, Name);
    for (const rdn of name) for (const atv of rdn) if (atv.type === OID_COMMON_NAME) cn = atv.value.toString();
  } catch {
    return undefined;
  }
  return cn === '' ? undefined : cn;
}

/** Lowercase hex without leading zeros, as Go's big.Int.Text(16) (SPIRE's serial selector). */
function serialNumberHex(cert: X509Certificate): string {
  const hex = x509Fields(cert).serialNumber.toString('hex').replace(/^0+/, '');
  return hex === '' ? '0' : hex;
}

function sha1Hex(cert: X509Certificate): string {
  return createHash('sha1').update(cert.raw).digest('hex');
}

function verifyResponse(
  leaf: X509Certificate,
  scheme: X509PopSignatureScheme,
  message: Buffer,
  signature: Uint8Array,
): boolean {
  try {
    const { hash, ...options } = scheme;
    return verify(hash, message, { ...options, key: leaf.publicKey }, signature);
  } catch {
    return false; // a signature that cannot even be decoded does not verify
  }
}

/** Creates the x509pop attestor. Throws a TypeError for a bad template or an empty CA bundle (config validation catches both first). */
export function createX509PopAttestor(options: X509PopAttestorOptions): NodeAttestor {
  const anchors = Object.freeze([...options.caBundle]);
  if (anchors.length === 0) throw new TypeError('x509pop needs at least one CA certificate');
  const template = parseAgentPathTemplate(options.agentPathTemplate ?? DEFAULT_AGENT_PATH_TEMPLATE);
  if (typeof template === 'string') throw new TypeError(`agent_path_template ${template}`);
  const random = options.randomBytes ?? cryptoRandomBytes;

  return Object.freeze({
    name: X509POP_ATTESTOR_NAME,
    async attest(payload: Uint8Array, challenge: ChallengeFn, ctx: AttestationContext): Promise<NodeAttestation> {
      const certificates = parseChain(payload);
      const leaf = certificates[0] as X509Certificate;
      const keyUsage = x509Fields(leaf).keyUsage;
      if (keyUsage === undefined || (keyUsage.flags & KU_DIGITAL_SIGNATURE) === 0) {
        throw refused('certificate is not for digital signatures (keyUsage lacks digitalSignature)');
      }
      const scheme = x509PopSchemeFor(leaf.publicKey);
      if (typeof scheme === 'string') throw refused(`certificate key: ${scheme}`);

      let path: readonly X509Certificate[];
      try {
        path = verifyCertificateChain(certificates, anchors, ctx.now).path;
      } catch (err) {
        if (err instanceof CertificateChainError) throw refused(err.message);
        throw err;
      }

      // The chain is trusted; now the agent must prove it holds the leaf's key.
      const nonce = Uint8Array.from(random(X509POP_NONCE_LENGTH));
      const response = await challenge(nonce);
      if (!(response instanceof Uint8Array) || response.length === 0) throw malformed('challenge response is empty');
      if (response.length > X509POP_MAX_RESPONSE_BYTES) {
        throw malformed(`challenge response is larger than ${X509POP_MAX_RESPONSE_BYTES} bytes`);
      }
      const message = x509PopSignedMessage(ctx.trustDomain.name, nonce);
      if (!verifyResponse(leaf, scheme, message, response)) {
        throw refused("challenge response is not a signature of this server's nonce with the certificate's key");
      }

      return describeAttestation(leaf, path, template, ctx);
    },
  });
}

function describeAttestation(
  leaf: X509Certificate,
  path: readonly X509Certificate[],
  template: AgentPathTemplate,
  ctx: AttestationContext,
): NodeAttestation {
  const fingerprint = sha1Hex(leaf);
  const commonName = subjectCommonName(leaf);
  const serial = serialNumberHex(leaf);
  const rendered = template.render({
    PluginName: X509POP_ATTESTOR_NAME,
    Fingerprint: fingerprint,
    TrustDomain: ctx.trustDomain.name,
    SerialNumberHex: serial,
    ...(commonName === undefined ? {} : { 'Subject.CommonName': commonName }),
  });
  if (typeof rendered !== 'string') {
    throw refused(`agent_path_template uses .${rendered.missing}, which the certificate does not have`);
  }
  const agentId = SpiffeId.tryFromPath(ctx.trustDomain, `/spire/agent/${rendered}`);
  if (agentId instanceof SpiffeIdError) {
    throw refused(`agent_path_template gives an invalid agent ID for this certificate: ${agentId.rule}`);
  }

  const selectors: NodeSelector[] = [{ type: X509POP_ATTESTOR_NAME, value: `serialnumber:${serial}` }];
  if (commonName !== undefined) selectors.push({ type: X509POP_ATTESTOR_NAME, value: `subject:cn:${commonName}` });
  for (const ca of path.slice(1)) {
    selectors.push({ type: X509POP_ATTESTOR_NAME, value: `ca:fingerprint:${sha1Hex(ca)}` });
  }
  return Object.freeze({
    agentId,
    selectors: normalizeSelectors(selectors),
    canReattest: true,
  });
}
