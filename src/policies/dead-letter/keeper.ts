// The dead letters of the running config as a whole: which routes keep them and in which
// store, their retention enforced in the background, and the depth and age that telemetry reads
// at scrape time. Kept across reloads; each reload tells it the routes of the new config.

import type { DeadLetterConfig } from '../../config/types.ts';
import type { Clock } from '../../runtime/clock.ts';
import { MAX_LOG_TRIM } from '../../stores/log.ts';
import type { LogStore } from '../../stores/store.ts';
import { DEAD_LETTER_STREAM } from './capture.ts';

/** A route that keeps dead letters, and the log of its store. */
export interface DeadLetterRoute {
  readonly route: string;
  readonly config: DeadLetterConfig;
  readonly log: LogStore;
}

/** A route's dead letters as gauges show them. */
export interface DeadLetterDepth {
  readonly route: string;
  readonly entries: number;
  /** Age of the oldest entry; 0 when there is none. */
  readonly oldestAgeSeconds: number;
}

export interface DeadLetterKeeperDeps {
  readonly clock: Clock;
  /** How often old dead letters are deleted. */
  readonly sweepIntervalMs?: number;
}

// Retention is counted in days: deleting a minute late costs nothing, and each sweep is a few
// store calls per route.
const DEFAULT_SWEEP_INTERVAL_MS = 60_000;
// One sweep deletes at most this many batches per route, so a huge backlog (a retention
// shortened by a reload) is worked off over several sweeps rather than in one long one.
const MAX_BATCHES_PER_SWEEP = 50;

export class DeadLetterKeeper {
  readonly #clock: Clock;
  readonly #intervalMs: number;
  #routes: readonly DeadLetterRoute[] = [];
  #cancelTimer: (() => void) | undefined;
  #sweeping: Promise<number> | undefined;

  constructor(deps: DeadLetterKeeperDeps) {
    this.#clock = deps.clock;
    this.#intervalMs = deps.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
  }

  /** The routes of the config now running; starts the background sweep when there are some. */
  retain(routes: readonly DeadLetterRoute[]): void {
    this.#routes = routes;
    if (routes.length > 0 && this.#cancelTimer === undefined) this.#schedule();
    if (routes.length === 0) this.#stop();
  }

  get routes(): readonly DeadLetterRoute[] {
    return this.#routes;
  }

  route(name: string): DeadLetterRoute | undefined {
    return this.#routes.find((candidate) => candidate.route === name);
  }

  /** The distinct logs the routes use, each with the routes that keep dead letters in it. */
  logs(): Map<LogStore, DeadLetterRoute[]> {
    const logs = new Map<LogStore, DeadLetterRoute[]>();
    for (const route of this.#routes) logs.set(route.log, [...(logs.get(route.log) ?? []), route]);
    return logs;
  }

  /**
   * Deletes every route's dead letters older than its retention; resolves with how many. A
   * store that fails is skipped until the next sweep (its failure is reported by the store).
   */
  sweep(): Promise<number> {
    this.#sweeping ??= this.#sweepNow().finally(() => {
      this.#sweeping = undefined;
    });
    return this.#sweeping;
  }

  /**
   * Each route's depth and the age of its oldest dead letter, read from the stores now. The
   * routes of a store that does not answer are left out rather than shown stale.
   */
  async depths(): Promise<DeadLetterDepth[]> {
    const now = this.#clock.wallNow();
    const depths: DeadLetterDepth[] = [];
    await Promise.all(
      [...this.logs()].map(async ([log, routes]) => {
        let stats;
        try {
          stats = await log.stats(DEAD_LETTER_STREAM);
        } catch {
          return;
        }
        for (const { route } of routes) {
          const partition = stats.find((candidate) => candidate.partition === route);
          const oldest = partition?.oldest;
          depths.push({ route, entries: partition?.entries ?? 0, oldestAgeSeconds: oldest === undefined ? 0 : Math.max(0, now - oldest) / 1000 });
        }
      }),
    );
    return depths.sort((a, b) => (a.route < b.route ? -1 : a.route > b.route ? 1 : 0));
  }

  close(): void {
    this.#stop();
  }

  async #sweepNow(): Promise<number> {
    let deleted = 0;
    for (const { route, config, log } of this.#routes) {
      const before = this.#clock.wallNow() - config.retentionMs;
      try {
        for (let batch = 0; batch < MAX_BATCHES_PER_SWEEP; batch++) {
          const trimmed = await log.trim(DEAD_LETTER_STREAM, route, { before });
          deleted += trimmed;
          if (trimmed < MAX_LOG_TRIM) break;
        }
      } catch {
        // The store reported the failure; the next sweep tries again.
      }
    }
    return deleted;
  }

  #schedule(): void {
    this.#cancelTimer = this.#clock.setTimer(this.#intervalMs, () => {
      void this.sweep().finally(() => {
        if (this.#cancelTimer !== undefined) this.#schedule();
      });
    });
  }

  #stop(): void {
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
  }
}
