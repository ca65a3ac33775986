import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../../support/breakwater.ts';
import { startFaultyUpstream, type FaultyUpstream } from '../../support/faulty-upstream.ts';

const maxConcurrent = 2;
const maxQueued = 2;
const searchRequests = 1000;
const batchSize = 25;

interface Answer {
  readonly status: number;
  readonly reason: string | undefined;
  readonly attempts: string | undefined;
}

async function send(url: string): Promise<Answer> {
  const response = await request(url);
  await response.body.dump();
  const reason = response.headers['x-breakwater-reason'];
  const attempts = response.headers['x-breakwater-attempts'];
  return {
    status: response.statusCode,
    reason: typeof reason === 'string' ? reason : undefined,
    attempts: typeof attempts === 'string' ? attempts : undefined,
  };
}

/** A request in flight whose answer can be awaited later, and asked whether it came yet. */
function inFlight(url: string): { answer: Promise<Answer>; settled: () => boolean } {
  let settled = false;
  const answer = send(url).finally(() => {
    settled = true;
  });
  return { answer, settled: () => settled };
}

const bulkheadFull = { status: 503, reason: 'bulkhead_full', attempts: '0' };

describe('bulkheads under overload', () => {
  const upstreams: FaultyUpstream[] = [];
  let proxy: RunningBreakwater;

  afterEach(async () => {
    // Upstreams first: their held requests fail at once, so the drain has nothing to wait for.
    await Promise.all(upstreams.splice(0).map((upstream) => upstream.close()));
    await proxy.stop();
  });

  async function upstream(): Promise<FaultyUpstream> {
    const started = await startFaultyUpstream();
    upstreams.push(started);
    return started;
  }

  it("keeps a hanging upstream's overload in its own bulkhead while another upstream serves every request", async () => {
    const reports = await upstream();
    const search = await upstream();
    proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  reports:
    endpoints: ["${reports.origin}"]
    bulkhead: {maxConcurrent: ${maxConcurrent}, maxQueued: ${maxQueued}, queueTimeout: 300ms}
  search: {endpoints: ["${search.origin}"]}
routes:
  - {name: reports, match: {pathPrefix: /reports}, upstream: reports, timeout: 30s}
  - {name: search, match: {pathPrefix: /search}, upstream: search}
`);
    const reportsUrl = `${proxy.url()}/reports/daily`;

    // The reports upstream hangs: it takes requests and never answers them.
    reports.stall();

    // Two requests take both slots and hang.
    const hanging = Array.from({ length: maxConcurrent }, () => inFlight(reportsUrl));
    await expect.poll(() => reports.inFlight, { timeout: 10_000, interval: 10 }).toBe(maxConcurrent);

    // Two more wait in the queue; three beyond that find the queue full and are refused at once,
    // before the queued ones give up after the queue timeout.
    const settledInOrder: string[] = [];
    const queued = Array.from({ length: maxQueued }, () => send(reportsUrl).finally(() => settledInOrder.push('queued')));
    const refused = Array.from({ length: 3 }, () => send(reportsUrl).finally(() => settledInOrder.push('refused')));
    expect(await Promise.all(refused)).toEqual([bulkheadFull, bulkheadFull, bulkheadFull]);
    expect(await Promise.all(queued)).toEqual([bulkheadFull, bulkheadFull]);
    expect(settledInOrder).toEqual(['refused', 'refused', 'refused', 'queued', 'queued']);

    // Meanwhile the search upstream gets 1000 requests, 25 at a time, while more requests keep
    // knocking on the full reports bulkhead, one per batch.
    const searchStatuses: number[] = [];
    const knocks: Promise<Answer>[] = [];
    for (let sent = 0; sent < searchRequests; sent += batchSize) {
      knocks.push(send(reportsUrl));
      const batch = Array.from({ length: batchSize }, async (_, offset) => (await send(`${proxy.url()}/search?q=${sent + offset}`)).status);
      searchStatuses.push(...(await Promise.all(batch)));
    }

    // Every search request succeeded, and the search upstream saw exactly those requests.
    expect(searchStatuses).toHaveLength(searchRequests);
    expect(searchStatuses.every((status) => status === 200)).toBe(true);
    expect(search.requests).toHaveLength(searchRequests);

    // Every request beyond the reports bulkhead was refused, and none of them reached reports.
    expect((await Promise.all(knocks)).every((answer) => answer.status === 503 && answer.reason === 'bulkhead_full')).toBe(true);
    expect(reports.requests).toHaveLength(maxConcurrent);
    expect(reports.maxInFlight).toBe(maxConcurrent);

    // All of that was answered while the first two were still hanging, holding the slots.
    expect(hanging.every((request) => !request.settled())).toBe(true);
    const metrics = await (await request(`${proxy.telemetryUrl}/metrics`)).body.text();
    expect(metrics).toContain(`breakwater_bulkhead_in_flight{upstream="reports"} ${maxConcurrent}`);

    // The reports upstream recovers: the hanging requests get their answers, and the slots are free again.
    reports.resume();
    for (const request of hanging) expect(await request.answer).toEqual({ status: 200, reason: undefined, attempts: '1' });
    expect(await send(reportsUrl)).toEqual({ status: 200, reason: undefined, attempts: '1' });
    expect(reports.maxInFlight).toBe(maxConcurrent);
  });

  it("sheds inbound load beyond the listener's maxConcurrent before it reaches the local service", async () => {
    const localApp = await upstream();
    proxy = await startBreakwater(`
listeners:
  - {name: outbound, address: 127.0.0.1:0}
  - {name: inbound, address: 127.0.0.1:0, maxConcurrent: 2}
telemetry: {address: 127.0.0.1:0}
admin: {address: 127.0.0.1:0}
upstreams:
  local-app: {endpoints: ["${localApp.origin}"]}
routes:
  - {name: to-local-app, listener: inbound, match: {pathPrefix: /}, upstream: local-app}
`);
    const url = `${proxy.url('inbound')}/work`;

    // The local service is busy: two requests are in it and it answers neither yet.
    localApp.stall();
    const busy = [inFlight(url), inFlight(url)];
    await expect.poll(() => localApp.inFlight, { timeout: 10_000, interval: 10 }).toBe(2);

    // A third caller is shed at once with 503 bulkhead_full; the service never sees it.
    expect(await send(url)).toEqual(bulkheadFull);
    expect(localApp.requests).toHaveLength(2);
    expect(busy.every((request) => !request.settled())).toBe(true);

    // The service catches up: the two get their answers, and new callers are let in again.
    localApp.resume();
    for (const request of busy) expect((await request.answer).status).toBe(200);
    expect((await send(url)).status).toBe(200);
    expect(localApp.requests).toHaveLength(3);
  });
});
