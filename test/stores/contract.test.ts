// One contract, every kind of store: the same script runs against memory, sqlite, and Redis as
// one server, as a three-master cluster and through a sentinel. A kind that runs on the
// injected clock gets a fake one, so TTLs pass in one step; Redis keeps its own time, so its
// records get short real TTLs and the tests wait for them to lapse.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisTopology, StoreConfig } from '../../src/config/types.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { openStore } from '../../src/stores/open.ts';
import { StoreError } from '../../src/stores/store.ts';
import type { Store, StoreEvent, StoreKind } from '../../src/stores/store.ts';
import { FakeClock } from '../support/fake-clock.ts';
import { startRedisCluster, startRedisSentinel, startRedisServer, waitFor } from '../support/redis-server.ts';

// The stores' own default: what the timeout test holds a store to.
const STALL_TIMEOUT_MS = 50;
// Every other test checks what a store answers, not how fast: a timeout far above any answer
// on a busy machine keeps them from failing on load.
const TIMEOUT_MS = 2000;

/** What the suite needs to know about one kind of store. */
interface Harness {
  readonly kind: StoreKind;
  /** A new store handle: on the same state as the others (a new connection, the same file), except for memory. */
  open(events?: StoreEvent[], timeoutMs?: number): Store;
  /** Whether handles share state, as replicas sharing a Redis or a file do; memory is per handle. */
  readonly shared: boolean;
  /** A TTL long enough to read the record back at once, short enough to wait out. */
  readonly shortTtlMs: number;
  /** Lets `ttlMs` pass, until `lapsed()` holds. */
  elapse(ttlMs: number, lapsed: () => Promise<boolean>): Promise<void>;
  /**
   * Makes the store unable to answer writes until the returned function is called. Absent for
   * memory, which answers in the same call.
   */
  stall?(): Promise<() => Promise<void>>;
  tearDown(): Promise<void>;
}

