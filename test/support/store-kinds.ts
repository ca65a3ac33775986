// The kinds of store every store contract suite runs against: memory, sqlite, and Redis as one
// server, as a three-master cluster and through a sentinel. A kind that runs on the injected
// clock gets a fake one, so time passes in one step; Redis keeps its own time, so its tests
// wait for real time to pass.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { expect } from 'vitest';
import type { RedisTopology, StoreConfig } from '../../src/config/types.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { openStore } from '../../src/stores/open.ts';
import type { Store, StoreEvent, StoreKind } from '../../src/stores/store.ts';
import { FakeClock } from './fake-clock.ts';
import { startRedisCluster, startRedisSentinel, startRedisServer, waitFor } from './redis-server.ts';

// The stores' own default: what the timeout test holds a store to.
export const STALL_TIMEOUT_MS = 50;
// Every other test checks what a store answers, not how fast: a timeout far above any answer
// on a busy machine keeps them from failing on load.
export const TIMEOUT_MS = 2000;

/** What the suite needs to know about one kind of store. */
export interface Harness {
  readonly kind: StoreKind;
  /** A new store handle: on the same state as the others (a new connection, the same file), except for memory. */
  open(events?: StoreEvent[], timeoutMs?: number): Store;
  /** Whether handles share state, as replicas sharing a Redis or a file do; memory is per handle. */
  readonly shared: boolean;
  /** A TTL long enough to read the record back at once, short enough to wait out. */
  readonly shortTtlMs: number;
  /** Lets `ttlMs` pass, until `lapsed()` holds. */
  elapse(ttlMs: number, lapsed: () => Promise<boolean>): Promise<void>;
  /** Lets at least `ms` of wall-clock time pass, as the store sees it. */
  wait(ms: number): Promise<void>;
  /**
   * Makes the store unable to answer writes until the returned function is called. Absent for
   * memory, which answers in the same call.
   */
  stall?(): Promise<() => Promise<void>>;
  tearDown(): Promise<void>;
}

export interface Kind {
  readonly name: string;
  setUp(): Promise<Harness>;
}

function fakeClockHarness(kind: StoreKind, config: (timeoutMs: number) => StoreConfig, extra: Partial<Harness> = {}): Harness {
  const clock = new FakeClock();
  return {
    kind,
    open: (events, timeoutMs = TIMEOUT_MS) => openStore(config(timeoutMs), { clock, events: { emit: (event) => events?.push(event) } }),
    shared: kind !== 'memory',
    shortTtlMs: 1000,
    async elapse(ttlMs, lapsed) {
      // A record is live up to its expiry instant included (as in Redis), and gone right after.
      clock.advance(ttlMs);
      expect(await lapsed()).toBe(false);
      clock.advance(1);
      expect(await lapsed()).toBe(true);
    },
    async wait(ms) {
      clock.advance(ms);
    },
    async tearDown() {},
    ...extra,
  };
}

function redisHarness(topology: RedisTopology, pause: () => Promise<() => Promise<void>>, stop: () => Promise<void>): Harness {
  // Each harness gets its own prefix, so that kinds sharing a server never see each other's keys.
  const keyPrefix = `contract-${topology.mode}:`;
  return {
    kind: 'redis',
    open: (events, timeoutMs = TIMEOUT_MS) =>
      openStore(
        { name: `redis-${topology.mode}`, type: 'redis', timeoutMs, topology, keyPrefix },
        { clock: systemClock, events: { emit: (event) => events?.push(event) } },
      ),
    shared: true,
    shortTtlMs: 300,
    async elapse(_ttlMs, lapsed) {
      await waitFor('the record to expire', lapsed);
    },
    async wait(ms) {
      const until = Date.now() + ms;
      await waitFor(`${ms}ms to pass`, () => Date.now() >= until);
    },
    stall: pause,
    tearDown: stop,
  };
}

/**
 * CLIENT PAUSE WRITE holds every client's writes (scripts included) on those servers, as a
 * server stuck in a long command would; reads and the UNPAUSE that ends it still run.
 */
function pauseServers(cli: ((...args: string[]) => Promise<string>)[]): () => Promise<() => Promise<void>> {
  return async () => {
    await Promise.all(cli.map((run) => run('CLIENT', 'PAUSE', '10000', 'WRITE')));
    return async () => {
      await Promise.all(cli.map((run) => run('CLIENT', 'UNPAUSE')));
    };
  };
}

export const kinds: Kind[] = [
  {
    name: 'memory',
    setUp: async () =>
      fakeClockHarness('memory', (timeoutMs) => ({ name: 'memory', type: 'memory', timeoutMs, maxEntries: 1000, maxBytes: 8 * 1024 * 1024 })),
  },
  {
    name: 'sqlite',
    async setUp() {
      const dir = await mkdtemp(join(tmpdir(), 'breakwater-sqlite-'));
      const path = join(dir, 'nested', 'state.db');
      return fakeClockHarness('sqlite', (timeoutMs) => ({ name: 'sqlite', type: 'sqlite', timeoutMs, path }), {
        async stall() {
          // Another connection holding the write lock: writers wait SQLite's busy timeout.
          const holder = new DatabaseSync(path);
          holder.exec('BEGIN IMMEDIATE');
          return async () => {
            holder.exec('ROLLBACK');
            holder.close();
          };
        },
        async tearDown() {
          await rm(dir, { recursive: true, force: true });
        },
      });
    },
  },
  {
    name: 'redis server',
    async setUp() {
      const server = await startRedisServer();
      return redisHarness({ mode: 'server', url: server.url }, pauseServers([server.cli]), () => server.stop());
    },
  },
  {
    name: 'redis cluster',
    async setUp() {
      const cluster = await startRedisCluster();
      return redisHarness({ mode: 'cluster', nodes: cluster.urls }, pauseServers(cluster.nodes.map((node) => node.cli)), () => cluster.stop());
    },
  },
  {
    name: 'redis sentinel',
    async setUp() {
      const set = await startRedisSentinel();
      return redisHarness(
        { mode: 'sentinel', masterName: set.masterName, nodes: [set.sentinelUrl] },
        pauseServers([set.master.cli]),
        () => set.stop(),
      );
    },
  },
];
