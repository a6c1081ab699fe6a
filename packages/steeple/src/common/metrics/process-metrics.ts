/**
 * Process and Node.js metrics under prom-client's names (so dashboards built for it keep
 * working): CPU, memory, file descriptors, event-loop delay, active handles, heap spaces,
 * the Node.js version and GC durations. Everything but the GC histogram and the event-loop
 * delay monitor is read when scraped: /proc/self/{status,fd,limits} on Linux, Node's own
 * counters elsewhere (a value that cannot be read is left out, never an error).
 * @module
 */
import { readdirSync, readFileSync } from 'node:fs';
import { constants, monitorEventLoopDelay, type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';
import { type Collector, Histogram, type MetricType, type Registry, type Sample } from './registry.js';

/** prom-client's GC buckets, in seconds. */
const GC_BUCKETS_SECONDS = [0.001, 0.01, 0.1, 1, 2, 5];

/** prom-client's event-loop delay resolution, in milliseconds. */
const EVENT_LOOP_RESOLUTION_MS = 10;

/** Options of {@link registerProcessMetrics}. */
export interface ProcessMetricsOptions {
  /**
   * Observe GC pauses for `nodejs_gc_duration_seconds` (default true). Any `gc` observer makes
   * Node build a PerformanceEntry per collection; turn it off where that matters.
   */
  readonly gc?: boolean;
}

/**
 * Registers the process metrics in `registry`, each name prefixed with `prefix`.
 * @example
 * registerProcessMetrics(registry, 'steeple_');   // steeple_process_cpu_seconds_total, …
 */
export function registerProcessMetrics(registry: Registry, prefix: string, options: ProcessMetricsOptions = {}): void {
  const linux = process.platform === 'linux';
  const family = (name: string, help: string, type: MetricType, collect: () => Sample[]): void =>
    registry.register({ name: prefix + name, help, type, collect });
  const one = (value: number | undefined): Sample[] => (value === undefined || Number.isNaN(value) ? [] : [{ value }]);

  const cpu = oncePerScrape(() => process.cpuUsage());
  family('process_cpu_user_seconds_total', 'Total user CPU time spent in seconds.', 'counter', () =>
    one(cpu().user / 1e6),
  );
  family('process_cpu_system_seconds_total', 'Total system CPU time spent in seconds.', 'counter', () =>
    one(cpu().system / 1e6),
  );
  family('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.', 'counter', () =>
    one((cpu().user + cpu().system) / 1e6),
  );
  const startTime = Math.round(Date.now() / 1000 - process.uptime());
  family('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.', 'gauge', () =>
    one(startTime),
  );

  if (linux) {
    const status = oncePerScrape(readProcStatus);
    family('process_resident_memory_bytes', 'Resident memory size in bytes.', 'gauge', () => one(status().VmRSS));
    family('process_virtual_memory_bytes', 'Virtual memory size in bytes.', 'gauge', () => one(status().VmSize));
    family('process_heap_bytes', 'Process heap size in bytes.', 'gauge', () => one(status().VmData));
    family('process_open_fds', 'Number of open file descriptors.', 'gauge', () => one(openFds()));
    family('process_max_fds', 'Maximum number of open file descriptors.', 'gauge', () => one(maxFds()));
  } else {
    family('process_resident_memory_bytes', 'Resident memory size in bytes.', 'gauge', () =>
      one(attempt(() => process.memoryUsage.rss())),
    );
  }

  registerEventLoopDelay(registry, prefix);

  const byType = (items: readonly unknown[]): Sample[] => {
    const counts = new Map<string, number>();
    for (const item of items) {
      const type = typeof item === 'string' ? item : (item as object | null)?.constructor?.name;
      if (type !== undefined) counts.set(type, (counts.get(type) ?? 0) + 1);
    }
    return [...counts].map(([type, value]) => ({ labels: { type }, value }));
  };
  const internals = process as unknown as { _getActiveHandles?: () => unknown[]; _getActiveRequests?: () => unknown[] };
  if (typeof process.getActiveResourcesInfo === 'function') {
    const resources = oncePerScrape(() => process.getActiveResourcesInfo());
    family(
      'nodejs_active_resources',
      'Number of active resources that are currently keeping the event loop alive, grouped by async resource type.',
      'gauge',
      () => byType(resources()),
    );
    family('nodejs_active_resources_total', 'Total number of active resources.', 'gauge', () =>
      one(resources().length),
    );
  }
  const activeHandles = internals._getActiveHandles;
  if (typeof activeHandles === 'function') {
    const handles = oncePerScrape(() => activeHandles.call(process));
    family(
      'nodejs_active_handles',
      'Number of active libuv handles grouped by handle type. Every handle type is C++ class name.',
      'gauge',
      () => byType(handles()),
    );
    family('nodejs_active_handles_total', 'Total number of active handles.', 'gauge', () => one(handles().length));
  }
  const activeRequests = internals._getActiveRequests;
  if (typeof activeRequests === 'function') {
    const requests = oncePerScrape(() => activeRequests.call(process));
    family(
      'nodejs_active_requests',
      'Number of active libuv requests grouped by request type. Every request type is C++ class name.',
      'gauge',
      () => byType(requests()),
    );
    family('nodejs_active_requests_total', 'Total number of active requests.', 'gauge', () => one(requests().length));
  }

  const memory = oncePerScrape(() => attempt(() => process.memoryUsage()));
  family('nodejs_heap_size_total_bytes', 'Process heap size from Node.js in bytes.', 'gauge', () =>
    one(memory()?.heapTotal),
  );
  family('nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.', 'gauge', () =>
    one(memory()?.heapUsed),
  );
  family('nodejs_external_memory_bytes', 'Node.js external memory size in bytes.', 'gauge', () =>
    one(memory()?.external),
  );

  const spaces = oncePerScrape(() => attempt(getHeapSpaceStatistics) ?? []);
  const spaceName = (s: { space_name: string }) => s.space_name.slice(0, s.space_name.indexOf('_space'));
  for (const [kind, field] of [
    ['total', 'space_size'],
    ['used', 'space_used_size'],
    ['available', 'space_available_size'],
  ] as const) {
    family(
      `nodejs_heap_space_size_${kind}_bytes`,
      `Process heap space size ${kind} from Node.js in bytes.`,
      'gauge',
      () => spaces().map((s) => ({ labels: { space: spaceName(s) }, value: s[field] })),
    );
  }

  const [major, minor, patch] = process.version.slice(1).split('.');
  const version = [{ labels: { version: process.version, major, minor, patch } as Record<string, string>, value: 1 }];
  family('nodejs_version_info', 'Node.js version info.', 'gauge', () => version);

  if (options.gc !== false) registerGcHistogram(registry, prefix);
}

/** The seven gauges of perf_hooks.monitorEventLoopDelay (reset at each scrape) and the lag seen now. */
function registerEventLoopDelay(registry: Registry, prefix: string): void {
  const lagNow: Collector = {
    name: `${prefix}nodejs_eventloop_lag_seconds`,
    help: 'Lag of event loop in seconds.',
    type: 'gauge',
    // How long a callback queued now waits for its turn.
    collect: () => {
      const started = performance.now();
      return new Promise((resolve) => setImmediate(() => resolve([{ value: (performance.now() - started) / 1000 }])));
    },
  };
  registry.register(lagNow);

  let histogram: ReturnType<typeof monitorEventLoopDelay> | undefined;
  try {
    histogram = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
    histogram.enable();
  } catch {
    return;
  }
  const monitor = histogram;
  const snapshot = oncePerScrape(() => {
    const empty = monitor.count === 0;
    const s = {
      min: empty ? 0 : monitor.min,
      max: empty ? 0 : monitor.max,
      mean: empty ? 0 : monitor.mean,
      stddev: empty ? 0 : monitor.stddev,
      p50: empty ? 0 : monitor.percentile(50),
      p90: empty ? 0 : monitor.percentile(90),
      p99: empty ? 0 : monitor.percentile(99),
    };
    monitor.reset();
    return s;
  });
  const gauges = [
    ['min', 'The minimum recorded event loop delay.'],
    ['max', 'The maximum recorded event loop delay.'],
    ['mean', 'The mean of the recorded event loop delays.'],
    ['stddev', 'The standard deviation of the recorded event loop delays.'],
    ['p50', 'The 50th percentile of the recorded event loop delays.'],
    ['p90', 'The 90th percentile of the recorded event loop delays.'],
    ['p99', 'The 99th percentile of the recorded event loop delays.'],
  ] as const;
  for (const [field, help] of gauges) {
    registry.register({
      name: `${prefix}nodejs_eventloop_lag_${field}_seconds`,
      help,
      type: 'gauge',
      collect: () => [{ value: snapshot()[field] / 1e9 }],
    });
  }
}

/**
 * `nodejs_gc_duration_seconds{kind}`: one PerformanceObserver; per entry it reads
 * `entry.detail.kind` (never the deprecated `entry.kind`) and bumps one bucket of a series
 * looked up in an array.
 */
function registerGcHistogram(registry: Registry, prefix: string): void {
  const gc = new Histogram<'kind'>({
    name: `${prefix}nodejs_gc_duration_seconds`,
    help: 'Garbage collection duration by kind, one of major, minor, incremental or weakcb.',
    labelNames: ['kind'],
    buckets: GC_BUCKETS_SECONDS,
  });
  registry.register(gc);
  const byKind: { observe(seconds: number): void }[] = [];
  byKind[constants.NODE_PERFORMANCE_GC_MAJOR] = gc.labels('major');
  byKind[constants.NODE_PERFORMANCE_GC_MINOR] = gc.labels('minor');
  byKind[constants.NODE_PERFORMANCE_GC_INCREMENTAL] = gc.labels('incremental');
  byKind[constants.NODE_PERFORMANCE_GC_WEAKCB] = gc.labels('weakcb');
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      byKind[(entry as GcEntry).detail.kind]?.observe(entry.duration / 1000);
    }
  });
  observer.observe({ type: 'gc' });
}

