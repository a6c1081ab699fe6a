/**
 * Prometheus metrics. Each server, agent or proxy owns one {@link Metrics} with its own
 * prom-client `Registry` (never the global default one), so tests can run several in one
 * process, and every metric name gets the `steeple_` prefix.
 * @module
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** Name, help text and label names of a metric; `name` is given without the prefix. */
export interface MetricOptions<L extends string> {
  /** Without the prefix: `svids_signed_total` becomes `steeple_svids_signed_total`. */
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly L[];
}

/** A histogram's options; `buckets` default to {@link LATENCY_BUCKETS_SECONDS}. */
export interface HistogramOptions<L extends string> extends MetricOptions<L> {
  readonly buckets?: readonly number[];
}

/** Buckets for latencies in seconds, from 100 µs (one signature) to 5 s (a slow datastore). */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
]);

/** One component's metrics: its registry and factories for metrics registered in it. */
export interface Metrics {
  readonly registry: Registry;
  /** Prepended to every metric name; default `steeple_`. */
  readonly prefix: string;
  /**
   * A counter in this registry. Asking twice for the same name returns the same counter
   * (so two modules may both declare it); a different kind or labels under that name is a TypeError.
   */
  counter<L extends string = never>(options: MetricOptions<L>): Counter<L>;
  /** A gauge in this registry; same sharing rule as {@link Metrics.counter}. */
  gauge<L extends string = never>(options: MetricOptions<L>): Gauge<L>;
  /** A histogram in this registry; same sharing rule as {@link Metrics.counter}. */
  histogram<L extends string = never>(options: HistogramOptions<L>): Histogram<L>;
  /** The exposition text for a `/metrics` response (content type: `registry.contentType`). */
  render(): Promise<string>;
}

/** Options of {@link createMetrics}. */
export interface CreateMetricsOptions {
  /** Default `steeple_`. */
  readonly prefix?: string;
  /** Labels added to every series, e.g. `{ trust_domain: 'example.org' }`. */
  readonly defaultLabels?: Readonly<Record<string, string>>;
  /** Also export process metrics (CPU, memory, event-loop lag, GC). Default false; servers turn it on. */
  readonly collectProcessMetrics?: boolean;
}

/**
 * Creates a registry of its own and the factories that fill it.
 * @example
 * const metrics = createMetrics({ collectProcessMetrics: true });
 * const signed = metrics.counter({ name: 'svids_signed_total', help: 'SVIDs signed', labelNames: ['type'] });
 * signed.inc({ type: 'x509' });
 */
export function createMetrics(options: CreateMetricsOptions = {}): Metrics {
  const prefix = options.prefix ?? 'steeple_';
  const registry = new Registry();
  if (options.defaultLabels !== undefined) registry.setDefaultLabels({ ...options.defaultLabels });
  if (options.collectProcessMetrics === true) collectDefaultMetrics({ register: registry, prefix });

  const existing = <M>(kind: abstract new (...args: never[]) => M, name: string, labels: readonly string[]) => {
    const found = registry.getSingleMetric(name);
    if (found === undefined) return undefined;
    const foundLabels = (found as unknown as { labelNames?: readonly string[] }).labelNames ?? [];
    if (!(found instanceof kind) || foundLabels.join(',') !== labels.join(',')) {
      throw new TypeError(`metric ${name} is already registered as a different kind or with other labels`);
    }
    return found;
  };

  return {
    registry,
    prefix,
    counter<L extends string = never>({ name, help, labelNames = [] }: MetricOptions<L>) {
      const full = prefix + name;
      return (
        existing<Counter<L>>(Counter, full, labelNames) ??
        new Counter<L>({ name: full, help, labelNames, registers: [registry] })
      );
    },
    gauge<L extends string = never>({ name, help, labelNames = [] }: MetricOptions<L>) {
      const full = prefix + name;
      return (
        existing<Gauge<L>>(Gauge, full, labelNames) ??
        new Gauge<L>({ name: full, help, labelNames, registers: [registry] })
      );
    },
    histogram<L extends string = never>({ name, help, labelNames = [], buckets }: HistogramOptions<L>) {
      const full = prefix + name;
      return (
        existing<Histogram<L>>(Histogram, full, labelNames) ??
        new Histogram<L>({
          name: full,
          help,
          labelNames,
          buckets: [...(buckets ?? LATENCY_BUCKETS_SECONDS)],
          registers: [registry],
        })
      );
    },
    render: () => registry.metrics(),
  };
}
