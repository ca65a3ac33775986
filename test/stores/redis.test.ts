// What only the redis store does: lose its server and get it back, start before its server,
// keep its keys under a prefix and in one cluster slot per record, survive a script cache
// flush, and log in with credentials taken from the environment.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { formatProblem, parseConfig } from '../../src/config/load.ts';
import type { RedisStoreConfig } from '../../src/config/types.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { openStore, openStores } from '../../src/stores/open.ts';
import { recordKey } from '../../src/stores/redis-scripts.ts';
import { StoreError } from '../../src/stores/store.ts';
import type { Store, StoreEvent } from '../../src/stores/store.ts';
import { freePort, startRedisCluster, startRedisServer, waitFor } from '../support/redis-server.ts';
import type { RedisCluster, RedisServer } from '../support/redis-server.ts';

// Far above any answer on a busy machine: these tests check what the store does, and that a
// call returns rather than hangs, not how fast the machine is.
const TIMEOUT_MS = 1000;
const RETURNS_WITHIN_MS = TIMEOUT_MS + 1000;

const config = (url: string, extra: Partial<RedisStoreConfig> = {}): RedisStoreConfig => ({
  name: 'shared',
  type: 'redis',
  timeoutMs: TIMEOUT_MS,
  topology: { mode: 'server', url },
  keyPrefix: 'bw:',
  ...extra,
});

const answers = async (store: Store): Promise<boolean> => (await store.records.get('probe')) === undefined;

