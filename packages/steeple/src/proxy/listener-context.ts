/**
 * What every listener shares: the identity, the policy in force, the audit log, metrics
 * and the logger, plus the small helpers that turn decisions into records.
 * @module
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { X509BundleSetSource, X509Svid, X509SvidSource } from '@steeple/spiffe/core';
import type { Decision, PolicyEvaluator } from '@steeple/spiffe/policy';
import type { Logger } from '../common/logger.js';
import { type AuditLog, type AuditRecord, serializeDecisionFields } from './audit/audit-log.js';
import type { DecisionCount, ProxyMetrics } from './proxy-metrics.js';

export type IdentitySource = X509SvidSource & X509BundleSetSource;

export interface ListenerContext {
  readonly identity: IdentitySource;
  /** The policy in force now (read per connection or request, so reloads apply at once). */
  readonly policy: () => PolicyEvaluator;
  readonly audit: AuditLog | undefined;
  /** `all` writes every record; `matched` only denials, AUDIT matches and dry-run denials. */
  readonly auditRecords: 'all' | 'matched';
  readonly metrics: ProxyMetrics;
  readonly logger: Logger;
}

/** "unauthenticated" stands for callers without a verified SPIFFE ID. */
export const UNAUTHENTICATED = 'unauthenticated';

const ownIds = new WeakMap<X509Svid, string>();
/** The SVID asked about last and its ID: asked per request, it changes only at rotation. */
let lastSvid: X509Svid | undefined;
let lastId = '';

/** Our own SPIFFE ID as text, computed once per SVID. */
export function ownId(identity: IdentitySource): string {
  const svid = identity.getX509Svid();
  if (svid === lastSvid) return lastId;
  let id = ownIds.get(svid);
  if (id === undefined) {
    id = svid.id.toString();
    ownIds.set(svid, id);
  }
  lastSvid = svid;
  lastId = id;
  return id;
}

export function peerAddress(socket: Socket): string {
  const a = socket.remoteAddress ?? '';
  return a.includes(':') ? `[${a}]:${socket.remotePort}` : `${a}:${socket.remotePort}`;
}

/** What the audit records say about a connection's TLS (tls_resumed only when it was resumed). */
export interface TlsInfo {
  readonly tls_version: string | undefined;
  readonly tls_cipher: string | undefined;
  readonly tls_resumed: true | undefined;
}

/** TLS version, cipher and resumption of a connection, for audit records. */
export function tlsInfo(socket: TLSSocket): TlsInfo {
  return {
    tls_version: socket.getProtocol() ?? undefined,
    tls_cipher: socket.getCipher()?.name,
    tls_resumed: socket.isSessionReused() ? true : undefined,
  };
}

/** What a listener knows when it writes an audit record. */
export interface RecordInput {
  readonly type: AuditRecord['type'];
  readonly listener: string;
  readonly direction: AuditRecord['direction'];
  readonly sourceId: string;
  readonly destinationId: string | undefined;
  readonly peerAddress: string;
  /** The policy decision; undefined records an allowed exchange without policy (outbound). */
  readonly decision: Decision | undefined;
  /** Overrides the decision's reason (handshake failures, unreachable apps). */
  readonly reason?: string | undefined;
  readonly denied?: boolean;
  readonly method?: string | undefined;
  readonly path?: string | undefined;
  readonly host?: string | undefined;
  readonly status?: number | undefined;
  readonly bytesReceived: number;
  readonly bytesSent: number;
  readonly durationMs: number;
  readonly tls?: TlsInfo | undefined;
}

/**
 * Builds an audit record. Written field by field: object spreads followed by more keys
 * take V8's slow path, and this runs for every request.
 */
export function auditRecord(i: RecordInput): AuditRecord {
  const d = i.decision;
  const dry = d?.dryRun;
  return {
    type: i.type,
    listener: i.listener,
    direction: i.direction,
    source_id: i.sourceId,
    destination_id: i.destinationId,
    peer_address: i.peerAddress,
    decision: i.denied === true || (d !== undefined && !d.allowed) ? 'deny' : 'allow',
    reason: i.reason ?? d?.reason,
    policy: d?.policy,
    rule: d?.rule,
    audit_policy: d?.audit?.policy,
    dry_run:
      dry === undefined ? undefined : { decision: dry.allowed ? 'allow' : 'deny', policy: dry.policy, rule: dry.rule },
    method: i.method,
    path: i.path,
    host: i.host,
    status: i.status,
    bytes_received: i.bytesReceived,
    bytes_sent: i.bytesSent,
    duration_ms: Math.round(i.durationMs * 1000) / 1000,
    tls_version: i.tls?.tls_version,
    tls_cipher: i.tls?.tls_cipher,
    tls_resumed: i.tls?.tls_resumed,
  };
}

