// Outlier detection and peak-EWMA balancing with real sockets: three upstreams on loopback, one
// of them failing or slow, and the traffic seen moving away from it and coming back. Ejection
// times are a few hundred milliseconds so the test can wait them out.

import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../../support/breakwater.ts';
import { echo, startUpstream, type Behaviour, type UpstreamServer } from '../../support/upstream-server.ts';
import { waitFor } from '../../support/wait.ts';

interface EndpointRow {
  endpoint: string;
  state: string;
  reason?: string;
  ejectedUntil?: string;
}

let proxy: RunningBreakwater | undefined;
const servers: UpstreamServer[] = [];

afterEach(async () => {
  await proxy?.stop();
  await Promise.all(servers.map((server) => server.close()));
  proxy = undefined;
  servers.length = 0;
});

const unavailable: Behaviour = (_req, res) => {
  res.writeHead(503, { 'content-length': '0' });
  res.end();
};

/** Answers after `ms`, as an overloaded replica would. */
const slow =
  (ms: number): Behaviour =>
  (req, res, body) =>
    void setTimeout(() => echo(req, res, body), ms);

async function upstreams(count: number): Promise<UpstreamServer[]> {
  const started = await Promise.all(Array.from({ length: count }, () => startUpstream()));
  servers.push(...started);
  return started;
}

async function get(): Promise<number> {
  const response = await request(`${proxy!.url()}/items`, { headers: { host: 'catalog' } });
  await response.body.dump();
  return response.statusCode;
}

async function endpointRows(): Promise<EndpointRow[]> {
  const rows = (await (await request(`${proxy!.adminUrl}/endpoints`)).body.json()) as { upstream: string; endpoints: EndpointRow[] }[];
  return rows.find((row) => row.upstream === 'catalog')!.endpoints;
}

async function stateOf(origin: string): Promise<EndpointRow | undefined> {
  return (await endpointRows()).find((row) => row.endpoint === origin);
}

async function metricLines(prefix: string): Promise<string[]> {
  const text = await (await request(`${proxy!.telemetryUrl}/metrics`)).body.text();
  return text.split('\n').filter((line) => line.startsWith(prefix));
}

const counts = (list: readonly UpstreamServer[]) => list.map((server) => server.requests.length);

