/**
 * The proxy's Prometheus metrics, with the label children that hot paths use cached,
 * so a request costs a few additions rather than label look-ups.
 * @module
 */
import type { Counter, Gauge, Histogram } from 'prom-client';
import type { Metrics } from '../common/metrics.js';

type Direction = 'inbound' | 'outbound';

export class ProxyMetrics {
  readonly connections: Counter<'listener' | 'direction' | 'transport'>;
  readonly activeConnections: Gauge<'listener' | 'direction'>;
  readonly handshakeFailures: Counter<'listener' | 'direction' | 'reason'>;
  readonly decisions: Counter<'listener' | 'policy' | 'action' | 'decision'>;
  readonly requestDuration: Histogram<'listener' | 'direction'>;
  readonly bytes: Counter<'listener' | 'direction' | 'flow'>;
  readonly policyReloads: Counter<'result'>;
  readonly identityReloads: Counter<'result'>;
  readonly upstreamErrors: Counter<'listener' | 'direction' | 'reason'>;

  readonly #durationChildren = new Map<string, { observe(v: number): void }>();
  readonly #bytesChildren = new Map<string, { inc(v: number): void }>();
  readonly #decisionChildren = new Map<string, { inc(): void }>();

  constructor(metrics: Metrics) {
    this.connections = metrics.counter({
      name: 'proxy_connections_total',
      help: 'Connections accepted, by listener and transport (mtls or plaintext)',
      labelNames: ['listener', 'direction', 'transport'],
    });
    this.activeConnections = metrics.gauge({
      name: 'proxy_active_connections',
      help: 'Connections open now',
      labelNames: ['listener', 'direction'],
    });
    this.handshakeFailures = metrics.counter({
      name: 'proxy_handshake_failures_total',
      help: 'TLS handshakes that failed or peers refused by the SPIFFE check, by reason',
      labelNames: ['listener', 'direction', 'reason'],
    });
    this.decisions = metrics.counter({
      name: 'proxy_authorization_decisions_total',
      help: 'Authorization decisions by deciding policy ("" when none) and its action',
      labelNames: ['listener', 'policy', 'action', 'decision'],
    });
    this.requestDuration = metrics.histogram({
      name: 'proxy_request_duration_seconds',
      help: 'HTTP request latency through the proxy, from the request head to the end of the response',
      labelNames: ['listener', 'direction'],
    });
    this.bytes = metrics.counter({
      name: 'proxy_bytes_total',
      help: 'Payload bytes relayed; flow "received" is from the caller, "sent" is to the caller',
      labelNames: ['listener', 'direction', 'flow'],
    });
    this.policyReloads = metrics.counter({
      name: 'proxy_policy_reloads_total',
      help: 'Policy file reloads by result (ok, rejected)',
      labelNames: ['result'],
    });
    this.identityReloads = metrics.counter({
      name: 'proxy_identity_reloads_total',
      help: 'Identity (SVID, bundle) changes applied, by result',
      labelNames: ['result'],
    });
    this.upstreamErrors = metrics.counter({
      name: 'proxy_upstream_errors_total',
      help: 'Failures reaching the app or the upstream, by reason',
      labelNames: ['listener', 'direction', 'reason'],
    });
  }

  observeDuration(listener: string, direction: Direction, seconds: number): void {
    const key = `${listener}\0${direction}`;
    let child = this.#durationChildren.get(key);
    if (child === undefined) {
      child = this.requestDuration.labels({ listener, direction });
      this.#durationChildren.set(key, child);
    }
    child.observe(seconds);
  }

  addBytes(listener: string, direction: Direction, received: number, sent: number): void {
    const key = `${listener}\0${direction}`;
    let rx = this.#bytesChildren.get(`${key}\0r`);
    let tx = this.#bytesChildren.get(`${key}\0s`);
    if (rx === undefined || tx === undefined) {
      rx = this.bytes.labels({ listener, direction, flow: 'received' });
      tx = this.bytes.labels({ listener, direction, flow: 'sent' });
      this.#bytesChildren.set(`${key}\0r`, rx);
      this.#bytesChildren.set(`${key}\0s`, tx);
    }
    if (received > 0) rx.inc(received);
    if (sent > 0) tx.inc(sent);
  }

  countDecision(listener: string, policy: string, action: string, allowed: boolean): void {
    const key = `${listener}\0${policy}\0${action}\0${allowed}`;
    let child = this.#decisionChildren.get(key);
    if (child === undefined) {
      child = this.decisions.labels({ listener, policy, action, decision: allowed ? 'allow' : 'deny' });
      if (this.#decisionChildren.size < 10_000) this.#decisionChildren.set(key, child);
    }
    child.inc();
  }
}
