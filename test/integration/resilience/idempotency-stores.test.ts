// Idempotency across what users run: two Breakwater processes of one Deployment sharing a real
// Redis, a Redis that dies under load and comes back, and a sqlite file that outlives a restart.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawnBreakwater, type BreakwaterProcess } from '../../support/process.ts';
import { startRedisServer, type RedisServer } from '../../support/redis-server.ts';
import { startUpstream, type UpstreamServer } from '../../support/upstream-server.ts';

let upstream: UpstreamServer;
/** Requests that reached the upstream, by idempotency key. */
const reached = new Map<string, number>();
const processes: BreakwaterProcess[] = [];
const agent = new Agent({ connections: 64 });

beforeAll(async () => {
  upstream = await startUpstream((req, res) => {
    const key = String(req.headers['idempotency-key']);
    reached.set(key, (reached.get(key) ?? 0) + 1);
    // A little latency, so that a key's two requests overlap in flight.
    setTimeout(() => res.writeHead(201, { 'content-type': 'text/plain' }).end(`charged ${key}`), 5);
  });
});

afterEach(async () => {
  for (const running of processes.splice(0)) {
    running.kill();
    await running.exited;
  }
  reached.clear();
});

afterAll(async () => {
  await agent.close();
  await upstream.close();
});

function configWith(store: string, idempotency = ''): string {
  return `
listeners: [{name: outbound, address: 127.0.0.1:0}]
telemetry: {address: 127.0.0.1:0}
admin: {address: 127.0.0.1:0}
stores:
  shared: ${store}
upstreams:
  payments: {endpoints: ["${upstream.origin}"]}
routes:
  - {name: charge, match: {pathPrefix: /}, upstream: payments, timeout: 5s, idempotency: {store: shared${idempotency}}}
`;
}

async function charge(running: BreakwaterProcess, key: string): Promise<{ status: number; reason: string | undefined; text: string }> {
  const response = await request(`${running.url()}/charge`, { method: 'POST', headers: { 'idempotency-key': key }, body: '{"amount":42}', dispatcher: agent });
  return { status: response.statusCode, reason: response.headers['x-breakwater-reason'] as string | undefined, text: await response.body.text() };
}

describe('idempotency keys on shared and durable stores', () => {
  let redis: RedisServer;

  beforeAll(async () => {
    redis = await startRedisServer();
  });

  afterAll(async () => {
    await redis.stop();
  });

  it('lets each key reach the upstream exactly once when two replicas get it at the same time', async () => {
    const yaml = configWith(`{type: redis, url: "${redis.url}", timeout: 500ms}`, ', whileInProgress: wait');
    processes.push(await spawnBreakwater(yaml), await spawnBreakwater(yaml));
    const [a, b] = processes as [BreakwaterProcess, BreakwaterProcess];

    const rounds = 200;
    for (let round = 0; round < rounds; round += 10) {
      // Ten keys at a time, each sent to both replicas at once.
      await Promise.all(
        Array.from({ length: 10 }, async (_, offset) => {
          const key = `round-${round + offset}`;
          const answers = await Promise.all([charge(a, key), charge(b, key)]);
          for (const answer of answers) expect(answer).toMatchObject({ status: 201, text: `charged ${key}` });
        }),
      );
    }

    expect(reached.size).toBe(rounds);
    expect([...reached.values()].every((count) => count === 1)).toBe(true);
  });

  it('fails fast while Redis is down (reject) or passes requests on (forward), and de-duplicates again once it is back', async () => {
    const strict = await spawnBreakwater(configWith(`{type: redis, url: "${redis.url}", timeout: 100ms}`));
    const lenient = await spawnBreakwater(configWith(`{type: redis, url: "${redis.url}", timeout: 100ms}`, ', onStoreError: forward'));
    processes.push(strict, lenient);
    expect((await charge(strict, 'before')).status).toBe(201);

    await redis.kill();
    // Every answer comes back, none hangs: the store's timeout bounds each operation.
    const refused = await Promise.all(Array.from({ length: 20 }, (_, i) => charge(strict, `down-${i}`)));
    expect(refused.every((answer) => answer.status === 503 && answer.reason === 'idempotency_store_unavailable')).toBe(true);
    const forwarded = await Promise.all(Array.from({ length: 20 }, (_, i) => charge(lenient, `forwarded-${i}`)));
    expect(forwarded.every((answer) => answer.status === 201)).toBe(true);

    await redis.start();
    // With Redis back, the store reconnects by itself and repeats are replayed again.
    await expect.poll(async () => (await charge(strict, 'after')).status, { timeout: 15_000, interval: 200 }).toBe(201);
    // The answer is stored as its last byte goes out: a repeat finds it in progress (409) until
    // then, and replayed after.
    await expect.poll(async () => (await charge(strict, 'after')).status, { timeout: 5_000, interval: 50 }).toBe(201);
    expect(reached.get('after')).toBe(1);
  });
});

describe('a sqlite store', () => {
  it('keeps stored answers across a restart of the proxy', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'breakwater-sqlite-'));
    try {
      const configPath = join(dir, 'breakwater.yaml');
      await writeFile(configPath, configWith(`{type: sqlite, path: "${join(dir, 'state.db')}"}`));
      const first = await spawnBreakwater('', { configPath });
      processes.push(first);
      const original = await charge(first, 'durable');
      first.child.kill('SIGTERM');
      expect((await first.exited).code).toBe(0);

      const second = await spawnBreakwater('', { configPath });
      processes.push(second);
      const replayed = await request(`${second.url()}/charge`, { method: 'POST', headers: { 'idempotency-key': 'durable' }, body: '{"amount":42}', dispatcher: agent });
      expect(replayed.headers['idempotent-replayed']).toBe('true');
      expect(await replayed.body.text()).toBe(original.text);
      expect(reached.get('durable')).toBe(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
