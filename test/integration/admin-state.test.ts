// What the admin server reports of the running sidecar beyond its config: the bulkheads'
// occupancy while requests are in flight, and the history of reloads.

import { readFile, writeFile } from 'node:fs/promises';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReloadHistory } from '../../src/admin/reloads.ts';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../support/breakwater.ts';
import { echo, startUpstream, type UpstreamServer } from '../support/upstream-server.ts';

let upstream: UpstreamServer;
let sidecar: RunningBreakwater;
/** Requests the upstream holds until the test answers them. */
const held: (() => void)[] = [];
/** Who waits for the upstream to hold a number of requests. */
const waiters: { count: number; resolve: () => void }[] = [];

beforeAll(async () => {
  upstream = await startUpstream((req, res, body) => {
    held.push(() => echo(req, res, body));
    for (const waiter of waiters.filter((candidate) => held.length >= candidate.count)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  });
  sidecar = await startBreakwater(`${ephemeralAddresses}
upstreams:
  payments:
    endpoints: ["${upstream.origin}"]
    bulkhead: {maxConcurrent: 2, maxQueued: 3, queueTimeout: 5s}
routes:
  - {name: pay, match: {host: payments}, upstream: payments, timeout: 10s}
`);
});

afterAll(async () => {
  for (const release of held.splice(0)) release();
  await sidecar?.stop();
  await upstream?.close();
});

async function admin(path: string, init?: RequestInit): Promise<unknown> {
  return (await fetch(`${sidecar.adminUrl}${path}`, init)).json();
}

/** Resolves once the upstream holds `count` requests. */
function upstreamHolds(count: number): Promise<void> {
  if (held.length >= count) return Promise.resolve();
  return new Promise((resolve) => waiters.push({ count, resolve }));
}

describe('GET /bulkheads', () => {
  it('shows each bulkhead with what is in flight and queued, against its limits', async () => {
    expect(await admin('/bulkheads')).toEqual([{ upstream: 'payments', inFlight: 0, queued: 0, maxConcurrent: 2, maxQueued: 3 }]);

    // Three requests: two take the slots, the third waits in the queue.
    const calls = [1, 2, 3].map(() => request(`${sidecar.url()}/x`, { headers: { host: 'payments' } }));
    await upstreamHolds(2);

    expect(await admin('/bulkheads')).toEqual([{ upstream: 'payments', inFlight: 2, queued: 1, maxConcurrent: 2, maxQueued: 3 }]);

    // Once they are answered, the bulkhead is empty again.
    held.shift()!();
    held.shift()!();
    await upstreamHolds(1);
    held.shift()!();
    for (const call of await Promise.all(calls)) expect(call.statusCode).toBe(200);
    expect(await admin('/bulkheads')).toEqual([{ upstream: 'payments', inFlight: 0, queued: 0, maxConcurrent: 2, maxQueued: 3 }]);
  });
});

describe('GET /reloads', () => {
  it('lists the reloads since the start, newest first, with their result, config hash or problems', async () => {
    expect(await admin('/reloads')).toEqual([]);
    const original = await readFile(sidecar.configPath, 'utf8');

    await writeFile(sidecar.configPath, original.replace('timeout: 10s', 'timeout: 20s'));
    await admin('/reload', { method: 'POST' });
    await admin('/reload', { method: 'POST' });
    await writeFile(sidecar.configPath, original.replace('timeout: 10s', 'timeout: soon'));
    await admin('/reload', { method: 'POST' });

    const reloads = (await admin('/reloads')) as { time: string; result: string; hash?: string; problems?: string[] }[];
    expect(reloads.map((reload) => reload.result)).toEqual(['failure', 'unchanged', 'success']);
    expect(reloads[0]!.problems).toEqual([`${sidecar.configPath}:13:71 routes[0](pay).timeout: must be a duration: a number with a unit ms, s, m, h or d (250ms, 1.5s, 1m, 7d) or integer milliseconds`]);
    expect(reloads[1]!.hash).toBe(reloads[2]!.hash);
    expect(reloads[2]!.hash).toMatch(/^[0-9a-f]+$/);
    for (const reload of reloads) expect(Date.now() - Date.parse(reload.time)).toBeLessThan(60_000);
  });

  it('keeps the newest entries only', () => {
    const history = new ReloadHistory(3);

    for (let second = 1; second <= 5; second++) history.record('success', Date.UTC(2026, 0, 1, 0, 0, second), { hash: String(second) });

    expect(history.list()).toEqual([
      { time: '2026-01-01T00:00:05.000Z', result: 'success', hash: '5' },
      { time: '2026-01-01T00:00:04.000Z', result: 'success', hash: '4' },
      { time: '2026-01-01T00:00:03.000Z', result: 'success', hash: '3' },
    ]);
  });
});