interface Kind {
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

const kinds: Kind[] = [
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

const meta = (state: string) => ({ state, fingerprint: 'f'.repeat(64), headers: { 'content-type': 'application/json' } });

describe.each(kinds)('the $name store', (kind) => {
  let harness: Harness;
  let store: Store;
  let events: StoreEvent[];
  const opened: Store[] = [];
  let keySeq = 0;
  // Every test takes its own keys, so that no test depends on another's leftovers.
  const freshKey = (): string => `route-a:key-${++keySeq}-${Math.random().toString(36).slice(2)}`;

  const open = (seen?: StoreEvent[], timeoutMs?: number): Store => {
    const handle = harness.open(seen, timeoutMs);
    opened.push(handle);
    return handle;
  };
  // Redis stores connect in the background; a handle is ready once it answers.
  const openReady = async (seen?: StoreEvent[], timeoutMs?: number): Promise<Store> => {
    const handle = open(seen, timeoutMs);
    await waitFor('the store to answer', async () => (await handle.records.get('warm-up')) === undefined);
    return handle;
  };

  beforeAll(async () => {
    harness = await kind.setUp();
    events = [];
    store = await openReady(events);
  });

  afterAll(async () => {
    await Promise.all(opened.map((handle) => handle.close()));
    await harness?.tearDown();
  });

  it('takes a free key, and gives the holder\'s record to later takers', async () => {
    const key = freshKey();

    const first = await store.records.take(key, { meta: meta('in-progress') }, 60_000);
    const second = await store.records.take(key, { meta: meta('other') }, 60_000);

    expect(first).toEqual({ taken: true, token: expect.any(String) });
    expect(second).toEqual({ taken: false, current: { meta: meta('in-progress') } });
    expect(await store.records.get(key)).toEqual({ meta: meta('in-progress') });
  });

  it('lets only the taker replace and release, by its token', async () => {
    const key = freshKey();
    const first = await store.records.take(key, { meta: meta('in-progress') }, 60_000);
    if (!first.taken) throw new Error('not taken');

    // A stranger's token changes nothing.
    expect(await store.records.replace(key, 'not-the-token', { meta: meta('forged') }, 60_000)).toBe(false);
    expect(await store.records.release(key, 'not-the-token')).toBe(false);
    expect(await store.records.get(key)).toEqual({ meta: meta('in-progress') });

    // The taker finishes the record, and may finish it again: the token stays its own.
    expect(await store.records.replace(key, first.token, { meta: meta('done'), body: Buffer.from('one') }, 60_000)).toBe(true);
    expect(await store.records.replace(key, first.token, { meta: meta('done') }, 60_000)).toBe(true);
    // A replace without a body drops the earlier one.
    expect(await store.records.get(key)).toEqual({ meta: meta('done') });

    // Released, the key is free, and the old token owns nothing any more.
    expect(await store.records.release(key, first.token)).toBe(true);
    expect(await store.records.get(key)).toBeUndefined();
    expect(await store.records.release(key, first.token)).toBe(false);
    expect(await store.records.replace(key, first.token, { meta: meta('late') }, 60_000)).toBe(false);
    expect(await store.records.get(key)).toBeUndefined();

    const again = await store.records.take(key, { meta: meta('retry') }, 60_000);
    expect(again.taken).toBe(true);
  });

  it('counts an expired record as absent, and its old token as owning nothing', async () => {
    const key = freshKey();
    const first = await store.records.take(key, { meta: meta('in-progress') }, harness.shortTtlMs);
    if (!first.taken) throw new Error('not taken');
    expect(await store.records.get(key)).toEqual({ meta: meta('in-progress') });

    await harness.elapse(harness.shortTtlMs, async () => (await store.records.get(key)) === undefined);

    expect(await store.records.replace(key, first.token, { meta: meta('done') }, 60_000)).toBe(false);
    expect(await store.records.release(key, first.token)).toBe(false);
    const second = await store.records.take(key, { meta: meta('second') }, 60_000);
    expect(second.taken).toBe(true);
    expect(await store.records.get(key)).toEqual({ meta: meta('second') });
  });

  it('gives a replaced record the new TTL', async () => {
    const key = freshKey();
    const first = await store.records.take(key, { meta: meta('in-progress') }, 60_000);
    if (!first.taken) throw new Error('not taken');

    await store.records.replace(key, first.token, { meta: meta('done') }, harness.shortTtlMs);

    await harness.elapse(harness.shortTtlMs, async () => (await store.records.get(key)) === undefined);
  });

  it('lets exactly one of many concurrent takers win a key, across handles', async () => {
    const key = freshKey();
    // Replicas each have their own handle on the shared state; a memory store has one handle.
    const replicas = harness.shared ? [store, await openReady(), await openReady()] : [store];

    const results = await Promise.all(
      Array.from({ length: 24 }, (_, i) => replicas[i % replicas.length]!.records.take(key, { meta: { taker: i } }, 60_000)),
    );

    const winners = results.flatMap((result, i) => (result.taken ? [i] : []));
    expect(winners).toHaveLength(1);
    for (const result of results) {
      if (!result.taken) expect(result.current).toEqual({ meta: { taker: winners[0]! } });
    }
  });

  it('keeps body bytes exactly, empty ones included', async () => {
    const key = freshKey();
    // Every byte value, bytes that are not UTF-8, and enough of them to span many packets.
    const body = Buffer.alloc(256 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7 + (i >> 8)) & 0xff;
    const first = await store.records.take(key, { meta: meta('in-progress') }, 60_000);
    if (!first.taken) throw new Error('not taken');

    await store.records.replace(key, first.token, { meta: { status: 200 }, body: new Uint8Array(body) }, 60_000);
    const stored = await store.records.get(key);

    expect(stored?.meta).toEqual({ status: 200 });
    expect(Buffer.isBuffer(stored?.body)).toBe(true);
    expect(stored?.body?.equals(body)).toBe(true);

    const emptyKey = freshKey();
    await store.records.take(emptyKey, { meta: { status: 204 }, body: Buffer.alloc(0) }, 60_000);
    expect((await store.records.get(emptyKey))?.body?.length).toBe(0);
  });

  it('refuses what no store accepts, with code invalid', async () => {
    await expect(store.records.take('', { meta: {} }, 1000)).rejects.toMatchObject({ code: 'invalid', operation: 'take' });
    await expect(store.records.take(freshKey(), { meta: {} }, 0)).rejects.toMatchObject({ code: 'invalid' });
    await expect(store.records.take(freshKey(), { meta: {} }, 1.5)).rejects.toMatchObject({ code: 'invalid' });
    await expect(store.records.take('k'.repeat(2000), { meta: {} }, 1000)).rejects.toMatchObject({ code: 'invalid' });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await expect(store.records.take(freshKey(), { meta: cyclic as never }, 1000)).rejects.toMatchObject({ code: 'invalid' });
    await expect(store.records.get('')).rejects.toBeInstanceOf(StoreError);
  });

  it('reports every operation to the events, with its duration', async () => {
    const key = freshKey();
    const seen: StoreEvent[] = [];
    const observed = await openReady(seen);
    seen.length = 0;

    const taken = await observed.records.take(key, { meta: {} }, 60_000);
    await observed.records.get(key);
    if (taken.taken) await observed.records.release(key, taken.token);
    await observed.records.take('', { meta: {} }, 1000).catch(() => undefined);

    const operations = seen.filter((event) => event.type === 'store-operation');
    expect(operations.map((event) => [event.operation, event.error?.code])).toEqual([
      ['take', undefined],
      ['get', undefined],
      ['release', undefined],
      ['take', 'invalid'],
    ]);
    for (const event of operations) {
      expect(event).toMatchObject({ store: observed.name, kind: harness.kind });
      expect(event.durationMs).toBeGreaterThanOrEqual(0);
    }
    expect(observed.health()).toEqual({
      name: observed.name,
      kind: harness.kind,
      reachable: true,
      lastError: { code: 'invalid', message: expect.any(String), at: expect.any(Number) },
    });
  });

  // Memory answers within the call that asks, so there is nothing that could keep it from answering.
  if (kind.name !== 'memory') {
    it('rejects with a timeout StoreError, within its timeout, when the store cannot answer', async () => {
      const key = freshKey();
      const seen: StoreEvent[] = [];
      const observed = await openReady(seen, STALL_TIMEOUT_MS);
      const resume = await harness.stall!();
      let error: unknown;
      const started = performance.now();
      try {
        await observed.records.take(key, { meta: meta('in-progress') }, 60_000);
      } catch (caught) {
        error = caught;
      } finally {
        // A generous bound: the point is that the call returns, not how fast the machine is.
        expect(performance.now() - started).toBeLessThan(STALL_TIMEOUT_MS + 1000);
        await resume();
      }

      expect(error).toBeInstanceOf(StoreError);
      expect(error).toMatchObject({ code: 'timeout', operation: 'take', store: observed.name });
      expect(observed.health()).toMatchObject({ reachable: false, lastError: { code: 'timeout' } });
      expect(seen).toContainEqual(expect.objectContaining({ type: 'store-reachability', reachable: false }));

      // A take the server ran after its caller gave up is given back, so the key is not stuck.
      await waitFor('the key to be free', async () => (await observed.records.get(key)) === undefined);
      const retried = await observed.records.take(key, { meta: meta('retry') }, 60_000);
      expect(retried.taken).toBe(true);
      expect(observed.health().reachable).toBe(true);
    });
  }

  it('refuses every operation once closed, and closes twice quietly', async () => {
    const handle = open();
    await handle.close();
    await handle.close();

    await expect(handle.records.get('k')).rejects.toMatchObject({ code: 'closed', operation: 'get' });
    await expect(handle.records.take('k', { meta: {} }, 1000)).rejects.toMatchObject({ code: 'closed', operation: 'take' });
    // Other handles on the same state are not affected.
    expect(await store.records.get(freshKey())).toBeUndefined();
  });
});
