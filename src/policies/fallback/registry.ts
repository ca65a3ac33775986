import type { FallbackConfig } from '../../config/types.ts';
import { defaultStaleCacheLimits, StaleCache, type StaleCacheLimits } from './stale-cache.ts';

/** How long a route's entries are worth keeping: its longest staleCache maxAge, if it has one. */
function retentionMs(config: FallbackConfig): number | undefined {
  let longest: number | undefined;
  for (const step of config.chain) {
    if (step.kind === 'staleCache' && (longest === undefined || step.maxAgeMs > longest)) longest = step.maxAgeMs;
  }
  return longest;
}

/**
 * The stale caches of the running config, one per route, kept across reloads: the last good
 * answers are worth most when a reload happens during an outage. A route whose maxAge changes
 * starts with an empty cache.
 */
export class StaleCaches {
  readonly #limits: StaleCacheLimits;
  readonly #caches = new Map<string, StaleCache>();

  constructor(limits: StaleCacheLimits = defaultStaleCacheLimits) {
    this.#limits = limits;
  }

  /** The route's cache, or undefined when its fallback chain has no staleCache step. */
  get(route: string, config: FallbackConfig): StaleCache | undefined {
    const maxAgeMs = retentionMs(config);
    if (maxAgeMs === undefined) {
      this.#caches.delete(route);
      return undefined;
    }
    const existing = this.#caches.get(route);
    if (existing !== undefined && existing.maxAgeMs === maxAgeMs) return existing;
    const cache = new StaleCache(maxAgeMs, this.#limits);
    this.#caches.set(route, cache);
    return cache;
  }

  /** Forgets the caches of routes that are no longer configured. */
  retain(routes: Iterable<string>): void {
    const kept = new Set(routes);
    for (const route of this.#caches.keys()) {
      if (!kept.has(route)) this.#caches.delete(route);
    }
  }
}
