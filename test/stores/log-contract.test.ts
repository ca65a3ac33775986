// The log facet's contract, on every kind of store (test/support/store-kinds.ts): entries are
// appended with an id the store gives, listed newest or oldest first page by page, read with
// their body, updated, removed, counted per partition, bounded per partition at append, and
// trimmed by age and count; and every handle on shared state sees the same log.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLogId } from '../../src/stores/log.ts';
import { StoreError } from '../../src/stores/store.ts';
import type { LogEntry, LogQuery, Store, StoreEvent } from '../../src/stores/store.ts';
import { waitFor } from '../support/redis-server.ts';
import { STALL_TIMEOUT_MS, kinds, type Harness } from '../support/store-kinds.ts';

describe.each(kinds)('the log of the $name store', (kind) => {
  let harness: Harness;
  let store: Store;
  const opened: Store[] = [];
  let streamSeq = 0;
  // Every test writes its own stream, so that no test depends on another's leftovers.
  const freshStream = (): string => `log-${++streamSeq}-${Math.random().toString(36).slice(2)}`;

  const open = (seen?: StoreEvent[], timeoutMs?: number): Store => {
    const handle = harness.open(seen, timeoutMs);
    opened.push(handle);
    return handle;
  };
  const openReady = async (seen?: StoreEvent[], timeoutMs?: number): Promise<Store> => {
    const handle = open(seen, timeoutMs);
    await waitFor('the store to answer', async () => (await handle.log.stats('warm-up')).length === 0);
    return handle;
  };

  /** Every entry a query matches, page after page. */
  async function listAll(on: Store, stream: string, query: Omit<LogQuery, 'limit' | 'after'>, limit = 2): Promise<LogEntry[]> {
    const all: LogEntry[] = [];
    let after: string | undefined;
    for (let page = 0; page < 100; page++) {
      const listed = await on.log.list(stream, { ...query, limit, ...(after === undefined ? {} : { after }) });
      all.push(...listed.entries);
      if (listed.next === undefined) return all;
      after = listed.next;
    }
    throw new Error('the listing never ended');
  }

  async function appendAll(stream: string, entries: { partition: string; reason?: string; n: number }[]): Promise<string[]> {
    const ids: string[] = [];
    for (const { partition, reason, n } of entries) {
      const result = await store.log.append(stream, { partition, tags: reason === undefined ? {} : { reason }, meta: { n } }, 1000);
      if (!result.appended) throw new Error('not appended');
      ids.push(result.id);
    }
    return ids;
  }

  beforeAll(async () => {
    harness = await kind.setUp();
    store = await openReady();
  });

  afterAll(async () => {
    await Promise.all(opened.map((handle) => handle.close()));
    await harness?.tearDown();
  });

  it('appends an entry with an id and a time of its own, and reads it back with its body', async () => {
    const stream = freshStream();
    // Every byte value, bytes that are not UTF-8, and enough of them to span many packets.
    const body = Buffer.alloc(256 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7 + (i >> 8)) & 0xff;

    const result = await store.log.append(stream, { partition: 'notify', tags: { reason: 'timeout' }, meta: { method: 'POST', headers: [['a', 'b']] }, body: new Uint8Array(body) }, 10);
    if (!result.appended) throw new Error('not appended');
    const entry = await store.log.get(stream, result.id);

    expect(isLogId(result.id)).toBe(true);
    expect(entry).toMatchObject({ id: result.id, time: result.time, partition: 'notify', tags: { reason: 'timeout' }, meta: { method: 'POST', headers: [['a', 'b']] } });
    expect(Buffer.isBuffer(entry?.body)).toBe(true);
    expect(entry?.body?.equals(body)).toBe(true);
    // An entry without a body has none; an unknown id finds nothing.
    const bare = await store.log.append(stream, { partition: 'notify', meta: {} }, 10);
    if (!bare.appended) throw new Error('not appended');
    expect((await store.log.get(stream, bare.id))?.body).toBeUndefined();
    expect((await store.log.get(stream, bare.id))?.tags).toEqual({});
    expect(await store.log.get(stream, '01ARZ3NDEKTSV4RRFFQ69G5FAV')).toBeUndefined();
    // Another log of the same store does not see it.
    expect(await store.log.get(freshStream(), result.id)).toBeUndefined();
  });

  it('lists newest first page by page, each entry once, without bodies', async () => {
    const stream = freshStream();
    const ids = await appendAll(stream, [1, 2, 3, 4, 5].map((n) => ({ partition: n % 2 === 0 ? 'even' : 'odd', n })));
    await store.log.append(stream, { partition: 'odd', meta: { n: 6 }, body: Buffer.from('body') }, 1000);

    const first = await store.log.list(stream, { limit: 2 });
    const all = await listAll(store, stream, {});

    expect(first.entries.map((entry) => entry.meta.n)).toEqual([6, 5]);
    expect(first.next).toBe(first.entries[1]!.id);
    expect(all.map((entry) => entry.meta.n)).toEqual([6, 5, 4, 3, 2, 1]);
    expect(all.slice(1).map((entry) => entry.id)).toEqual([...ids].reverse());
    expect(all.every((entry) => entry.body === undefined)).toBe(true);
    // Oldest first, the same entries the other way round; a page as large as the log has no next.
    expect((await listAll(store, stream, { order: 'oldest' }, 4)).map((entry) => entry.meta.n)).toEqual([1, 2, 3, 4, 5, 6]);
    expect((await store.log.list(stream, { limit: 6 })).next).toBeUndefined();
  });

  it('filters by partition, by tags and by time', async () => {
    const stream = freshStream();
    await appendAll(stream, [
      { partition: 'a', reason: 'timeout', n: 1 },
      { partition: 'b', reason: 'timeout', n: 2 },
      { partition: 'a', reason: '503', n: 3 },
    ]);
    await harness.wait(5);
    const later = await store.log.append(stream, { partition: 'a', tags: { reason: 'timeout' }, meta: { n: 4 } }, 1000);
    if (!later.appended) throw new Error('not appended');

    const ns = async (query: Omit<LogQuery, 'limit' | 'after'>, limit?: number): Promise<unknown[]> =>
      (await listAll(store, stream, query, limit)).map((entry) => entry.meta.n);

    expect(await ns({ partition: 'a' })).toEqual([4, 3, 1]);
    expect(await ns({ tags: { reason: 'timeout' } }, 1)).toEqual([4, 2, 1]);
    expect(await ns({ partition: 'a', tags: { reason: 'timeout' } })).toEqual([4, 1]);
    expect(await ns({ tags: { reason: 'nothing' } })).toEqual([]);
    expect(await ns({ since: later.time })).toEqual([4]);
    expect(await ns({ until: later.time - 1 })).toEqual([3, 2, 1]);
    expect(await ns({ since: later.time, order: 'oldest' })).toEqual([4]);
    expect(await ns({ partition: 'nowhere' })).toEqual([]);
  });

  it('refuses an append to a full partition, and has room again once one is removed', async () => {
    const stream = freshStream();
    const first = await store.log.append(stream, { partition: 'p', meta: { n: 1 } }, 2);
    await store.log.append(stream, { partition: 'p', meta: { n: 2 } }, 2);

    expect(await store.log.append(stream, { partition: 'p', meta: { n: 3 } }, 2)).toEqual({ appended: false, reason: 'full' });
    // Other partitions have their own bound.
    expect((await store.log.append(stream, { partition: 'q', meta: { n: 4 } }, 2)).appended).toBe(true);
    if (!first.appended) throw new Error('not appended');
    expect(await store.log.remove(stream, first.id)).toBe(true);
    expect((await store.log.append(stream, { partition: 'p', meta: { n: 5 } }, 2)).appended).toBe(true);
  });

  it('lets no more than maxEntries in when many append at once, across handles', async () => {
    const stream = freshStream();
    const replicas = harness.shared ? [store, await openReady(), await openReady()] : [store];

    const results = await Promise.all(Array.from({ length: 24 }, (_, i) => replicas[i % replicas.length]!.log.append(stream, { partition: 'p', meta: { i } }, 5)));

    expect(results.filter((result) => result.appended)).toHaveLength(5);
    expect(await store.log.stats(stream)).toEqual([{ partition: 'p', entries: 5, oldest: expect.any(Number) }]);
    // Ids are unique, and every handle lists the same entries.
    const ids = results.flatMap((result) => (result.appended ? [result.id] : []));
    expect(new Set(ids).size).toBe(5);
    for (const replica of replicas) {
      expect((await listAll(replica, stream, {})).map((entry) => entry.id).sort()).toEqual([...ids].sort());
    }
  });

  it('updates an entry\'s meta and keeps its body; removes it once', async () => {
    const stream = freshStream();
    const result = await store.log.append(stream, { partition: 'p', tags: { reason: 'timeout' }, meta: { replays: [] }, body: Buffer.from('payload') }, 10);
    if (!result.appended) throw new Error('not appended');

    expect(await store.log.update(stream, result.id, { replays: [{ result: 'failure' }] })).toBe(true);
    expect(await store.log.get(stream, result.id)).toMatchObject({ meta: { replays: [{ result: 'failure' }] }, tags: { reason: 'timeout' }, body: Buffer.from('payload') });
    expect((await store.log.list(stream, { limit: 10 })).entries[0]?.meta).toEqual({ replays: [{ result: 'failure' }] });

    expect(await store.log.remove(stream, result.id)).toBe(true);
    expect(await store.log.get(stream, result.id)).toBeUndefined();
    expect(await store.log.remove(stream, result.id)).toBe(false);
    expect(await store.log.update(stream, result.id, { late: true })).toBe(false);
    expect(await store.log.get(stream, result.id)).toBeUndefined();
    expect(await store.log.stats(stream)).toEqual([]);
  });

  it('counts each partition and gives the time of its oldest entry', async () => {
    const stream = freshStream();
    const a1 = await store.log.append(stream, { partition: 'a', meta: {} }, 10);
    await harness.wait(5);
    await store.log.append(stream, { partition: 'a', meta: {} }, 10);
    const b1 = await store.log.append(stream, { partition: 'b', meta: {} }, 10);
    if (!a1.appended || !b1.appended) throw new Error('not appended');

    expect(await store.log.stats(stream)).toEqual([
      { partition: 'a', entries: 2, oldest: a1.time },
      { partition: 'b', entries: 1, oldest: b1.time },
    ]);
    expect(await store.log.stats(freshStream())).toEqual([]);
  });

  it('trims a partition by age, by count, or whole, oldest first', async () => {
    const stream = freshStream();
    const old = await appendAll(stream, [1, 2].map((n) => ({ partition: 'p', n })));
    await harness.wait(5);
    const recent = await store.log.append(stream, { partition: 'p', meta: { n: 3 } }, 100);
    await appendAll(stream, [4, 5].map((n) => ({ partition: 'p', n })));
    await appendAll(stream, [6].map((n) => ({ partition: 'other', n })));
    if (!recent.appended) throw new Error('not appended');
    const ns = async (): Promise<unknown[]> => (await listAll(store, stream, { partition: 'p' }, 10)).map((entry) => entry.meta.n);

    // By age: what was appended before the recent entry.
    expect(await store.log.trim(stream, 'p', { before: recent.time })).toBe(2);
    expect(await store.log.get(stream, old[0]!)).toBeUndefined();
    expect(await ns()).toEqual([5, 4, 3]);
    // By count: the newest two stay.
    expect(await store.log.trim(stream, 'p', { keep: 2 })).toBe(1);
    expect(await ns()).toEqual([5, 4]);
    // Either bound may delete more: the union of both goes.
    expect(await store.log.trim(stream, 'p', { before: 0, keep: 1 })).toBe(1);
    expect(await ns()).toEqual([5]);
    // With neither, the whole partition; the other partitions stay.
    expect(await store.log.trim(stream, 'p', {})).toBe(1);
    expect(await ns()).toEqual([]);
    expect(await store.log.stats(stream)).toEqual([{ partition: 'other', entries: 1, oldest: expect.any(Number) }]);
    expect(await store.log.trim(stream, 'nowhere', {})).toBe(0);
  });

  it('refuses what no store accepts, with code invalid', async () => {
    const stream = freshStream();
    await expect(store.log.append('', { partition: 'p', meta: {} }, 1)).rejects.toMatchObject({ code: 'invalid', operation: 'append' });
    await expect(store.log.append(stream, { partition: '', meta: {} }, 1)).rejects.toMatchObject({ code: 'invalid' });
    await expect(store.log.append(stream, { partition: 'p', meta: {} }, 0)).rejects.toMatchObject({ code: 'invalid' });
    await expect(store.log.append(stream, { partition: 'p', tags: { 'no spaces': 'x' }, meta: {} }, 1)).rejects.toMatchObject({ code: 'invalid' });
    await expect(store.log.append(stream, { partition: 'p', meta: [] as never }, 1)).rejects.toMatchObject({ code: 'invalid' });
    await expect(store.log.list(stream, { limit: 0 })).rejects.toMatchObject({ code: 'invalid', operation: 'list' });
    await expect(store.log.list(stream, { limit: 10, after: 'not-an-id' })).rejects.toMatchObject({ code: 'invalid' });
    await expect(store.log.get(stream, '../etc')).rejects.toMatchObject({ code: 'invalid', operation: 'read' });
    await expect(store.log.trim(stream, 'p', { keep: -1 })).rejects.toMatchObject({ code: 'invalid', operation: 'trim' });
    expect(await store.log.stats(stream)).toEqual([]);
  });

  it('reports every log operation to the events', async () => {
    const stream = freshStream();
    const seen: StoreEvent[] = [];
    const observed = await openReady(seen);
    seen.length = 0;

    const result = await observed.log.append(stream, { partition: 'p', meta: {} }, 10);
    if (!result.appended) throw new Error('not appended');
    await observed.log.list(stream, { limit: 10 });
    await observed.log.get(stream, result.id);
    await observed.log.update(stream, result.id, { n: 1 });
    await observed.log.stats(stream);
    await observed.log.remove(stream, result.id);
    await observed.log.trim(stream, 'p', {});

    expect(seen.filter((event) => event.type === 'store-operation').map((event) => [event.operation, event.error?.code])).toEqual([
      ['append', undefined],
      ['list', undefined],
      ['read', undefined],
      ['update', undefined],
      ['stats', undefined],
      ['remove', undefined],
      ['trim', undefined],
    ]);
  });

  if (kind.name !== 'memory') {
    it('rejects an append with a timeout StoreError when the store cannot answer', async () => {
      const observed = await openReady(undefined, STALL_TIMEOUT_MS);
      const resume = await harness.stall!();
      let error: unknown;
      try {
        await observed.log.append(freshStream(), { partition: 'p', meta: {} }, 10);
      } catch (caught) {
        error = caught;
      } finally {
        await resume();
      }

      expect(error).toBeInstanceOf(StoreError);
      expect(error).toMatchObject({ code: 'timeout', operation: 'append' });
    });
  }

  it('refuses every log operation once closed', async () => {
    const handle = open();
    await handle.close();

    await expect(handle.log.append(freshStream(), { partition: 'p', meta: {} }, 10)).rejects.toMatchObject({ code: 'closed', operation: 'append' });
    await expect(handle.log.stats(freshStream())).rejects.toMatchObject({ code: 'closed', operation: 'stats' });
  });
});
