// The state-store latency of a Breakwater run, from its /metrics: the buckets of
// breakwater_store_operation_duration_seconds read before and after the measured run, so that
// warm-up and earlier runs of the same process are left out.

const family = 'breakwater_store_operation_duration_seconds_bucket';

/** operation → upper bound in seconds → cumulative count. */
export type StoreBuckets = Map<string, Map<number, number>>;

/** Parses the store histogram's buckets out of a Prometheus text exposition. */
export function parseStoreBuckets(text: string): StoreBuckets {
  const buckets: StoreBuckets = new Map();
  for (const line of text.split('\n')) {
    if (!line.startsWith(family)) continue;
    const operation = /operation="([^"]*)"/.exec(line)?.[1];
    const le = /le="([^"]*)"/.exec(line)?.[1];
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (operation === undefined || le === undefined || !Number.isFinite(value)) continue;
    const bound = le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le);
    let counts = buckets.get(operation);
    if (counts === undefined) buckets.set(operation, (counts = new Map()));
    counts.set(bound, (counts.get(bound) ?? 0) + value);
  }
  return buckets;
}

/**
 * Each operation's 99th percentile in ms over what happened between `before` and `after`: the
 * upper bound of the first bucket that holds 99% of the operations (Prometheus' buckets give no
 * finer answer), or undefined for an operation that did not run.
 */
export function storeP99Ms(before: StoreBuckets, after: StoreBuckets): Record<string, number> {
  const result: Record<string, number> = {};
  for (const [operation, counts] of after) {
    const earlier = before.get(operation);
    const bounds = [...counts.keys()].sort((a, b) => a - b);
    const delta = bounds.map((bound) => (counts.get(bound) ?? 0) - (earlier?.get(bound) ?? 0));
    const total = delta.at(-1) ?? 0;
    if (total <= 0) continue;
    const index = delta.findIndex((count) => count >= 0.99 * total);
    const bound = bounds[index]!;
    result[operation] = Number.isFinite(bound) ? bound * 1000 : Number.POSITIVE_INFINITY;
  }
  return result;
}