/** Runs `call` and returns its StoreError and how long it took to reject. */
async function failure(call: () => Promise<unknown>): Promise<{ error: StoreError; ms: number }> {
  const started = performance.now();
  try {
    await call();
  } catch (error) {
    if (!(error instanceof StoreError)) throw error;
    return { error, ms: performance.now() - started };
  }
  throw new Error('the call succeeded');
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('a redis store whose server goes away', () => {
  it('fails fast while the server is down, and serves again once it is back, on the same store', async () => {
    const server = await startRedisServer();
    cleanups.push(() => server.stop());
    const events: StoreEvent[] = [];
    const store = openStore(config(server.url), { clock: systemClock, events: { emit: (event) => events.push(event) } });
    cleanups.push(() => store.close());
    await waitFor('the store to connect', () => answers(store));
    const taken = await store.records.take('charge:k1', { meta: { state: 'in-progress' } }, 60_000);
    expect(taken.taken).toBe(true);

    // The server dies.
    await server.kill();

    // Every operation rejects with a StoreError at once: nothing is queued for a server that
    // is not there, so none of them even waits for its timeout.
    for (const call of [
      () => store.records.get('charge:k1'),
      () => store.records.take('charge:k2', { meta: {} }, 60_000),
      () => store.records.release('charge:k1', 'token'),
    ]) {
      const { error, ms } = await failure(call);
      expect(error.code).toBe('unavailable');
      expect(ms).toBeLessThan(TIMEOUT_MS);
    }
    expect(store.health()).toMatchObject({ kind: 'redis', reachable: false, lastError: { code: expect.any(String) } });
    expect(events).toContainEqual(expect.objectContaining({ type: 'store-reachability', reachable: false }));

    // The server comes back on the same port (empty: it kept nothing on disk).
    await server.start();

    // The same store reconnects by itself.
    await waitFor('the store to reconnect', () => answers(store));
    const again = await store.records.take('charge:k1', { meta: { state: 'in-progress' } }, 60_000);
    expect(again.taken).toBe(true);
    expect(store.health().reachable).toBe(true);
    expect(events.filter((event) => event.type === 'store-reachability').map((event) => event.reachable)).toEqual([true, false, true]);
  });

  it('opens while its server is down, and connects once the server starts', async () => {
    const port = await freePort();
    const store = openStore(config(`redis://127.0.0.1:${port}`), { clock: systemClock });
    cleanups.push(() => store.close());

    const { error, ms } = await failure(() => store.records.take('k', { meta: {} }, 60_000));
    expect(error.code).toBe('unavailable');
    expect(ms).toBeLessThan(RETURNS_WITHIN_MS);
    expect(store.health()).toMatchObject({ reachable: false });

    const server = await startRedisServer({ port });
    cleanups.push(() => server.stop());

    await waitFor('the store to connect', () => answers(store));
    expect((await store.records.take('k', { meta: {} }, 60_000)).taken).toBe(true);
  });
});

describe('a redis store on a server', () => {
  let server: RedisServer;
  let store: Store;

  beforeAll(async () => {
    server = await startRedisServer();
    store = openStore(config(server.url), { clock: systemClock });
    await waitFor('the store to connect', () => answers(store));
  });

  afterAll(async () => {
    await store?.close();
    await server?.stop();
  });

  it('keeps a record as one hash under the prefix, the caller\'s key in a hash tag, with the TTL as expiry', async () => {
    const taken = await store.records.take('charge:{odd}%key', { meta: { state: 'in-progress' } }, 60_000);
    if (!taken.taken) throw new Error('not taken');
    await store.records.replace('charge:{odd}%key', taken.token, { meta: { status: 201 }, body: Buffer.from('created') }, 60_000);

    const key = 'bw:rec:{charge:%7Bodd%7D%25key}';
    expect(recordKey('bw:', 'charge:{odd}%key')).toBe(key);
    expect(await server.cli('TYPE', key)).toBe('hash');
    expect(await server.cli('HGET', key, 'meta')).toBe('{"status":201}');
    expect(await server.cli('HGET', key, 'body')).toBe('created');
    expect(await server.cli('HGET', key, 'token')).toBe(taken.token);
    const ttl = Number(await server.cli('PTTL', key));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it('runs its scripts again after the server forgot them (EVALSHA falls back to EVAL)', async () => {
    await store.records.take('flush:a', { meta: {} }, 60_000);
    expect(await server.cli('SCRIPT', 'FLUSH')).toBe('OK');

    const taken = await store.records.take('flush:b', { meta: {} }, 60_000);
    expect(taken.taken).toBe(true);
    if (taken.taken) expect(await store.records.release('flush:b', taken.token)).toBe(true);
  });

  it('reports a key that holds something else as a failure of the store, not a record', async () => {
    await server.cli('SET', 'bw:rec:{foreign}', 'a string');

    const { error } = await failure(() => store.records.get('foreign'));

    expect(error.code).toBe('failed');
    expect(store.health()).toMatchObject({ reachable: true, lastError: { code: 'failed' } });
  });
});

describe('a redis store in a cluster', () => {
  let cluster: RedisCluster;
  let store: Store;

  beforeAll(async () => {
    // The store opens before its cluster exists, as when Breakwater starts before Redis.
    const seedPort = await freePort();
    store = openStore(
      { name: 'fleet', type: 'redis', timeoutMs: TIMEOUT_MS, topology: { mode: 'cluster', nodes: [`redis://127.0.0.1:${seedPort}`] }, keyPrefix: 'bw:' },
      { clock: systemClock },
    );
    const { error } = await failure(() => store.records.get('k'));
    expect(error.code).toBe('unavailable');

    cluster = await startRedisCluster({ seedPort });
    await waitFor('the store to connect', () => answers(store));
  });

  afterAll(async () => {
    await store?.close();
    await cluster?.stop();
  });

  it('finds every master from one seed, spreads records over them, and keeps each record in one slot', async () => {
    const keys = Array.from({ length: 30 }, (_, i) => `charge:key-${i}`);
    for (const key of keys) expect((await store.records.take(key, { meta: { key } }, 60_000)).taken).toBe(true);

    // Each master holds some of the records: the client routes by slot, from a single seed.
    const counts = await Promise.all(cluster.nodes.map(async (node) => Number(await node.cli('DBSIZE'))));
    expect(counts.every((count) => count > 0)).toBe(true);
    expect(counts.reduce((sum, count) => sum + count, 0)).toBe(keys.length);

    // A record's key hashes by its tag alone, so any key kept for that record shares its slot.
    const node = cluster.nodes[0]!;
    for (const key of keys.slice(0, 5)) {
      const slot = await node.cli('CLUSTER', 'KEYSLOT', recordKey('bw:', key));
      expect(await node.cli('CLUSTER', 'KEYSLOT', `${recordKey('bw:', key)}:body`)).toBe(slot);
      expect(await node.cli('CLUSTER', 'KEYSLOT', key)).toBe(slot);
      expect(await store.records.get(key)).toEqual({ meta: { key } });
    }
  });
});

describe('a redis store with credentials from the environment', () => {
  it('logs in with the password the config names as ${VAR}, and fails without it', async () => {
    const server = await startRedisServer({ args: ['--requirepass', 'pa55-word'] });
    cleanups.push(() => server.stop());
    const yaml = (password: string) => `
stores:
  shared: {type: redis, url: "redis://127.0.0.1:${server.port}", password: "${password}"}
`;
    const parsed = parseConfig(yaml('${REDIS_PASSWORD}'), 'test.yaml', { env: { REDIS_PASSWORD: 'pa55-word' } });
    if (!parsed.ok) throw new Error(parsed.problems.map(formatProblem).join('\n'));
    const wrong = parseConfig(yaml('not-it'), 'test.yaml');
    if (!wrong.ok) throw new Error(wrong.problems.map(formatProblem).join('\n'));

    const stores = await openStores(parsed.config.stores, { clock: systemClock });
    cleanups.push(() => stores.close());
    const refused = await openStores(wrong.config.stores, { clock: systemClock });
    cleanups.push(() => refused.close());

    await waitFor('the store to log in', () => answers(stores.get('shared')));
    expect((await stores.get('shared').records.take('k', { meta: {} }, 60_000)).taken).toBe(true);
    // The wrong password never gets a connection; the error says why.
    await waitFor('the login to fail', () => refused.health()[0]?.lastError !== undefined);
    expect(refused.health()[0]).toMatchObject({ name: 'shared', reachable: false, lastError: { message: expect.stringMatching(/WRONGPASS|invalid|password/i) } });
    await expect(refused.get('shared').records.get('k')).rejects.toMatchObject({ code: 'unavailable' });
  });
});