/** A `gc` PerformanceEntry: its kind is in `detail` (`entry.kind` is a deprecated accessor). */
type GcEntry = PerformanceEntry & { readonly detail: { readonly kind: number } };

/**
 * `read` at most once per scrape: the registry asks every family in one synchronous pass,
 * so the value is dropped in the microtask after it.
 */
function oncePerScrape<T>(read: () => T): () => T {
  let cached: { value: T } | undefined;
  return () => {
    if (cached === undefined) {
      cached = { value: read() };
      queueMicrotask(() => {
        cached = undefined;
      });
    }
    return cached.value;
  };
}

function attempt<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined;
  }
}

/** VmRSS, VmSize and VmData of /proc/self/status, in bytes; empty when unreadable. */
function readProcStatus(): { VmRSS?: number; VmSize?: number; VmData?: number } {
  const text = attempt(() => readFileSync('/proc/self/status', 'utf8'));
  const out: Record<string, number> = {};
  if (text === undefined) return out;
  for (const m of text.matchAll(/^(VmRSS|VmSize|VmData):\s*(\d+) kB$/gm)) {
    out[m[1] as string] = Number(m[2]) * 1024;
  }
  return out;
}

/** Entries of /proc/self/fd, less the one the listing itself opened. */
function openFds(): number | undefined {
  const fds = attempt(() => readdirSync('/proc/self/fd'));
  return fds === undefined ? undefined : fds.length - 1;
}

/** The soft "Max open files" limit of /proc/self/limits. */
function maxFds(): number | undefined {
  const text = attempt(() => readFileSync('/proc/self/limits', 'utf8'));
  const m = text?.match(/^Max open files\s+(\d+)/m);
  return m === null || m === undefined ? undefined : Number(m[1]);
}