type DecisionPart = Pick<AuditRecord, 'decision' | 'reason' | 'policy' | 'rule' | 'audit_policy' | 'dry_run'>;

/** The decision fields of a record, as {@link auditRecord} fills them. */
function decisionPart(d: Decision | undefined, denied: boolean | undefined, reason: string | undefined): DecisionPart {
  const dry = d?.dryRun;
  return {
    decision: denied === true || (d !== undefined && !d.allowed) ? 'deny' : 'allow',
    reason: reason ?? d?.reason,
    policy: d?.policy,
    rule: d?.rule,
    audit_policy: d?.audit?.policy,
    dry_run:
      dry === undefined ? undefined : { decision: dry.allowed ? 'allow' : 'deny', policy: dry.policy, rule: dry.rule },
  };
}

const decisionJson = new WeakMap<Decision, string>();

/**
 * A request record's decision fields, serialized (see `serializeDecisionFields`); cached
 * per shared (frozen) decision, which is what the evaluator returns in the common case.
 */
export function decisionFields(d: Decision | undefined, reason: string | undefined): string {
  if (d === undefined || reason !== undefined || !Object.isFrozen(d)) {
    return serializeDecisionFields(decisionPart(d, undefined, reason));
  }
  let json = decisionJson.get(d);
  if (json === undefined) {
    json = serializeDecisionFields(decisionPart(d, undefined, undefined));
    decisionJson.set(d, json);
  }
  return json;
}

/** Whether a record with this decision is written under the configured record selection. */
export function shouldAudit(ctx: ListenerContext, d: Decision | undefined): boolean {
  if (ctx.audit === undefined) return false;
  if (ctx.auditRecords === 'all') return true;
  return d !== undefined && (!d.allowed || d.audit !== undefined || d.dryRun?.allowed === false);
}

interface CachedSeries {
  readonly metrics: ProxyMetrics;
  readonly listener: string;
  readonly series: DecisionCount;
}

/**
 * The counter series of shared (frozen) decisions, the ones the evaluator builds once per
 * rule: counting them is one look-up instead of building a label key per request.
 */
const seriesOf = new WeakMap<Decision, CachedSeries>();

/**
 * Counts a decision in the metrics: the deciding policy, and AUDIT and dry-run matches.
 * Returns the counter series of a shared decision (the caller may count the same
 * decision again by incrementing it), undefined for per-request ones.
 */
export function countDecision(ctx: ListenerContext, listener: string, d: Decision): DecisionCount | undefined {
  if (d.audit === undefined && d.dryRun === undefined && Object.isFrozen(d)) {
    const c = seriesOf.get(d);
    if (c !== undefined && c.metrics === ctx.metrics && c.listener === listener) {
      c.series.value++;
      return c.series;
    }
    const action = d.policy === undefined ? '' : d.allowed ? 'ALLOW' : 'DENY';
    const series = ctx.metrics.decisionSeries(listener, d.policy ?? '', action, d.allowed);
    seriesOf.set(d, { metrics: ctx.metrics, listener, series });
    series.value++;
    return series;
  }
  const action = d.policy === undefined ? '' : d.allowed ? 'ALLOW' : 'DENY';
  ctx.metrics.countDecision(listener, d.policy ?? '', action, d.allowed);
  if (d.audit !== undefined) ctx.metrics.countDecision(listener, d.audit.policy, 'AUDIT', d.allowed);
  if (d.dryRun !== undefined) ctx.metrics.countDecision(listener, d.dryRun.policy ?? '', 'DRY_RUN', d.dryRun.allowed);
  return undefined;
}

/** A short, stable metric label for a failed handshake or a refused peer. */
export function handshakeFailureReason(err: Error & { code?: string }): string {
  const code = err.code ?? '';
  if (code.startsWith('ERR_X509SVID_') || code === 'ERR_AUTHORIZATION_DENIED' || code.startsWith('ERR_BUNDLE_')) {
    return `spiffe_${code.slice(4).toLowerCase()}`;
  }
  if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') return 'no_client_certificate';
  if (code === 'ERR_SSL_CERTIFICATE_VERIFY_FAILED' || /certificate verify failed/i.test(err.message)) {
    return 'untrusted_certificate';
  }
  if (
    code === 'ERR_SSL_WRONG_VERSION_NUMBER' ||
    code === 'ERR_SSL_HTTP_REQUEST' ||
    code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG'
  ) {
    return 'not_tls';
  }
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return 'timeout';
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'connection_reset';
  if (/UNSUPPORTED_PROTOCOL|NO_SHARED_CIPHER|VERSION_TOO_LOW|NO_PROTOCOLS_AVAILABLE/.test(code)) {
    return 'protocol_mismatch';
  }
  if (/ALERT_UNKNOWN_CA|ALERT_BAD_CERTIFICATE|ALERT_CERTIFICATE/.test(code)) return 'peer_rejected_our_certificate';
  return 'tls_error';
}