describe('outlier detection', () => {
  it('ejects an endpoint after consecutive failures, moves traffic away, and takes it back when its time is up', async () => {
    const [a, b, bad] = await upstreams(3);
    bad!.respond(unavailable);
    proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  catalog:
    endpoints: [${a!.origin}, ${b!.origin}, ${bad!.origin}]
    outlierDetection: {consecutiveFailures: 3, baseEjectionTime: 300ms, maxEjectionTime: 5s}
routes:
  - name: catalog
    upstream: catalog
`);

    // Round-robin: every third request reaches the failing endpoint; its third 503 ejects it.
    const statuses: number[] = [];
    for (let i = 0; i < 9; i++) statuses.push(await get());
    expect(statuses.filter((status) => status === 503)).toHaveLength(3);
    const ejected = await stateOf(bad!.origin);
    expect(ejected).toMatchObject({ state: 'ejected', reason: 'consecutive' });
    const untilMs = Date.parse(ejected!.ejectedUntil!) - Date.now();
    expect(untilMs).toBeGreaterThan(0);
    expect(untilMs).toBeLessThanOrEqual(345);

    // While it is out, every request goes to the other two and succeeds.
    const before = counts([a!, b!, bad!]);
    for (let i = 0; i < 10; i++) expect(await get()).toBe(200);
    expect(counts([a!, b!, bad!])).toEqual([before[0]! + 5, before[1]! + 5, before[2]]);

    // Seen by an operator: the gauge, the counter and a log line.
    expect(await metricLines('breakwater_endpoint_ejected{')).toEqual([
      `breakwater_endpoint_ejected{upstream="catalog",endpoint="${a!.origin}"} 0`,
      `breakwater_endpoint_ejected{upstream="catalog",endpoint="${b!.origin}"} 0`,
      `breakwater_endpoint_ejected{upstream="catalog",endpoint="${bad!.origin}"} 1`,
    ]);
    expect(await metricLines('breakwater_outlier_ejections_total{')).toEqual(['breakwater_outlier_ejections_total{upstream="catalog",reason="consecutive"} 1']);
    const line = proxy.log.lines.find((entry) => entry.msg === 'endpoint ejected');
    expect(line).toMatchObject({ level: 40, upstream: 'catalog', endpoint: bad!.origin, reason: 'consecutive', ejections: 1 });
    expect(line?.ejectedForMs).toBeGreaterThanOrEqual(255);
    expect(line?.ejectedForMs).toBeLessThanOrEqual(345);

    // Its time runs out: it takes traffic again, still failing, and its first failure ejects it
    // again at once, for about twice as long.
    await waitFor('the ejection to run out', async () => (await stateOf(bad!.origin))?.state === 'active');
    expect(proxy.log.lines).toContainEqual(expect.objectContaining({ msg: 'endpoint returned from ejection', endpoint: bad!.origin }));
    const failedAt = bad!.requests.length;
    for (let i = 0; i < 3; i++) await get();
    expect(bad!.requests.length).toBe(failedAt + 1);
    expect(await stateOf(bad!.origin)).toMatchObject({ state: 'ejected', reason: 'consecutive' });
    const second = proxy.log.lines.filter((entry) => entry.msg === 'endpoint ejected').at(-1);
    expect(second).toMatchObject({ endpoint: bad!.origin, ejections: 2 });
    expect(second?.ejectedForMs).toBeGreaterThanOrEqual(510);

    // Healthy again: once back, it answers its share.
    bad!.respond(echo);
    await waitFor('the second ejection to run out', async () => (await stateOf(bad!.origin))?.state === 'active');
    const recovered = bad!.requests.length;
    for (let i = 0; i < 6; i++) expect(await get()).toBe(200);
    expect(bad!.requests.length).toBe(recovered + 2);
    expect(await metricLines('breakwater_outlier_ejections_total{')).toEqual(['breakwater_outlier_ejections_total{upstream="catalog",reason="consecutive"} 2']);
  });

  it('never ejects more than maxEjectionPercent of the endpoints, and never the last one', async () => {
    const [first, second] = await upstreams(2);
    first!.respond(unavailable);
    second!.respond(unavailable);
    proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  catalog:
    endpoints: [${first!.origin}, ${second!.origin}]
    outlierDetection: {consecutiveFailures: 2, baseEjectionTime: 1m, maxEjectionPercent: 100}
routes:
  - name: catalog
    upstream: catalog
`);

    // Both fail: the first to reach two failures is ejected; the other stays, however it fails.
    for (let i = 0; i < 10; i++) expect(await get()).toBe(503);

    expect((await endpointRows()).map((row) => row.state).sort()).toEqual(['active', 'ejected']);
  });

  it('ejects an endpoint far slower than the others', async () => {
    const [a, b, laggard] = await upstreams(3);
    laggard!.respond(slow(60));
    proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  catalog:
    endpoints: [${a!.origin}, ${b!.origin}, ${laggard!.origin}]
    outlierDetection:
      consecutiveFailures: 0
      latency: {factor: 3, minRequests: 5, window: 1s}
      baseEjectionTime: 30s
routes:
  - name: catalog
    upstream: catalog
`);

    // Each has five answers after 15 requests; the rule is checked a tenth of its window apart.
    let sent = 0;
    await waitFor('the slow endpoint to be ejected', async () => {
      await get();
      sent += 1;
      return (await stateOf(laggard!.origin))?.state === 'ejected';
    });
    expect(sent).toBeGreaterThanOrEqual(15);
    expect(await stateOf(laggard!.origin)).toMatchObject({ reason: 'latency' });
    expect(await metricLines('breakwater_outlier_ejections_total{')).toEqual(['breakwater_outlier_ejections_total{upstream="catalog",reason="latency"} 1']);

    const before = laggard!.requests.length;
    for (let i = 0; i < 10; i++) expect(await get()).toBe(200);
    expect(laggard!.requests.length).toBe(before);
  });
});

describe('outlier detection and peak-ewma beside a replica that refuses quickly', () => {
  it('does not eject the replicas doing the work for being slower than one that refuses, nor time its refusals', async () => {
    // Two replicas answer in 30 ms; the third refuses every call with an immediate 503, as a
    // replica shedding load does. 503s are not failures here (failOn leaves 5xx out), so only
    // latency could tell the replicas apart, and a refusal is no answer to time.
    const [a, b, refusing] = await upstreams(3);
    a!.respond(slow(30));
    b!.respond(slow(30));
    refusing!.respond(unavailable);
    proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  catalog:
    endpoints: [${a!.origin}, ${b!.origin}, ${refusing!.origin}]
    loadBalancing: peak-ewma
    circuitBreaker: {failOn: [connect-failure, reset, timeout]}
    outlierDetection:
      consecutiveFailures: 0
      latency: {factor: 3, minRequests: 5, window: 1s}
      maxEjectionPercent: 67
routes:
  - name: catalog
    upstream: catalog
`);

    for (let i = 0; i < 60; i++) await get();

    // Nobody was ejected: the refusals were no latency samples, so the replicas doing the work
    // were never compared with a 503's few hundred microseconds.
    expect((await endpointRows()).map((row) => row.state)).toEqual(['active', 'active', 'active']);
    expect(await metricLines('breakwater_outlier_ejections_total{')).toEqual([]);
    // The refusing replica's latency estimate is not its refusals' speed: it has no sample, and
    // only fades from where it started.
    const refusingRow = (await endpointRows()).find((row) => row.endpoint === refusing!.origin) as EndpointRow & { latencyEwmaMs: number };
    expect(refusingRow.latencyEwmaMs).toBeGreaterThan(5);
  });
});

describe('peak-ewma balancing', () => {
  it('sends almost nothing to an endpoint that answers slowly, without ejecting it', async () => {
    const [fast, laggard] = await upstreams(2);
    laggard!.respond(slow(100));
    proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  catalog:
    endpoints: [${fast!.origin}, ${laggard!.origin}]
    loadBalancing: peak-ewma
routes:
  - name: catalog
    upstream: catalog
`);

    for (let i = 0; i < 30; i++) expect(await get()).toBe(200);

    // Before its first answer it costs the same as the other; after it, it is the dearer one
    // until its estimate fades (seconds).
    expect(laggard!.requests.length).toBeLessThanOrEqual(1);
    expect(fast!.requests.length).toBeGreaterThanOrEqual(29);
    expect((await endpointRows()).map((row) => row.state)).toEqual(['active', 'active']);
  });
});
