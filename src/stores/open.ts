// Opens the stores of the config's `stores` block, each kind behind the one Store interface.

import type { Config, StoreConfig } from '../config/types.ts';
import type { Clock } from '../runtime/clock.ts';
import { GuardedStore, StoreStatus } from './guard.ts';
import type { RecordBackend } from './guard.ts';
import { memoryBackend } from './memory.ts';
import { sqliteBackend } from './sqlite.ts';
import type { Store, StoreEvents, StoreHealth } from './store.ts';

export interface StoreDeps {
  readonly clock: Clock;
  readonly events?: StoreEvents;
  /** How often a sqlite store deletes expired rows. */
  readonly sweepIntervalMs?: number;
}

// Expired rows cost disk, not correctness (every read checks expiry), so a sweep a minute is plenty.
const DEFAULT_SWEEP_INTERVAL_MS = 60_000;

export interface Stores {
  /** The store of that name; config validation makes sure policies name only stores that exist. */
  get(name: string): Store;
  health(): StoreHealth[];
  close(): Promise<void>;
}

/**
 * Opens every configured store. Memory and sqlite stores are ready when this resolves; a Redis
 * store connects in the background (and reconnects on its own), so a Redis that is down at
 * start does not stop the proxy. Throws a StoreError when a sqlite file cannot be used, after
 * closing the stores it had opened.
 */
export async function openStores(config: Config['stores'], deps: StoreDeps): Promise<Stores> {
  const opened = new Map<string, Store>();
  try {
    for (const [name, store] of config) opened.set(name, openStore(store, deps));
  } catch (error) {
    await Promise.allSettled([...opened.values()].map((store) => store.close()));
    throw error;
  }
  return {
    get(name) {
      const store = opened.get(name);
      if (store === undefined) throw new Error(`no store named "${name}"`);
      return store;
    },
    health: () => [...opened.values()].map((store) => store.health()),
    close: async () => {
      await Promise.allSettled([...opened.values()].map((store) => store.close()));
    },
  };
}

/** A backend whose module is still loading: each step waits for it, and the first ones fail as an unreachable store would. */
function deferredBackend(loading: Promise<RecordBackend>): RecordBackend {
  let loaded: RecordBackend | undefined;
  void loading.then((backend) => (loaded = backend), () => undefined);
  return {
    take: async (key, record, ttlMs) => (await loading).take(key, record, ttlMs),
    replace: async (key, record, ttlMs) => (await loading).replace(key, record, ttlMs),
    release: async (key, token) => (await loading).release(key, token),
    get: async (key) => (await loading).get(key),
    log: {
      append: async (stream, entry, maxEntries) => (await loading).log.append(stream, entry, maxEntries),
      list: async (stream, range) => (await loading).log.list(stream, range),
      get: async (stream, id) => (await loading).log.get(stream, id),
      update: async (stream, id, meta) => (await loading).log.update(stream, id, meta),
      remove: async (stream, id) => (await loading).log.remove(stream, id),
      stats: async (stream) => (await loading).log.stats(stream),
      trim: async (stream, partition, bounds, max) => (await loading).log.trim(stream, partition, bounds, max),
    },
    classify: (error) => loaded?.classify(error) ?? 'unavailable',
    close: async () => (await loading).close(),
  };
}

/** Opens one store of any kind. */
export function openStore(config: StoreConfig, deps: StoreDeps): Store {
  const { clock, events } = deps;
  const status = new StoreStatus({
    name: config.name,
    kind: config.type,
    clock,
    ...(events === undefined ? {} : { events }),
    // A Redis store has not been reached until its first connection is up.
    reachable: config.type !== 'redis',
  });
  return new GuardedStore({
    name: config.name,
    kind: config.type,
    timeoutMs: config.timeoutMs,
    clock,
    ...(events === undefined ? {} : { events }),
    status,
    backend: backendOf(config, deps, status),
  });
}

function backendOf(config: StoreConfig, deps: StoreDeps, status: StoreStatus): RecordBackend {
  switch (config.type) {
    case 'memory':
      return memoryBackend(config, deps.clock);
    case 'sqlite':
      return sqliteBackend(config, deps.clock, deps.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS);
    case 'redis':
      // The Redis client is loaded only by a config that has a Redis store.
      return deferredBackend(import('./redis.ts').then(({ redisBackend }) => redisBackend(config, deps.clock, status)));
  }
}
