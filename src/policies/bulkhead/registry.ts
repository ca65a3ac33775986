import type { BulkheadConfig } from '../../config/types.ts';
import { Bulkhead, type BulkheadSnapshot } from './limiter.ts';

export interface UpstreamBulkheadSnapshot extends BulkheadSnapshot {
  readonly upstream: string;
}

// The queue timeout is the layer's, not the limiter's: changing it alone keeps the slots.
function sameLimits(a: BulkheadConfig, b: BulkheadConfig): boolean {
  return a.maxConcurrent === b.maxConcurrent && a.maxQueued === b.maxQueued;
}

/**
 * The bulkheads of the running config, one per upstream, kept across reloads: every route to
 * an upstream shares its bulkhead, and a reload that leaves an upstream's bulkhead unchanged
 * keeps its slots and queue. A changed limit starts a fresh bulkhead; requests holding a slot in the
 * old one finish and give it back there.
 */
export class Bulkheads {
  readonly #entries = new Map<string, { readonly config: BulkheadConfig; readonly bulkhead: Bulkhead }>();

  get(upstream: string, config: BulkheadConfig): Bulkhead {
    const existing = this.#entries.get(upstream);
    if (existing !== undefined && sameLimits(existing.config, config)) return existing.bulkhead;
    const bulkhead = new Bulkhead(config);
    this.#entries.set(upstream, { config, bulkhead });
    return bulkhead;
  }

  /** Forgets the bulkheads of upstreams that are no longer configured with one. */
  retain(upstreams: Iterable<string>): void {
    const kept = new Set(upstreams);
    for (const upstream of this.#entries.keys()) {
      if (!kept.has(upstream)) this.#entries.delete(upstream);
    }
  }

  /** Every bulkhead's occupancy, for the in-flight and queued gauges. */
  snapshot(): UpstreamBulkheadSnapshot[] {
    return [...this.#entries].map(([upstream, entry]) => ({ upstream, ...entry.bulkhead.snapshot() }));
  }
}
