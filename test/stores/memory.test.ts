// What only the memory store does: stay within its entry and byte bounds by dropping the least
// recently used records, and refuse a record larger than itself. Also the store a config
// without a stores block gets.

import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import type { MemoryStoreConfig } from '../../src/config/types.ts';
import { openStore, openStores } from '../../src/stores/open.ts';
import { FakeClock } from '../support/fake-clock.ts';

const config = (bounds: Pick<MemoryStoreConfig, 'maxEntries' | 'maxBytes'>): MemoryStoreConfig => ({
  name: 'scratch',
  type: 'memory',
  timeoutMs: 50,
  ...bounds,
});

describe('the memory store', () => {
  it('drops the least recently used record beyond maxEntries', async () => {
    const store = openStore(config({ maxEntries: 3, maxBytes: 1024 * 1024 }), { clock: new FakeClock() });
    for (const key of ['a', 'b', 'c']) await store.records.take(key, { meta: {} }, 60_000);
    // Reading `a` makes `b` the least recently used.
    await store.records.get('a');

    await store.records.take('d', { meta: {} }, 60_000);

    expect(await store.records.get('b')).toBeUndefined();
    for (const key of ['a', 'c', 'd']) expect(await store.records.get(key)).toEqual({ meta: {} });
    await store.close();
  });

  it('drops the least recently used records beyond maxBytes, bodies counted', async () => {
    const store = openStore(config({ maxEntries: 100, maxBytes: 10_000 }), { clock: new FakeClock() });
    const body = Buffer.alloc(3000, 1);
    for (const key of ['a', 'b', 'c']) await store.records.take(key, { meta: {}, body }, 60_000);

    await store.records.take('d', { meta: {}, body }, 60_000);

    expect(await store.records.get('a')).toBeUndefined();
    for (const key of ['b', 'c', 'd']) expect((await store.records.get(key))?.body?.length).toBe(3000);
    await store.close();
  });

  it('refuses a record larger than the whole store, with code too_large', async () => {
    const store = openStore(config({ maxEntries: 100, maxBytes: 1000 }), { clock: new FakeClock() });

    await expect(store.records.take('big', { meta: {}, body: Buffer.alloc(2000) }, 60_000)).rejects.toMatchObject({
      code: 'too_large',
      operation: 'take',
    });
    expect(await store.records.get('big')).toBeUndefined();

    // Finishing a record with more than the store holds leaves the key free, as a release would.
    const taken = await store.records.take('k', { meta: { state: 'in-progress' } }, 60_000);
    if (!taken.taken) throw new Error('not taken');
    await expect(store.records.replace('k', taken.token, { meta: {}, body: Buffer.alloc(2000) }, 60_000)).rejects.toMatchObject({
      code: 'too_large',
      operation: 'replace',
    });
    expect(await store.records.get('k')).toBeUndefined();
    await store.close();
  });
});

describe('the memory store\'s logs', () => {
  it('refuse appends beyond the store\'s bounds with code too_large, and never evict', async () => {
    const store = openStore(config({ maxEntries: 2, maxBytes: 5000 }), { clock: new FakeClock() });
    const first = await store.log.append('s', { partition: 'p', meta: {} }, 100);
    await store.log.append('s', { partition: 'q', meta: {} }, 100);

    await expect(store.log.append('s', { partition: 'p', meta: {} }, 100)).rejects.toMatchObject({ code: 'too_large', operation: 'append' });
    if (!first.appended) throw new Error('not appended');
    expect(await store.log.get('s', first.id)).toBeDefined();
    // Bytes count too: a removal makes room for entries, not for a body larger than the rest.
    await store.log.remove('s', first.id);
    await expect(store.log.append('s', { partition: 'p', meta: {}, body: Buffer.alloc(6000) }, 100)).rejects.toMatchObject({ code: 'too_large' });
    expect((await store.log.append('s', { partition: 'p', meta: {}, body: Buffer.alloc(1000) }, 100)).appended).toBe(true);
    await store.close();
  });
});

describe('a config without a stores block', () => {
  it('opens one memory store named default, reachable', async () => {
    const parsed = parseConfig('upstreams: {}\n', 'test.yaml');
    if (!parsed.ok) throw new Error('the config should be valid');
    const stores = await openStores(parsed.config.stores, { clock: new FakeClock() });

    expect(stores.health()).toEqual([{ name: 'default', kind: 'memory', reachable: true }]);
    expect((await stores.get('default').records.take('k', { meta: {} }, 1000)).taken).toBe(true);
    expect(() => stores.get('shared')).toThrow('no store named "shared"');
    await stores.close();
    await expect(stores.get('default').records.get('k')).rejects.toMatchObject({ code: 'closed' });
  });
});
