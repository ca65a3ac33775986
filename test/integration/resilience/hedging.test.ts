// Hedged requests over real sockets: one endpoint stalls, the hedge goes to the other and wins,
// and the stalled attempt's connection is aborted with nothing left held.
import type { ServerResponse } from 'node:http';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../../support/breakwater.ts';
import { startUpstream, type UpstreamServer } from '../../support/upstream-server.ts';

let stalled: UpstreamServer;
let healthy: UpstreamServer;
let proxy: RunningBreakwater;
const held: { res: ServerResponse; closed: boolean }[] = [];

beforeAll(async () => {
  stalled = await startUpstream((_req, res) => {
    const entry = { res, closed: false };
    res.on('close', () => (entry.closed = true));
    held.push(entry);
  });
  healthy = await startUpstream((req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(`found by attempt ${String(req.headers['x-breakwater-attempt'])}`));
  proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  search:
    endpoints: ["${stalled.origin}", "${healthy.origin}"]
    loadBalancing: round-robin
    bulkhead: {maxConcurrent: 10, maxQueued: 0}
routes:
  - name: search
    match: {pathPrefix: /}
    upstream: search
    timeout: 5s
    hedge: {delay: 30ms, maxAttempts: 2}
`);
});

afterAll(async () => {
  await proxy.stop();
  await stalled.close();
  await healthy.close();
});

async function metric(series: string): Promise<number> {
  const text = await (await request(`${proxy.telemetryUrl}/metrics`)).body.text();
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}

describe('hedged requests', () => {
  it('answers from the hedge when the first endpoint stalls, and aborts the stalled attempt', async () => {
    const response = await request(`${proxy.url()}/q?term=breakwater`);
    expect(response.statusCode).toBe(200);
    expect(await response.body.text()).toBe('found by attempt 2');
    expect(response.headers['x-breakwater-attempts']).toBe('2');

    // The loser's connection is closed, not left to run: the stalled endpoint sees it go.
    await expect.poll(() => held[0]?.closed).toBe(true);
    expect(await metric('breakwater_hedges_total{route="search",result="sent"}')).toBe(1);
    expect(await metric('breakwater_hedges_total{route="search",result="won"}')).toBe(1);
    expect(await metric('breakwater_upstream_attempts_total{route="search",upstream="search",outcome="cancelled",code="",grpc_code=""}')).toBe(1);
    // The request's one bulkhead slot is back.
    await expect.poll(() => metric('breakwater_bulkhead_in_flight{upstream="search"}')).toBe(0);
  });
});
