// One contract, every kind of store: the same script runs against memory, sqlite, and Redis as
// one server, as a three-master cluster and through a sentinel. A kind that runs on the
// injected clock gets a fake one, so TTLs pass in one step; Redis keeps its own time, so its
// records get short real TTLs and the tests wait for them to lapse. The kinds and their set-up
// live in test/support/store-kinds.ts, shared with the log contract (log-contract.test.ts).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreError } from '../../src/stores/store.ts';
import type { Store, StoreEvent } from '../../src/stores/store.ts';
import { waitFor } from '../support/redis-server.ts';
import { STALL_TIMEOUT_MS, kinds, type Harness } from '../support/store-kinds.ts';

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
