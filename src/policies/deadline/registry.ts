import type { LatencyPercentileConfig, RouteConfig } from '../../config/types.ts';

interface AdaptiveTimeout {
  readonly route: string;
  readonly config: LatencyPercentileConfig;
  readonly window: LatencyWindow;
}
import { LatencyWindow, percentileBound } from './latency.ts';

function keyOf(route: string, windowMs: number): string {
  return `${route}:${windowMs}`;
}

/**
 * The latency windows of the running config's routes, kept across reloads while a route's
 * window length is unchanged, so a reload does not throw away what the route has learnt.
 */
export class LatencyWindows {
  readonly #windows = new Map<string, LatencyWindow>();
  #adaptive: AdaptiveTimeout[] = [];

  get(route: string, windowMs: number): LatencyWindow {
    const key = keyOf(route, windowMs);
    let window = this.#windows.get(key);
    if (window === undefined) {
      window = new LatencyWindow(windowMs);
      this.#windows.set(key, window);
    }
    return window;
  }

  /** The windows `routes` read (adaptive per-try timeouts and hedge delays); the others are forgotten. */
  retainFor(routes: readonly RouteConfig[]): void {
    const kept = new Set<string>();
    const adaptive: AdaptiveTimeout[] = [];
    for (const route of routes) {
      const perTry = route.retry?.adaptivePerTryTimeout;
      if (perTry !== undefined) {
        kept.add(keyOf(route.name, perTry.windowMs));
        adaptive.push({ route: route.name, config: perTry, window: this.get(route.name, perTry.windowMs) });
      }
      const delay = route.hedge?.adaptiveDelay;
      if (delay !== undefined) kept.add(keyOf(route.name, delay.windowMs));
    }
    for (const key of this.#windows.keys()) if (!kept.has(key)) this.#windows.delete(key);
    this.#adaptive = adaptive;
  }

  /** Each route's adaptive per-try timeout as it stands at `now`, in ms. */
  adaptiveTimeouts(now: number): { readonly route: string; readonly timeoutMs: number }[] {
    return this.#adaptive.map(({ route, config, window }) => ({ route, timeoutMs: percentileBound(config, window, now) }));
  }
}
