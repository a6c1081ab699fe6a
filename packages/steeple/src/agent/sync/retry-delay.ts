/**
 * Delays between attempts to reach the server: doubling from `initialMs` to `maxMs`, each
 * shortened by up to a fifth at random, so the agents of a cluster do not all reconnect in
 * the same instant after a server restart.
 * @module
 */

/** The delay before attempt number `failures + 1` (`failures` ≥ 1), in ms. */
export function retryDelayMs(
  failures: number,
  options: { readonly initialMs?: number; readonly maxMs?: number; readonly random?: () => number } = {},
): number {
  const initial = options.initialMs ?? 500;
  const max = options.maxMs ?? 10_000;
  const random = options.random ?? Math.random;
  const base = Math.min(max, initial * 2 ** Math.max(0, Math.min(failures - 1, 30)));
  return Math.round(base * (1 - 0.2 * random()));
}
