/**
 * Prometheus metrics. Each server, agent or proxy owns one {@link Metrics} with its own
 * {@link Registry} (there is no global one), so tests can run several in one process, and
 * every metric name gets the `steeple_` prefix. The registry and metric kinds are our own
 * (./metrics/registry.ts, ./metrics/process-metrics.ts): prom-client and its dependencies
 * (@opentelemetry/api, tdigest, bintrees) cost every daemon memory it did not need.
 * @module
 */
import { registerProcessMetrics } from './metrics/process-metrics.js';
import { type Collector, Counter, Gauge, Histogram, Registry } from './metrics/registry.js';

export {
  type Collector,
  Counter,
  type CounterChild,
  type EndTimer,
  Gauge,
  type GaugeChild,
  Histogram,
  type HistogramChild,
  type Labels,
  type MetricType,
  PROMETHEUS_CONTENT_TYPE,
  Registry,
  type Sample,
} from './metrics/registry.js';

/** Name, help text and label names of a metric; `name` is given without the prefix. */
export interface MetricOptions<L extends string, M = unknown> {
  /** Without the prefix: `svids_signed_total` becomes `steeple_svids_signed_total`. */
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly L[];
  /** Runs at every scrape before the metric is read (e.g. to set a gauge computed from state). */
  readonly collect?: (metric: M) => void;
}

/** A histogram's options; `buckets` default to {@link LATENCY_BUCKETS_SECONDS}. */
export interface HistogramOptions<L extends string> extends MetricOptions<L, Histogram<L>> {
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
   * (so two modules may both declare it; the first `collect` stays); a different kind or
   * labels under that name is a TypeError.
   */
  counter<L extends string = never>(options: MetricOptions<L, Counter<L>>): Counter<L>;
  /** A gauge in this registry; same sharing rule as {@link Metrics.counter}. */
  gauge<L extends string = never>(options: MetricOptions<L, Gauge<L>>): Gauge<L>;
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
  /**
   * With process metrics, also observe GC pauses (`nodejs_gc_duration_seconds`). Default true.
   * While any `gc` observer exists, Node 20 builds a PerformanceEntry with deprecated accessors
   * for every collection (about 10 µs each, measured, whatever the observer reads).
   */
  readonly collectGcMetrics?: boolean;
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
  if (prefix !== '' && !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) {
    throw new TypeError(`invalid metric prefix ${JSON.stringify(prefix)}: must match [a-zA-Z_:][a-zA-Z0-9_:]*`);
  }
  const registry = new Registry(options.defaultLabels === undefined ? {} : { defaultLabels: options.defaultLabels });
  if (options.collectProcessMetrics === true) {
    registerProcessMetrics(registry, prefix, { gc: options.collectGcMetrics !== false });
  }

  const make = <M extends Collector & { readonly labelNames: readonly string[] }>(
    kind: abstract new (...args: never[]) => object,
    name: string,
    labels: readonly string[],
    create: (full: string) => M,
  ): M => {
    const full = prefix + name;
    const found = registry.get(full);
    if (found === undefined) {
      const metric = create(full);
      registry.register(metric);
      return metric;
    }
    if (!(found instanceof kind) || (found as M).labelNames.join(',') !== labels.join(',')) {
      throw new TypeError(`metric ${full} is already registered as a different kind or with other labels`);
    }
    return found as M;
  };

  return {
    registry,
    prefix,
    counter<L extends string = never>({ name, help, labelNames = [], collect }: MetricOptions<L, Counter<L>>) {
      return make<Counter<L>>(
        Counter,
        name,
        labelNames,
        (full) => new Counter<L>({ name: full, help, labelNames, ...(collect && { collect }) }),
      );
    },
    gauge<L extends string = never>({ name, help, labelNames = [], collect }: MetricOptions<L, Gauge<L>>) {
      return make<Gauge<L>>(
        Gauge,
        name,
        labelNames,
        (full) => new Gauge<L>({ name: full, help, labelNames, ...(collect && { collect }) }),
      );
    },
    histogram<L extends string = never>({ name, help, labelNames = [], buckets, collect }: HistogramOptions<L>) {
      return make<Histogram<L>>(
        Histogram,
        name,
        labelNames,
        (full) =>
          new Histogram<L>({
            name: full,
            help,
            labelNames,
            buckets: buckets ?? LATENCY_BUCKETS_SECONDS,
            ...(collect && { collect }),
          }),
      );
    },
    render: () => registry.metrics(),
  };
}
