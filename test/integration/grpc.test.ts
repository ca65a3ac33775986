import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../support/breakwater.ts';
import { callUnary, echoClient, grpc, startEchoServer, type EchoClient, type EchoServer } from '../support/grpc.ts';

/** `host:port` of a Breakwater listener, as a grpc-js target. */
const target = (proxy: RunningBreakwater, listener = 'outbound'): string => proxy.url(listener).replace('http://', '');

/** Collects a server stream's messages and how it ended. */
function readStream(call: grpc.ClientReadableStream<Buffer>): Promise<{ messages: Buffer[]; status: grpc.StatusObject }> {
  return new Promise((resolve) => {
    const messages: Buffer[] = [];
    call.on('data', (message: Buffer) => messages.push(message));
    call.on('error', () => undefined);
    call.on('status', (status: grpc.StatusObject) => resolve({ messages, status }));
  });
}

describe('gRPC calls through Breakwater', () => {
  let echo: EchoServer;
  let proxy: RunningBreakwater;
  let client: EchoClient;

  beforeAll(async () => {
    echo = await startEchoServer();
    proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  echo: {endpoints: ["http://${echo.address}"], protocol: h2c}
routes:
  - name: echo
    match: {pathPrefix: /test.Echo/}
    upstream: echo
    retry: {maxAttempts: 3, perTryTimeout: 800ms, retryOn: [unavailable], backoff: {type: none}}
`);
    client = echoClient(target(proxy));
  });

  afterAll(async () => {
    client.close();
    await proxy.stop();
    await echo.stop();
  });

  beforeEach(() => echo.onUnary(undefined));

  it('passes a unary call through intact', async () => {
    const result = await callUnary(client, Buffer.from([0, 1, 2, 255]));
    expect(result.code).toBe(grpc.status.OK);
    expect(result.response).toEqual(Buffer.from([0, 1, 2, 255]));
    expect(result.metadata.get('x-breakwater-attempts')).toEqual(['1']);
  });

  it('passes a server stream through intact, with its trailing metadata', async () => {
    const { messages, status } = await readStream(client.serverStream(Buffer.from([3, 7])));
    expect(messages).toEqual([Buffer.from([0, 3, 7]), Buffer.from([1, 3, 7]), Buffer.from([2, 3, 7])]);
    expect(status.code).toBe(grpc.status.OK);
    expect(status.metadata.get('x-stream-trailer')).toEqual(['sent-3']);
  });

  it('passes a client stream through intact', async () => {
    const response = await new Promise<Buffer | undefined>((resolve, reject) => {
      const call = client.clientStream(new grpc.Metadata(), {}, (error, message) => (error === null ? resolve(message) : reject(error)));
      for (const part of ['ab', 'cd', 'ef']) call.write(Buffer.from(part));
      call.end();
    });
    expect(response?.toString()).toBe('abcdef');
  });

  it('passes a bidirectional stream through, each answer before the next message is sent', async () => {
    // The route retries, so the body is kept to be replayed; the call must still stream both ways.
    const call = client.bidi();
    const answers: string[] = [];
    for (const message of ['one', 'two', 'three']) {
      call.write(Buffer.from(message));
      answers.push((await new Promise<Buffer>((resolve) => call.once('data', resolve))).toString());
    }
    call.end();
    await new Promise((resolve) => call.on('status', resolve));
    expect(answers).toEqual(['eno', 'owt', 'eerht']);
  });

  it('retries a call answered UNAVAILABLE before any response header, and tells the upstream which attempt it is', async () => {
    let calls = 0;
    echo.onUnary((call, callback) => {
      calls += 1;
      if (calls < 3) callback({ code: grpc.status.UNAVAILABLE, details: 'warming up' });
      else callback(null, call.request);
    });
    const before = echo.unaryCalls.length;
    const result = await callUnary(client, Buffer.from('payload'));
    expect(result.code).toBe(grpc.status.OK);
    expect(result.response?.toString()).toBe('payload');
    expect(result.metadata.get('x-breakwater-attempts')).toEqual(['3']);
    expect(echo.unaryCalls.slice(before).map((metadata) => metadata.get('x-breakwater-attempt')[0])).toEqual(['1', '2', '3']);
  });

  it('does not retry a call whose response headers reached the caller, even when it ends UNAVAILABLE', async () => {
    let calls = 0;
    echo.onUnary((call, callback) => {
      calls += 1;
      // The headers go out first: the call is committed.
      call.sendMetadata(new grpc.Metadata());
      callback({ code: grpc.status.UNAVAILABLE, details: 'failed after its headers' });
    });
    const result = await callUnary(client, Buffer.from('x'));
    expect(result.code).toBe(grpc.status.UNAVAILABLE);
    expect(result.details).toBe('failed after its headers');
    expect(calls).toBe(1);
  });

  it('leaves a status retryOn does not name alone', async () => {
    let calls = 0;
    echo.onUnary((_call, callback) => {
      calls += 1;
      callback({ code: grpc.status.INTERNAL, details: 'broken' });
    });
    const result = await callUnary(client, Buffer.from('x'));
    expect(result.code).toBe(grpc.status.INTERNAL);
    expect(calls).toBe(1);
  });

  it("sends each attempt grpc-timeout = min(perTryTimeout, what is left of the caller's deadline)", async () => {
    const budgets: number[] = [];
    echo.onUnary((call, callback) => {
      const deadline = call.getDeadline();
      budgets.push((deadline instanceof Date ? deadline.getTime() : deadline) - Date.now());
      callback(null, call.request);
    });
    // A caller with 5 s: each attempt is bounded by the 800 ms per-try timeout.
    await callUnary(client, Buffer.from('x'), { deadlineMs: 5000 });
    // A caller with 300 ms: the attempt gets what is left of those.
    await callUnary(client, Buffer.from('x'), { deadlineMs: 300 });
    expect(budgets[0]).toBeGreaterThan(600);
    expect(budgets[0]).toBeLessThanOrEqual(800);
    expect(budgets[1]).toBeGreaterThan(0);
    expect(budgets[1]).toBeLessThanOrEqual(300);
  });
});

describe("Breakwater's own replies to gRPC callers", () => {
  let echo: EchoServer;
  let proxy: RunningBreakwater;
  let client: EchoClient;

  beforeAll(async () => {
    echo = await startEchoServer();
    proxy = await startBreakwater(`${ephemeralAddresses}
limits: {maxBodyBytes: 100}
upstreams:
  echo: {endpoints: ["http://${echo.address}"], protocol: h2c}
  down: {endpoints: ["http://127.0.0.1:1"], protocol: h2c, connectTimeout: 200ms}
routes:
  - {name: unavailable, match: {pathPrefix: /test.Echo/, headers: {x-case: down}}, upstream: down}
  - {name: slow, match: {pathPrefix: /test.Echo/, headers: {x-case: slow}}, upstream: echo, timeout: 200ms}
  - name: aborted
    match: {pathPrefix: /test.Echo/, headers: {x-case: abort}}
    upstream: echo
    fault: {abort: {percent: 100, status: 503}}
  - name: aborted-internal
    match: {pathPrefix: /test.Echo/, headers: {x-case: abort-internal}}
    upstream: echo
    fault: {abort: {percent: 100, status: 500, grpcStatus: 13}}
  - {name: echo, match: {pathPrefix: /test.Echo/Unary}, upstream: echo}
`);
    client = echoClient(target(proxy));
  });

  afterAll(async () => {
    client.close();
    await proxy.stop();
    await echo.stop();
  });

  const withCase = (value: string): grpc.Metadata => {
    const metadata = new grpc.Metadata();
    metadata.set('x-case', value);
    return metadata;
  };

  it('answers an unreachable upstream with UNAVAILABLE, naming the reason', async () => {
    const result = await callUnary(client, Buffer.from('x'), { metadata: withCase('down') });
    expect(result.code).toBe(grpc.status.UNAVAILABLE);
    expect(result.details).toMatch(/could not connect to http:\/\/127\.0\.0\.1:1: connection refused/);
    expect(result.metadata.get('x-breakwater-reason')).toEqual(['upstream_unavailable']);
  });

  it('answers a route timeout with DEADLINE_EXCEEDED, never UNAVAILABLE', async () => {
    echo.onUnary((call, callback) => {
      // Answers after the route's timeout, once the call is cancelled.
      call.on('cancelled', () => callback(null, call.request));
    });
    const result = await callUnary(client, Buffer.from('x'), { metadata: withCase('slow') });
    echo.onUnary(undefined);
    expect(result.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(result.metadata.get('x-breakwater-reason')).toEqual(['timeout']);
  });

  it('answers a deadline already spent on arrival with DEADLINE_EXCEEDED, without calling the upstream', async () => {
    const before = echo.unaryCalls.length;
    const metadata = new grpc.Metadata();
    // grpc-js computes grpc-timeout from a deadline: one already past is sent as 1 ns or less.
    const result = await new Promise<grpc.ServiceError | null>((resolve) =>
      client.unary(Buffer.from('x'), metadata, { deadline: Date.now() - 1000 }, (error) => resolve(error)),
    );
    // The client may give up by itself first; either way no upstream saw the call.
    expect(result?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(echo.unaryCalls.length).toBe(before);
  });

  it('answers a request with no route with UNIMPLEMENTED', async () => {
    const result = await new Promise<grpc.StatusObject>((resolve) => {
      const call = client.serverStream(Buffer.from([1]));
      call.on('error', () => undefined);
      call.on('status', resolve);
    });
    expect(result.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(result.metadata.get('x-breakwater-reason')).toEqual(['no_route']);
  });

  it('answers a body over maxBodyBytes with RESOURCE_EXHAUSTED, and the upstream connection stays good', async () => {
    // Each oversize body is cut while its attempt streams it upstream over h2c.
    const results = [];
    for (let i = 0; i < 3; i++) results.push(await callUnary(client, Buffer.alloc(500, 1)));
    const after = await callUnary(client, Buffer.from('small'));
    for (const result of results) {
      expect(result.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(result.metadata.get('x-breakwater-reason')).toEqual(['payload_too_large']);
    }
    expect(after.code).toBe(grpc.status.OK);
    expect(after.response?.toString()).toBe('small');
  });

  it("answers an injected abort with the fault's grpcStatus, UNAVAILABLE by default", async () => {
    const byDefault = await callUnary(client, Buffer.from('x'), { metadata: withCase('abort') });
    const configured = await callUnary(client, Buffer.from('x'), { metadata: withCase('abort-internal') });
    expect(byDefault.code).toBe(grpc.status.UNAVAILABLE);
    expect(configured.code).toBe(grpc.status.INTERNAL);
    expect(configured.metadata.get('x-breakwater-reason')).toEqual(['fault_injected']);
  });
});
