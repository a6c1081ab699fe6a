/**
 * A small Prometheus client: counters, gauges and histograms with labels, and a registry
 * that renders them in the text exposition format 0.0.4. It keeps the part of prom-client's
 * API that Steeple uses (`inc`/`dec`/`set`/`observe`/`startTimer`, `labels(…)`, `reset`,
 * `remove`, a `collect` hook run at scrape time, `registry.metrics()` and `contentType`)
 * without its dependencies. A series is found by one Map look-up per label value, and
 * labels are checked once, when a series is first made.
 * @module
 */

/** The `Content-Type` of {@link Registry.metrics}'s text. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** The metric types this registry renders (no summaries). */
export type MetricType = 'counter' | 'gauge' | 'histogram' | 'untyped';

/** One line of output: `metricName{labels} value`; `metricName` defaults to the family's name. */
export interface Sample {
  readonly labels?: Readonly<Record<string, string | number>>;
  readonly value: number;
  /** For histograms: the family name plus `_bucket`, `_sum` or `_count`. */
  readonly metricName?: string;
}

/** A metric family whose samples the registry asks for at every scrape. */
export interface Collector {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  collect(): readonly Sample[] | Promise<readonly Sample[]>;
}

/** Label values by label name; numbers are written as decimal strings. */
export type Labels<L extends string> = { readonly [K in L]: string | number };

