// Dead letters in a Redis store shared by two replicas: each lists and replays the other's; and
// with Redis gone, callers are answered as ever while the loss is counted and logged once.

import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../support/breakwater.ts';
import { startRedisServer, waitFor, type RedisServer } from '../support/redis-server.ts';
import { startUpstream, type UpstreamServer } from '../support/upstream-server.ts';

let redis: RedisServer;
let upstream: UpstreamServer;
let down = true;
const running: RunningBreakwater[] = [];
let prefix = 0;

beforeAll(async () => {
  redis = await startRedisServer();
  upstream = await startUpstream((_req, res) => {
    res.writeHead(down ? 503 : 200);
    res.end(down ? 'down' : 'ok');
  });
});

afterAll(async () => {
  await upstream?.close();
  await redis?.stop();
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((bw) => bw.stop()));
  down = true;
});

/** Two replicas of one Deployment: the same config, the same Redis. */
async function replicas(): Promise<[RunningBreakwater, RunningBreakwater]> {
  const yaml = `${ephemeralAddresses}
upstreams:
  notifier: {endpoints: ['${upstream.origin}']}
stores:
  shared: {type: redis, url: '${redis.url}', keyPrefix: 'replicas-${++prefix}:', timeout: 500ms}
routes:
  - name: notify
    upstream: notifier
    deadLetter: {store: shared}
`;
  const started = await Promise.all([startBreakwater(yaml), startBreakwater(yaml)]);
  running.push(...started);
  // The stores connect in the background.
  for (const bw of started) await waitFor('the redis store', async () => (await fetch(`${bw.adminUrl}/dead-letters`)).status === 200);
  return started;
}

const post = async (bw: RunningBreakwater, path: string, body: string) => {
  const response = await request(`${bw.url()}${path}`, { method: 'POST', headers: { host: 'notify' }, body });
  return { status: response.statusCode, body: await response.body.text() };
};

const listed = async (bw: RunningBreakwater): Promise<{ id: string; url: string }[]> =>
  ((await (await fetch(`${bw.adminUrl}/dead-letters?order=oldest`)).json()) as { entries: { id: string; url: string }[] }).entries;

describe('dead letters in a shared redis store', () => {
  it("lets any replica list and replay every replica's dead letters", async () => {
    const [a, b] = await replicas();
    await post(a, '/from-a/1', 'one');
    await post(b, '/from-b/2', 'two');
    await post(a, '/from-a/3', 'three');
    await waitFor('three dead letters', async () => (await listed(a)).length === 3);

    // Both see the same three, in the order they were kept.
    expect((await listed(b)).map((entry) => entry.url)).toEqual(['/from-a/1', '/from-b/2', '/from-a/3']);
    const shown = (await (await fetch(`${b.adminUrl}/dead-letters/${(await listed(b))[0]!.id}`)).json()) as { body: string };
    expect(Buffer.from(shown.body, 'base64').toString()).toBe('one');

    down = false;
    const before = upstream.requests.length;
    const replay = await fetch(`${b.adminUrl}/dead-letters/replay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"route":"notify"}' });
    const summary = JSON.parse((await replay.text()).trim().split('\n').at(-1)!) as { summary: { succeeded: number } };

    expect(summary.summary.succeeded).toBe(3);
    expect(upstream.requests.slice(before).map((seen) => [seen.url, seen.body.toString()])).toEqual([
      ['/from-a/1', 'one'],
      ['/from-b/2', 'two'],
      ['/from-a/3', 'three'],
    ]);
    expect(await listed(a)).toEqual([]);
  });

  it('answers callers as ever while Redis is down, counts every dead letter lost, and logs once', async () => {
    const [a] = await replicas();
    await redis.kill();
    try {
      const answers = [];
      for (let i = 0; i < 30; i++) answers.push(await post(a, `/lost/${i}`, `body ${i}`));

      expect(answers.every((answer) => answer.status === 503 && answer.body === 'down')).toBe(true);
      const dropped = async (): Promise<number> => {
        const text = await (await fetch(`${a.telemetryUrl}/metrics`)).text();
        const line = text.split('\n').find((candidate) => candidate.startsWith('breakwater_dead_letters_dropped_total{') && candidate.includes('cause="store_error"'));
        return line === undefined ? 0 : Number(line.split(' ').at(-1));
      };
      await waitFor('30 drops counted', async () => (await dropped()) === 30);
      const logged = a.log.lines.filter((line) => line.msg === 'dead letters dropped');
      expect(logged).toEqual([expect.objectContaining({ route: 'notify', cause: 'store_error', dropped: 1, intervalSeconds: 60 })]);
      // The depth is not known while the store is away: no series rather than a stale one.
      expect(await (await fetch(`${a.telemetryUrl}/metrics`)).text()).not.toMatch(/^breakwater_dead_letter_entries\{/m);
    } finally {
      await redis.start();
    }
  });
});
