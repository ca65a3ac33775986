import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../support/breakwater.ts';
import { startUpstream, type UpstreamServer } from '../support/upstream-server.ts';

describe('deadline propagation', () => {
  let remote: UpstreamServer;
  let localApp: UpstreamServer;
  let proxy: RunningBreakwater;

  beforeAll(async () => {
    remote = await startUpstream();
    localApp = await startUpstream();
    proxy = await startBreakwater(`${ephemeralAddresses}
deadline:
  maxInbound: 10s
upstreams:
  remote: {endpoints: ["${remote.origin}"]}
  local-app: {endpoints: ["${localApp.origin}"]}
routes:
  - {name: remote, listener: outbound, match: {pathPrefix: /}, upstream: remote, timeout: 2s}
  - {name: local, listener: inbound, match: {pathPrefix: /}, upstream: local-app, timeout: 30s}
`);
  });

  afterAll(async () => {
    await proxy.stop();
    await Promise.all([remote.close(), localApp.close()]);
  });

  it("forwards the smaller of the route timeout and the caller's budget", async () => {
    await (await request(`${proxy.url()}/a`, { headers: { 'x-request-timeout-ms': '800' } })).body.dump();
    await (await request(`${proxy.url()}/b`, { headers: { 'grpc-timeout': '5S' } })).body.dump();
    await (await request(`${proxy.url()}/c`)).body.dump();
    const sent = remote.requests.slice(-3).map((seen) => Number(seen.headers['x-request-timeout-ms']));
    // What is left when the attempt leaves: at most the budget, less the time spent getting there.
    expect(sent[0]).toBeLessThanOrEqual(800);
    expect(sent[0]).toBeGreaterThan(400);
    expect(sent[1]).toBeLessThanOrEqual(2000);
    expect(sent[1]).toBeGreaterThan(1000);
    expect(sent[2]).toBeLessThanOrEqual(2000);
    // The caller's own budget headers are consumed, not passed along.
    expect(remote.requests.at(-2)!.headers['grpc-timeout']).toBeUndefined();
  });

  it('answers 504 deadline_exceeded at once, with no upstream call, when the budget is spent on arrival', async () => {
    const before = remote.requests.length;
    const response = await request(`${proxy.url()}/spent`, { headers: { 'x-request-timeout-ms': '0' } });
    expect(response.statusCode).toBe(504);
    expect(response.headers['x-breakwater-reason']).toBe('deadline_exceeded');
    expect(response.headers['x-breakwater-attempts']).toBe('0');
    await response.body.dump();
    expect(remote.requests.length).toBe(before);
  });

  it('caps a budget over maxInbound', async () => {
    await (await request(`${proxy.url('inbound')}/x`, { headers: { 'x-request-timeout-ms': '600000' } })).body.dump();
    expect(Number(localApp.requests.at(-1)!.headers['x-request-timeout-ms'])).toBeLessThanOrEqual(10_000);
  });

  it('passes the remaining budget on to the local service through the inbound listener', async () => {
    await (await request(`${proxy.url('inbound')}/work`, { headers: { 'grpc-timeout': '1500m' } })).body.dump();
    const seen = Number(localApp.requests.at(-1)!.headers['x-request-timeout-ms']);
    expect(seen).toBeLessThanOrEqual(1500);
    expect(seen).toBeGreaterThan(1000);
  });
});