/** Options shared by {@link Counter}, {@link Gauge} and {@link Histogram}. */
export interface MetricConfig<L extends string, M> {
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly L[];
  /** Runs at every scrape before the samples are read, e.g. to set a gauge computed from state. */
  readonly collect?: (metric: M) => void;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Throws a TypeError unless `name` is a valid Prometheus metric name. */
export function checkMetricName(name: string): void {
  if (typeof name !== 'string' || !METRIC_NAME.test(name)) {
    throw new TypeError(`invalid metric name ${JSON.stringify(name)}: must match [a-zA-Z_:][a-zA-Z0-9_:]*`);
  }
}

/** Throws a TypeError unless `label` is a valid label name that is not reserved (`__…`, `reserved`). */
export function checkLabelName(label: string, metric: string, reserved?: string): void {
  if (typeof label !== 'string' || !LABEL_NAME.test(label) || label.startsWith('__')) {
    throw new TypeError(
      `invalid label name ${JSON.stringify(label)} of metric ${metric}: must match [a-zA-Z_][a-zA-Z0-9_]* and not start with "__"`,
    );
  }
  if (label === reserved) throw new TypeError(`label name "${label}" is reserved in ${metric}`);
}

/** A number as the text format writes it: `NaN`, `+Inf`, `-Inf` or JavaScript's shortest decimal. */
export function formatValue(value: number): string {
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return Number.isNaN(value) ? 'NaN' : String(value);
}

const LABEL_ESCAPES = /[\\"\n]/;

/** A label value with backslash, double quote and line feed escaped. */
export function escapeLabelValue(value: string): string {
  if (!LABEL_ESCAPES.test(value)) return value;
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text with backslash and line feed escaped (quotes stay as they are). */
export function escapeHelp(help: string): string {
  return help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** What every series holds; `removed` tells bound children to look their series up again. */
interface Series {
  readonly labels: Readonly<Record<string, string>>;
  removed: boolean;
}

type Node = Map<string | undefined, unknown>;

/** Series storage and the label rules shared by the three metric kinds. */
abstract class Metric<L extends string, S extends Series> implements Collector {
  abstract readonly type: MetricType;
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  readonly #hook: ((metric: never) => void) | undefined;
  #root: Node = new Map();
  #all: S[] = [];
  #single: S | undefined;

  protected constructor(config: MetricConfig<L, never>, reservedLabel?: string) {
    checkMetricName(config.name);
    if (typeof config.help !== 'string' || config.help === '') {
      throw new TypeError(`metric ${config.name} needs a help text`);
    }
    const labelNames = [...(config.labelNames ?? [])];
    for (const l of labelNames) checkLabelName(l, config.name, reservedLabel);
    if (new Set(labelNames).size !== labelNames.length) {
      throw new TypeError(`metric ${config.name} lists a label name twice: ${labelNames.join(', ')}`);
    }
    if (config.collect !== undefined && typeof config.collect !== 'function') {
      throw new TypeError(`collect of metric ${config.name} must be a function`);
    }
    this.name = config.name;
    this.help = config.help;
    this.labelNames = Object.freeze(labelNames);
    this.#hook = config.collect;
  }

  protected abstract newSeries(labels: Readonly<Record<string, string>>): S;
  protected abstract samples(series: readonly S[]): Sample[];

  /** The series for these labels, made (at zero) the first time. */
  protected series(labels: Partial<Labels<L>> | undefined): S {
    const names = this.labelNames;
    const n = names.length;
    if (n === 0) {
      if (this.#single !== undefined && (labels === undefined || isEmpty(labels))) return this.#single;
      return this.#create(labels ?? {});
    }
    if (labels === undefined) return this.#create({});
    let node = this.#root;
    for (let i = 0; i < n - 1; i++) {
      const next = node.get(key((labels as Record<string, unknown>)[names[i] as string]));
      if (next === undefined) return this.#create(labels);
      node = next as Node;
    }
    const found = node.get(key((labels as Record<string, unknown>)[names[n - 1] as string])) as S | undefined;
    return found ?? this.#create(labels);
  }

  /** A getter for one series that survives `reset()` and `remove()` (it looks the series up again). */
  protected bind(args: readonly unknown[]): () => S {
    const labels = this.#labelsFrom(args);
    let s = this.series(labels);
    return () => {
      if (s.removed) s = this.series(labels);
      return s;
    };
  }

  /** Drops every series; a metric without labels starts again at zero. */
  reset(): void {
    for (const s of this.#all) s.removed = true;
    this.#root = new Map();
    this.#all = [];
    this.#single = undefined;
    if (this.labelNames.length === 0) this.#create({});
  }

  /** Drops the series with these label values (an object, or the values in label-name order). */
  remove(...args: [Partial<Labels<L>>] | (string | number)[]): void {
    const labels = this.#labelsFrom(args) as Record<string, unknown>;
    const names = this.labelNames;
    if (names.length === 0) {
      this.reset();
      return;
    }
    let node = this.#root;
    for (let i = 0; i < names.length - 1; i++) {
      const next = node.get(key(labels[names[i] as string]));
      if (next === undefined) return;
      node = next as Node;
    }
    const last = key(labels[names[names.length - 1] as string]);
    const s = node.get(last) as S | undefined;
    if (s === undefined) return;
    node.delete(last);
    s.removed = true;
    this.#all.splice(this.#all.indexOf(s), 1);
  }

  collect(): Sample[] {
    (this.#hook as ((metric: this) => void) | undefined)?.(this);
    return this.samples(this.#all);
  }

  #labelsFrom(args: readonly unknown[]): Partial<Labels<L>> {
    if (args.length === 1 && typeof args[0] === 'object' && args[0] !== null) return args[0] as Partial<Labels<L>>;
    if (args.length !== this.labelNames.length) {
      throw new TypeError(
        `metric ${this.name} has ${this.labelNames.length} labels (${this.labelNames.join(', ')}), got ${args.length} values`,
      );
    }
    const labels: Record<string, unknown> = {};
    this.labelNames.forEach((name, i) => {
      labels[name] = args[i];
    });
    return labels as Partial<Labels<L>>;
  }

  #create(given: Readonly<Record<string, unknown>>): S {
    for (const k of Object.keys(given)) {
      if (!(this.labelNames as readonly string[]).includes(k)) {
        throw new TypeError(
          `metric ${this.name} has no label "${k}" (its labels: ${this.labelNames.join(', ') || 'none'})`,
        );
      }
    }
    const labels: Record<string, string> = {};
    for (const name of this.labelNames) {
      const v = given[name];
      if (typeof v !== 'string' && typeof v !== 'number') {
        throw new TypeError(`metric ${this.name} needs a string value for label "${name}", got ${typeof v}`);
      }
      labels[name] = String(v);
    }
    Object.freeze(labels);
    const s = this.newSeries(labels);
    this.#all.push(s);
    const names = this.labelNames;
    if (names.length === 0) {
      this.#single = s;
      return s;
    }
    let node = this.#root;
    for (let i = 0; i < names.length - 1; i++) {
      const k = labels[names[i] as string];
      let next = node.get(k) as Node | undefined;
      if (next === undefined) {
        next = new Map();
        node.set(k, next);
      }
      node = next;
    }
    node.set(labels[names[names.length - 1] as string], s);
    return s;
  }
}

function key(v: unknown): string | undefined {
  return typeof v === 'string' ? v : v === undefined ? undefined : String(v);
}

function isEmpty(o: object): boolean {
  for (const _ in o) return false;
  return true;
}

interface ValueSeries extends Series {
  value: number;
}

function valueSamples(series: readonly ValueSeries[]): Sample[] {
  return series.map((s) => ({ labels: s.labels, value: s.value }));
}

/** A counter bound to one set of label values, from {@link Counter.labels}. */
export interface CounterChild {
  inc(value?: number): void;
}

/** A value that only goes up; `inc` of a negative or non-finite amount is a TypeError. */
export class Counter<L extends string = never> extends Metric<L, ValueSeries> {
  readonly type = 'counter';

  constructor(config: MetricConfig<L, Counter<L>>) {
    super(config as MetricConfig<L, never>);
    if (this.labelNames.length === 0) this.reset();
  }

  inc(value?: number): void;
  inc(labels: Labels<L>, value?: number): void;
  inc(labelsOrValue?: Labels<L> | number, value?: number): void {
    if (typeof labelsOrValue === 'object') {
      const v = value ?? 1;
      if (!(v >= 0 && v !== Number.POSITIVE_INFINITY)) this.#refuse(v);
      this.series(labelsOrValue).value += v;
    } else {
      const v = labelsOrValue ?? 1;
      if (!(v >= 0 && v !== Number.POSITIVE_INFINITY)) this.#refuse(v);
      this.series(undefined).value += v;
    }
  }

  /** The counter for one set of label values (an object, or the values in label-name order). */
  labels(...args: [Labels<L>] | (string | number)[]): CounterChild {
    const get = this.bind(args);
    return {
      inc: (v = 1) => {
        if (!(v >= 0 && v !== Number.POSITIVE_INFINITY)) this.#refuse(v);
        get().value += v;
      },
    };
  }

  #refuse(v: unknown): never {
    throw new TypeError(`counter ${this.name} can only go up by a finite amount ≥ 0, got ${String(v)}`);
  }

  protected newSeries(labels: Readonly<Record<string, string>>): ValueSeries {
    return { labels, value: 0, removed: false };
  }

  protected samples(series: readonly ValueSeries[]): Sample[] {
    return valueSamples(series);
  }
}

/** A gauge bound to one set of label values, from {@link Gauge.labels}. */
export interface GaugeChild {
  inc(value?: number): void;
  dec(value?: number): void;
  set(value: number): void;
}

/** A value that goes up and down. */
export class Gauge<L extends string = never> extends Metric<L, ValueSeries> {
  readonly type = 'gauge';

  constructor(config: MetricConfig<L, Gauge<L>>) {
    super(config as MetricConfig<L, never>);
    if (this.labelNames.length === 0) this.reset();
  }

  inc(value?: number): void;
  inc(labels: Labels<L>, value?: number): void;
  inc(labelsOrValue?: Labels<L> | number, value?: number): void {
    if (typeof labelsOrValue === 'object') this.series(labelsOrValue).value += this.#number(value ?? 1);
    else this.series(undefined).value += this.#number(labelsOrValue ?? 1);
  }

  dec(value?: number): void;
  dec(labels: Labels<L>, value?: number): void;
  dec(labelsOrValue?: Labels<L> | number, value?: number): void {
    if (typeof labelsOrValue === 'object') this.series(labelsOrValue).value -= this.#number(value ?? 1);
    else this.series(undefined).value -= this.#number(labelsOrValue ?? 1);
  }

  set(value: number): void;
  set(labels: Labels<L>, value: number): void;
  set(labelsOrValue: Labels<L> | number, value?: number): void {
    if (typeof labelsOrValue === 'object') this.series(labelsOrValue).value = this.#number(value);
    else this.series(undefined).value = this.#number(labelsOrValue);
  }

  /** The gauge for one set of label values (an object, or the values in label-name order). */
  labels(...args: [Labels<L>] | (string | number)[]): GaugeChild {
    const get = this.bind(args);
    return {
      inc: (v = 1) => {
        get().value += this.#number(v);
      },
      dec: (v = 1) => {
        get().value -= this.#number(v);
      },
      set: (v) => {
        get().value = this.#number(v);
      },
    };
  }

  #number(v: unknown): number {
    if (typeof v !== 'number') throw new TypeError(`gauge ${this.name} takes a number, got ${typeof v}`);
    return v;
  }

  protected newSeries(labels: Readonly<Record<string, string>>): ValueSeries {
    return { labels, value: 0, removed: false };
  }

  protected samples(series: readonly ValueSeries[]): Sample[] {
    return valueSamples(series);
  }
}

/** A histogram's options: bucket upper bounds, finite and strictly increasing (`+Inf` is implied). */
export interface HistogramConfig<L extends string> extends MetricConfig<L, Histogram<L>> {
  readonly buckets: readonly number[];
}

interface HistogramSeries extends Series {
  /** Observations per bucket, not cumulative; values above the last bound are only in `count`. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

/** Stops a timer from {@link Histogram.startTimer}: observes and returns the seconds elapsed. */
export type EndTimer<L extends string> = (labels?: Partial<Labels<L>>) => number;

/** A histogram bound to one set of label values, from {@link Histogram.labels}. */
export interface HistogramChild {
  observe(value: number): void;
  startTimer(): () => number;
}

/** Counts observations into cumulative buckets, with their sum and count. */
export class Histogram<L extends string = never> extends Metric<L, HistogramSeries> {
  readonly type = 'histogram';
  readonly buckets: readonly number[];
  readonly #le: readonly string[];

  constructor(config: HistogramConfig<L>) {
    super(config as MetricConfig<L, never>, 'le');
    const buckets = [...config.buckets];
    if (buckets[buckets.length - 1] === Number.POSITIVE_INFINITY) buckets.pop();
    buckets.forEach((b, i) => {
      if (typeof b !== 'number' || !Number.isFinite(b) || (i > 0 && b <= (buckets[i - 1] as number))) {
        throw new TypeError(`buckets of histogram ${config.name} must be finite and strictly increasing: ${buckets}`);
      }
    });
    this.buckets = Object.freeze(buckets);
    this.#le = buckets.map(formatValue);
    if (this.labelNames.length === 0) this.reset();
  }

  observe(value: number): void;
  observe(labels: Labels<L>, value: number): void;
  observe(labelsOrValue: Labels<L> | number, value?: number): void {
    if (typeof labelsOrValue === 'object') this.#observe(this.series(labelsOrValue), value);
    else this.#observe(this.series(undefined), labelsOrValue);
  }

  /** Starts a timer; calling what it returns observes the seconds since (labels merged with these). */
  startTimer(labels?: Partial<Labels<L>>): EndTimer<L> {
    const started = performance.now();
    return (end) => {
      const seconds = (performance.now() - started) / 1000;
      const merged = end === undefined ? labels : { ...labels, ...end };
      this.#observe(this.series(merged), seconds);
      return seconds;
    };
  }

  /** The histogram for one set of label values (an object, or the values in label-name order). */
  labels(...args: [Labels<L>] | (string | number)[]): HistogramChild {
    const get = this.bind(args);
    return {
      observe: (v) => this.#observe(get(), v),
      startTimer: () => {
        const started = performance.now();
        return () => {
          const seconds = (performance.now() - started) / 1000;
          this.#observe(get(), seconds);
          return seconds;
        };
      },
    };
  }

  #observe(s: HistogramSeries, v: unknown): void {
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new TypeError(`histogram ${this.name} observes finite numbers, got ${String(v)}`);
    }
    s.sum += v;
    s.count++;
    const bounds = this.buckets;
    for (let i = 0; i < bounds.length; i++) {
      if (v <= (bounds[i] as number)) {
        (s.counts[i] as number)++;
        return;
      }
    }
  }

  protected newSeries(labels: Readonly<Record<string, string>>): HistogramSeries {
    return { labels, counts: new Float64Array(this.buckets.length), sum: 0, count: 0, removed: false };
  }

  protected samples(series: readonly HistogramSeries[]): Sample[] {
    const out: Sample[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of series) {
      let cumulative = 0;
      for (let i = 0; i < this.#le.length; i++) {
        cumulative += s.counts[i] as number;
        out.push({ metricName: bucket, labels: { ...s.labels, le: this.#le[i] as string }, value: cumulative });
      }
      out.push({ metricName: bucket, labels: { ...s.labels, le: '+Inf' }, value: s.count });
      out.push({ metricName: `${this.name}_sum`, labels: s.labels, value: s.sum });
      out.push({ metricName: `${this.name}_count`, labels: s.labels, value: s.count });
    }
    return out;
  }
}

const SUFFIXES: Readonly<Record<MetricType, readonly string[]>> = {
  counter: [],
  gauge: [],
  untyped: [],
  histogram: ['_bucket', '_sum', '_count'],
};

/** Options of {@link Registry}. */
export interface RegistryOptions {
  /** Labels added to every sample that does not carry a label of the same name. */
  readonly defaultLabels?: Readonly<Record<string, string>>;
}

/**
 * Metric families by name, rendered in registration order as the Prometheus text format:
 * `# HELP`, `# TYPE`, then one line per sample; `le` is always the last label.
 * @example
 * const registry = new Registry({ defaultLabels: { trust_domain: 'example.org' } });
 * const calls = new Counter({ name: 'calls_total', help: 'Calls', labelNames: ['code'] });
 * registry.register(calls);
 * calls.inc({ code: 'ok' });
 * res.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics());
 */
export class Registry {
  readonly contentType = PROMETHEUS_CONTENT_TYPE;
  readonly #collectors = new Map<string, Collector>();
  readonly #defaults: readonly (readonly [string, string])[];
  readonly #checkedLabels = new Set<string>();

  constructor(options: RegistryOptions = {}) {
    const defaults = Object.entries(options.defaultLabels ?? {});
    for (const [name, value] of defaults) {
      checkLabelName(name, 'default labels', 'le');
      if (typeof value !== 'string') throw new TypeError(`default label "${name}" must be a string`);
    }
    this.#defaults = defaults.map(([name, value]) => [name, escapeLabelValue(value)] as const);
  }

  /** Adds a family; a second family of the same name, or an invalid name, is a TypeError. */
  register(collector: Collector): void {
    checkMetricName(collector.name);
    if (!(collector.type in SUFFIXES)) {
      throw new TypeError(`metric ${collector.name} has unknown type ${JSON.stringify(collector.type)}`);
    }
    if (this.#collectors.has(collector.name)) {
      throw new TypeError(`metric ${collector.name} is already registered`);
    }
    this.#collectors.set(collector.name, collector);
  }

  /** The family registered under this full name. */
  get(name: string): Collector | undefined {
    return this.#collectors.get(name);
  }

  /** The exposition text of every family (asks each for its samples now). */
  async metrics(): Promise<string> {
    const collectors = [...this.#collectors.values()];
    const collected = collectors.map((c) => c.collect());
    const samples = collected.some((s) => s instanceof Promise) ? await Promise.all(collected) : collected;
    let out = '';
    collectors.forEach((c, i) => {
      out += `# HELP ${c.name} ${escapeHelp(c.help)}\n# TYPE ${c.name} ${c.type}\n`;
      for (const s of samples[i] as readonly Sample[]) out += this.#line(c, s);
    });
    return out;
  }

  #line(c: Collector, s: Sample): string {
    const name = s.metricName ?? c.name;
    if (name !== c.name && !(SUFFIXES[c.type] as readonly string[]).some((x) => name === c.name + x)) {
      throw new TypeError(`sample ${name} does not belong to ${c.type} ${c.name}`);
    }
    let text = '';
    let le: string | undefined;
    const labels = s.labels ?? {};
    for (const k in labels) {
      const v = labels[k];
      if (v === undefined) continue;
      if (!this.#checkedLabels.has(k)) {
        checkLabelName(k, c.name);
        this.#checkedLabels.add(k);
      }
      const escaped = escapeLabelValue(typeof v === 'string' ? v : String(v));
      if (k === 'le') le = escaped;
      else text += `${text === '' ? '' : ','}${k}="${escaped}"`;
    }
    for (const [k, v] of this.#defaults) {
      if (labels[k] === undefined) text += `${text === '' ? '' : ','}${k}="${v}"`;
    }
    if (le !== undefined) text += `${text === '' ? '' : ','}le="${le}"`;
    return `${name}${text === '' ? '' : `{${text}}`} ${formatValue(s.value)}\n`;
  }
}
