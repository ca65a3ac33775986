// The policies on gRPC calls, with grpc-js on both ends: each judges a call by its grpc-status,
// and each reply Breakwater makes is one a gRPC client reads as a status.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../support/breakwater.ts';
import { callUnary, echoClient, grpc, startEchoServer, type EchoClient, type EchoServer } from '../support/grpc.ts';
import { waitFor } from '../support/wait.ts';

const target = (proxy: RunningBreakwater): string => proxy.url().replace('http://', '');

/** A Unary that sends its response headers, then fails with `code`: the status comes in the trailers only. */
function failAfterHeaders(code: grpc.status): Parameters<EchoServer['onUnary']>[0] {
  return (call, callback) => {
    call.sendMetadata(new grpc.Metadata());
    callback({ code, details: 'failed after its headers' });
  };
}

describe('gRPC calls and the resilience policies', () => {
  let flaky: EchoServer;
  let steady: EchoServer;
  let slow: EchoServer;
  let limited: EchoServer;
  let proxy: RunningBreakwater;
  let client: EchoClient;
  /** Slow calls held open, answered by the test. */
  const held: (() => void)[] = [];

  beforeAll(async () => {
    [flaky, steady, slow, limited] = await Promise.all([startEchoServer(), startEchoServer(), startEchoServer(), startEchoServer()]);
    slow.onUnary((call, callback) => {
      const answer = (): void => callback(null, call.request);
      held.push(answer);
      call.on('cancelled', () => held.splice(held.indexOf(answer), 1));
    });
    limited.onUnary((call, callback) => held.push(() => callback(null, call.request)));
    proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  breaking:
    endpoints: ["http://${flaky.address}"]
    protocol: h2c
    circuitBreaker: {window: 10s, minRequests: 4, failureRate: 0.5, openFor: 30s, failOn: [unavailable]}
  ejecting:
    endpoints: ["http://${flaky.address}", "http://${steady.address}"]
    protocol: h2c
    outlierDetection: {consecutiveFailures: 2, baseEjectionTime: 30s, maxEjectionPercent: 50}
  hedged:
    endpoints: ["http://${slow.address}", "http://${steady.address}"]
    protocol: h2c
  bulkheaded:
    endpoints: ["http://${limited.address}"]
    protocol: h2c
    bulkhead: {maxConcurrent: 1, maxQueued: 0}
  down: {endpoints: ["http://127.0.0.1:1"], protocol: h2c, connectTimeout: 200ms}
routes:
  - {name: breaker, match: {headers: {x-case: breaker}}, upstream: breaking}
  - {name: outlier, match: {headers: {x-case: outlier}}, upstream: ejecting}
  - name: hedge
    match: {headers: {x-case: hedge}}
    upstream: hedged
    retry: {maxAttempts: 2, retryOn: [unavailable]}
    hedge: {delay: 30ms, maxAttempts: 2}
  - {name: bulkhead, match: {headers: {x-case: bulkhead}}, upstream: bulkheaded}
  - name: fallback-ok
    match: {headers: {x-case: fallback-ok}}
    upstream: down
    fallback: {on: [upstream-unavailable], chain: [{response: {status: 200, headers: {content-type: application/json}, body: '{"items":[]}'}}]}
  - name: fallback-status
    match: {headers: {x-case: fallback-status}}
    upstream: down
    fallback: {on: [upstream-unavailable], chain: [{response: {status: 200, body: '{}', grpcStatus: 5}}]}
`);
    client = echoClient(target(proxy));
  });

  afterAll(async () => {
    client.close();
    for (const answer of held.splice(0)) answer();
    await proxy.stop();
    await Promise.all([flaky, steady, slow, limited].map((server) => server.stop()));
  });

  const forCase = (value: string): { metadata: grpc.Metadata } => {
    const metadata = new grpc.Metadata();
    metadata.set('x-case', value);
    return { metadata };
  };

  it('opens the breaker on UNAVAILABLE statuses that came in the trailers, then refuses with UNAVAILABLE circuit_open', async () => {
    flaky.onUnary(failAfterHeaders(grpc.status.UNAVAILABLE));
    const before = flaky.unaryCalls.length;
    for (let i = 0; i < 4; i++) expect((await callUnary(client, Buffer.from('x'), forCase('breaker'))).code).toBe(grpc.status.UNAVAILABLE);
    const refused = await callUnary(client, Buffer.from('x'), forCase('breaker'));
    expect(refused.code).toBe(grpc.status.UNAVAILABLE);
    expect(refused.metadata.get('x-breakwater-reason')).toEqual(['circuit_open']);
    expect(refused.details).toMatch(/circuit breaker breaking is open/);
    // The refused call never reached the upstream.
    expect(flaky.unaryCalls.length - before).toBe(4);
  });

  it('ejects the endpoint whose calls end UNAVAILABLE, and sends the next calls to the other', async () => {
    flaky.onUnary(failAfterHeaders(grpc.status.UNAVAILABLE));
    const flakyBefore = flaky.unaryCalls.length;
    const steadyBefore = steady.unaryCalls.length;
    // Round-robin over the two until the flaky one has failed twice in a row.
    for (let i = 0; i < 4; i++) await callUnary(client, Buffer.from('x'), forCase('outlier'));
    expect(flaky.unaryCalls.length - flakyBefore).toBe(2);
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await callUnary(client, Buffer.from('x'), forCase('outlier')));
    expect(results.map((result) => result.code)).toEqual(Array(4).fill(grpc.status.OK));
    expect(flaky.unaryCalls.length - flakyBefore).toBe(2);
    expect(steady.unaryCalls.length - steadyBefore).toBe(6);
    const upstreams = (await (await fetch(`${proxy.adminUrl}/endpoints`)).json()) as { upstream: string; endpoints: { endpoint: string; state: string }[] }[];
    const ejecting = upstreams.find((row) => row.upstream === 'ejecting')!;
    expect(ejecting.endpoints.find((row) => row.endpoint === `http://${flaky.address}`)?.state).toBe('ejected');
  });

  it('hedges a slow call to another endpoint, answers with the first response, and cancels the other', async () => {
    steady.onUnary(undefined);
    const result = await callUnary(client, Buffer.from('hedged'), forCase('hedge'));
    expect(result.code).toBe(grpc.status.OK);
    expect(result.response?.toString()).toBe('hedged');
    expect(result.metadata.get('x-breakwater-attempts')).toEqual(['2']);
    // The slow endpoint's call is cancelled, not left running.
    await waitFor('the losing attempt to be cancelled', () => held.length === 0);
  });

  it('refuses a call beyond the bulkhead with UNAVAILABLE bulkhead_full, and holds the slot until the call ends', async () => {
    const first = callUnary(client, Buffer.from('first'), forCase('bulkhead'));
    await waitFor('the first call to reach the upstream', () => held.length === 1);
    const refused = await callUnary(client, Buffer.from('second'), forCase('bulkhead'));
    expect(refused.code).toBe(grpc.status.UNAVAILABLE);
    expect(refused.metadata.get('x-breakwater-reason')).toEqual(['bulkhead_full']);
    held.shift()!();
    expect((await first).response?.toString()).toBe('first');
    limited.onUnary(undefined);
    expect((await callUnary(client, Buffer.from('third'), forCase('bulkhead'))).code).toBe(grpc.status.OK);
  });

  it('answers a gRPC caller from a static fallback in gRPC terms: OK with an empty message, or the configured status', async () => {
    const ok = await callUnary(client, Buffer.from('x'), forCase('fallback-ok'));
    expect(ok.code).toBe(grpc.status.OK);
    expect(ok.response).toEqual(Buffer.alloc(0));
    expect(ok.metadata.get('x-breakwater-fallback')).toEqual(['static']);
    const status = await callUnary(client, Buffer.from('x'), forCase('fallback-status'));
    expect(status.code).toBe(grpc.status.NOT_FOUND);
    expect(status.metadata.get('x-breakwater-fallback')).toEqual(['static']);
  });
});
