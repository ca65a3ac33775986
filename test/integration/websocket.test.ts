import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startBreakwater, type RunningBreakwater } from '../support/breakwater.ts';
import { closed, connectWebSocket, nextMessage, refusedWebSocket, startWebSocketUpstream, type WebSocketUpstream } from '../support/websocket.ts';

const addresses = `
listeners: [{name: outbound, address: 127.0.0.1:0}]
telemetry: {address: 127.0.0.1:0}
admin: {address: 127.0.0.1:0}
`;

function wsUrl(proxy: RunningBreakwater, path: string): string {
  return `${proxy.url().replace('http://', 'ws://')}${path}`;
}

/** The value of `breakwater_websocket_connections` for a route; undefined while it has no series. */
async function openTunnels(proxy: RunningBreakwater, route: string): Promise<number | undefined> {
  const text = await (await request(`${proxy.telemetryUrl}/metrics`)).body.text();
  const line = text.split('\n').find((candidate) => candidate.startsWith(`breakwater_websocket_connections{listener="outbound",route="${route}"}`));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** The access-log line of the request with `requestId`, once it is written. */
async function accessLine(proxy: RunningBreakwater, requestId: string): Promise<Record<string, unknown>> {
  let line: Record<string, unknown> | undefined;
  await expect.poll(() => (line = proxy.log.accessLines().find((candidate) => candidate.requestId === requestId))).toBeDefined();
  return line!;
}

describe('WebSocket through the outbound listener', () => {
  let upstream: WebSocketUpstream;
  let garbage: Server;
  let proxy: RunningBreakwater;
  const clients: WebSocket[] = [];

  /** Opens a WebSocket through Breakwater, closed (if still open) after the test. */
  async function open(path: string, requestId?: string): Promise<WebSocket> {
    const client = await connectWebSocket(wsUrl(proxy, path), requestId === undefined ? {} : { 'x-request-id': requestId });
    clients.push(client);
    return client;
  }

  beforeAll(async () => {
    upstream = await startWebSocketUpstream();
    // Answers any handshake with bytes that are not HTTP.
    garbage = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => socket.end('SSH-2.0-OpenSSH_9.2\r\n\r\n'));
    });
    await new Promise<void>((resolve) => garbage.listen(0, '127.0.0.1', resolve));
    proxy = await startBreakwater(`${addresses}
upstreams:
  chat: {endpoints: ["${upstream.origin}"]}
  garbage: {endpoints: ["http://127.0.0.1:${(garbage.address() as AddressInfo).port}"]}
  down:
    endpoints: ["http://127.0.0.1:1"]
    circuitBreaker: {minRequests: 2, failureRate: 0.5, window: 1m, openFor: 1m}
  mixed: {endpoints: ["http://127.0.0.1:1", "${upstream.origin}"], loadBalancing: round-robin}
  multiplexed: {endpoints: ["${upstream.origin}"], protocol: h2c}
routes:
  - {name: multiplexed, match: {pathPrefix: /multiplexed}, upstream: multiplexed}
  - {name: idle, match: {pathPrefix: /idle}, upstream: chat, timeout: 100ms, websocket: {idleTimeout: 400ms}}
  - {name: short, match: {pathPrefix: /short}, upstream: chat, websocket: {idleTimeout: 0, maxDuration: 300ms}}
  - {name: held, match: {pathPrefix: /held}, upstream: chat, timeout: 300ms}
  - {name: down, match: {pathPrefix: /down}, upstream: down}
  - {name: garbage, match: {pathPrefix: /garbage}, upstream: garbage}
  - {name: chaos, match: {pathPrefix: /chaos}, upstream: chat, fault: {abort: {percent: 100, status: 418}}}
  - name: retried
    match: {pathPrefix: /retried}
    upstream: mixed
    retry: {maxAttempts: 3, retryOn: [connect-failure, 503], backoff: {type: none}}
  - name: refused
    match: {pathPrefix: /refused}
    upstream: chat
    retry: {maxAttempts: 3, retryOn: [connect-failure, 503], backoff: {type: none}}
  - {name: chat, match: {pathPrefix: /}, upstream: chat}
`);
  });

  afterEach(() => {
    for (const client of clients.splice(0)) client.terminate();
    upstream.answer({ kind: 'accept' });
  });

  afterAll(async () => {
    await proxy.stop();
    await upstream.close();
    await new Promise((resolve) => garbage.close(resolve));
  });

  it('carries text and binary messages both ways, as they were sent', async () => {
    const client = await open('/chat');
    const text = nextMessage(client);
    client.send('héllo, upstream');
    expect(await text).toEqual({ data: Buffer.from('héllo, upstream'), binary: false });
    const bytes = randomBytes(1000);
    const binary = nextMessage(client);
    client.send(bytes);
    expect(await binary).toEqual({ data: bytes, binary: true });
  });

  it('passes pings and pongs through, each way', async () => {
    const client = await open('/chat', 'pings');
    const server = await upstream.connection('pings');
    // The upstream's ws answers the client's ping with a pong carrying the same data.
    const pong = new Promise<Buffer>((resolve) => client.once('pong', resolve));
    client.ping('from-client');
    expect((await pong).toString()).toBe('from-client');
    // And the client's ws answers the upstream's.
    const serverPong = new Promise<Buffer>((resolve) => server.once('pong', resolve));
    const clientSawPing = new Promise<Buffer>((resolve) => client.once('ping', resolve));
    server.ping('from-upstream');
    expect((await clientSawPing).toString()).toBe('from-upstream');
    expect((await serverPong).toString()).toBe('from-upstream');
  });

  it('carries a 10 MiB message each way intact, and logs the bytes', async () => {
    const client = await open('/chat', 'big-1');
    const big = randomBytes(10 * 1024 * 1024);
    const echoed = nextMessage(client);
    client.send(big);
    const received = await echoed;
    expect(received.binary).toBe(true);
    expect(received.data.equals(big)).toBe(true);
    const done = closed(client);
    client.close(1000);
    await done;
    const line = await accessLine(proxy, 'big-1');
    // Each way the message and its frame header, a close frame, and nothing else of size.
    expect(line.bytesToUpstream).toBeGreaterThanOrEqual(big.length);
    expect(line.bytesToUpstream).toBeLessThan(big.length + 100);
    expect(line.bytesToClient).toBeGreaterThanOrEqual(big.length);
    expect(line.bytesToClient).toBeLessThan(big.length + 100);
  });

  it("passes the client's close code to the upstream, and writes one access-log line for the tunnel", async () => {
    const client = await open('/chat', 'close-by-client');
    const server = await upstream.connection('close-by-client');
    const serverSaw = closed(server);
    const clientSaw = closed(client);
    client.close(4001, 'client is done');
    expect(await serverSaw).toEqual({ code: 4001, reason: 'client is done' });
    // ws answers a close frame with the same code.
    expect((await clientSaw).code).toBe(4001);
    const line = await accessLine(proxy, 'close-by-client');
    expect(line).toMatchObject({ route: 'chat', upstream: 'chat', method: 'GET', path: '/chat', status: 101, attempts: 1, protocol: 'websocket', closedBy: 'client' });
    expect(line.handshakeMs).toBeLessThanOrEqual(line.durationMs as number);
    expect(proxy.log.accessLines().filter((candidate) => candidate.requestId === 'close-by-client')).toHaveLength(1);
  });

  it("passes the upstream's close code to the client", async () => {
    const client = await open('/chat', 'close-by-upstream');
    const server = await upstream.connection('close-by-upstream');
    const clientSaw = closed(client);
    server.close(4002, 'upstream is done');
    expect(await clientSaw).toEqual({ code: 4002, reason: 'upstream is done' });
    expect(await accessLine(proxy, 'close-by-upstream')).toMatchObject({ closedBy: 'upstream' });
  });

  it("cuts the client's connection when the upstream's is reset", async () => {
    const client = await open('/chat', 'upstream-reset');
    const server = await upstream.connection('upstream-reset');
    const clientSaw = closed(client);
    server.terminate();
    // No close frame came: ws reports 1006, an abnormal closure.
    expect((await clientSaw).code).toBe(1006);
    expect(await accessLine(proxy, 'upstream-reset')).toMatchObject({ closedBy: 'upstream' });
  });

  it("closes an idle tunnel with 1001 to both sides at the route's idleTimeout, and not at its request timeout", async () => {
    const client = await open('/idle', 'idle-1');
    const server = await upstream.connection('idle-1');
    const [clientSaw, serverSaw] = [closed(client), closed(server)];
    // The route's timeout (100 ms) bounded the handshake only: the tunnel ends at its idle timeout.
    expect(await clientSaw).toEqual({ code: 1001, reason: 'idle timeout' });
    expect(await serverSaw).toEqual({ code: 1001, reason: 'idle timeout' });
    const line = await accessLine(proxy, 'idle-1');
    expect(line).toMatchObject({ route: 'idle', closedBy: 'idle_timeout' });
    expect(line.durationMs).toBeGreaterThanOrEqual(400);
  });

  it('closes a tunnel with 1001 to both sides at its maxDuration', async () => {
    const client = await open('/short', 'short-1');
    const server = await upstream.connection('short-1');
    const [clientSaw, serverSaw] = [closed(client), closed(server)];
    expect(await clientSaw).toEqual({ code: 1001, reason: 'maximum duration reached' });
    expect(await serverSaw).toEqual({ code: 1001, reason: 'maximum duration reached' });
    expect(await accessLine(proxy, 'short-1')).toMatchObject({ route: 'short', closedBy: 'max_duration' });
  });

  it('counts open tunnels in breakwater_websocket_connections by route', async () => {
    const first = await open('/chat');
    const second = await open('/chat');
    await expect.poll(() => openTunnels(proxy, 'chat')).toBe(2);
    const firstClosed = closed(first);
    first.close(1000);
    await firstClosed;
    await expect.poll(() => openTunnels(proxy, 'chat')).toBe(1);
    const secondClosed = closed(second);
    second.close(1000);
    await secondClosed;
    await expect.poll(() => openTunnels(proxy, 'chat')).toBe(0);
  });

  it("passes an upstream's refusal of the handshake to the client as a normal response", async () => {
    upstream.answer({ kind: 'refuse', status: 403, body: 'not you' });
    const refused = await refusedWebSocket(wsUrl(proxy, '/chat'), { 'x-request-id': 'refused-1' });
    expect(refused.status).toBe(403);
    expect(refused.body).toBe('not you');
    expect(refused.headers['x-refused-by']).toBe('upstream');
    expect(refused.headers['x-breakwater-reason']).toBeUndefined();
    expect(await accessLine(proxy, 'refused-1')).toMatchObject({ status: 403, route: 'chat', protocol: 'websocket' });
  });

  it('does not retry a handshake the upstream refused, even for a status the route retries', async () => {
    upstream.answer({ kind: 'refuse', status: 503, body: 'busy' });
    const before = upstream.handshakes.length;
    const refused = await refusedWebSocket(wsUrl(proxy, '/refused'));
    expect(refused.status).toBe(503);
    expect(refused.headers['x-breakwater-attempts']).toBe('1');
    expect(upstream.handshakes.length - before).toBe(1);
  });

  it('retries a handshake that could not connect, on another endpoint', async () => {
    // Round-robin over a dead endpoint and a live one: of two handshakes, at least one is sent
    // to the dead one first, and both open.
    const first = await refusedOrOpen('/retried');
    const second = await refusedOrOpen('/retried');
    expect([first, second]).toContain('2');

    async function refusedOrOpen(path: string): Promise<string> {
      const client = new WebSocket(wsUrl(proxy, path), { perMessageDeflate: false });
      clients.push(client);
      let attempts = '';
      client.once('upgrade', (response) => (attempts = String(response.headers['x-breakwater-attempts'])));
      await new Promise((resolve, reject) => {
        client.once('open', resolve);
        client.once('error', reject);
      });
      return attempts;
    }
  });

  it('answers 503 with its reason when the upstream cannot be reached, and 503 circuit_open once its breaker opens', async () => {
    for (const requestId of ['down-1', 'down-2']) {
      const refused = await refusedWebSocket(wsUrl(proxy, '/down'), { 'x-request-id': requestId });
      expect(refused.status).toBe(503);
      expect(refused.headers['x-breakwater-reason']).toBe('upstream_unavailable');
      expect(refused.headers['x-request-id']).toBe(requestId);
      expect(JSON.parse(refused.body)).toMatchObject({ error: { reason: 'upstream_unavailable', route: 'down', upstream: 'down', requestId } });
    }
    const tripped = await refusedWebSocket(wsUrl(proxy, '/down'));
    expect(tripped.status).toBe(503);
    expect(tripped.headers['x-breakwater-reason']).toBe('circuit_open');
    expect(await accessLine(proxy, 'down-1')).toMatchObject({ status: 503, reason: 'upstream_unavailable', protocol: 'websocket', route: 'down' });
  });

  it('answers 504 timeout when the upstream does not answer the handshake within the route timeout', async () => {
    upstream.answer({ kind: 'hold' });
    const refused = await refusedWebSocket(wsUrl(proxy, '/held'));
    expect(refused.status).toBe(504);
    expect(refused.headers['x-breakwater-reason']).toBe('timeout');
  });

  it('answers 502 when the upstream answers the handshake with something that is not HTTP', async () => {
    const refused = await refusedWebSocket(wsUrl(proxy, '/garbage'));
    expect(refused.status).toBe(502);
    expect(refused.headers['x-breakwater-reason']).toBe('upstream_invalid_response');
  });

  it('refuses a handshake whose upstream speaks h2c with 501, saying why', async () => {
    const refused = await refusedWebSocket(wsUrl(proxy, '/multiplexed'));
    expect(refused.status).toBe(501);
    expect(refused.headers['x-breakwater-reason']).toBe('upgrade_not_supported');
    expect(JSON.parse(refused.body)).toMatchObject({ error: { reason: 'upgrade_not_supported', route: 'multiplexed', upstream: 'multiplexed', message: expect.stringContaining('protocol: http1') } });
  });

  it("answers with the route's injected fault", async () => {
    const refused = await refusedWebSocket(wsUrl(proxy, '/chaos'));
    expect(refused.status).toBe(418);
    expect(refused.headers['x-breakwater-reason']).toBe('fault_injected');
  });
});

describe('WebSocket tunnels across a reload and a drain', () => {
  let upstream: WebSocketUpstream;
  let proxy: RunningBreakwater | undefined;

  beforeAll(async () => {
    upstream = await startWebSocketUpstream();
  });

  afterEach(async () => {
    await proxy?.stop();
    proxy = undefined;
  });

  afterAll(async () => {
    await upstream.close();
  });

  function config(routes: string, drainTimeout = '20s'): string {
    return `${addresses}
shutdown: {drainTimeout: ${drainTimeout}}
upstreams:
  chat: {endpoints: ["${upstream.origin}"]}
routes:
${routes}
`;
  }

  it('keeps a tunnel open across a reload that removes its route', async () => {
    proxy = await startBreakwater(config('  - {name: chat, match: {pathPrefix: /chat}, upstream: chat, websocket: {idleTimeout: 10m}}'));
    const client = await connectWebSocket(wsUrl(proxy, '/chat'));
    await writeFile(proxy.configPath, config('  - {name: other, match: {pathPrefix: /other}, upstream: chat}'));
    expect(await proxy.breakwater.reload()).toEqual({ ok: true, changed: true });
    // New handshakes follow the new routes.
    expect((await refusedWebSocket(wsUrl(proxy, '/chat'))).status).toBe(404);
    // The open tunnel carries on.
    const echoed = nextMessage(client);
    client.send('still here');
    expect((await echoed).data.toString()).toBe('still here');
    expect(await openTunnels(proxy, 'chat')).toBe(1);
    client.terminate();
  });

  it('lets the tunnels of a listener a reload replaces run on, and closes them at the drain', async () => {
    const withLimit = (maxConcurrent: number): string =>
      `${config('  - {name: chat, match: {pathPrefix: /}, upstream: chat}', '500ms')}`.replace(
        '{name: outbound, address: 127.0.0.1:0}',
        `{name: outbound, address: 127.0.0.1:0, maxConcurrent: ${maxConcurrent}}`,
      );
    proxy = await startBreakwater(withLimit(100));
    const running = proxy;
    const client = await connectWebSocket(wsUrl(proxy, '/chat'), { 'x-request-id': 'on-old-listener' });
    const clientSaw = closed(client);
    // A new maxConcurrent starts a new listener; the reload does not wait for the old one's tunnel.
    await writeFile(proxy.configPath, withLimit(200));
    expect(await proxy.breakwater.reload()).toEqual({ ok: true, changed: true });
    const echoed = nextMessage(client);
    client.send('old listener, still open');
    expect((await echoed).data.toString()).toBe('old listener, still open');
    proxy = undefined;
    await running.stop();
    expect(await clientSaw).toEqual({ code: 1001, reason: 'proxy shutting down' });
  });

  it('keeps tunnels open while draining, and closes them with 1001 to both sides when the drain timeout ends', async () => {
    proxy = await startBreakwater(config('  - {name: chat, match: {pathPrefix: /}, upstream: chat}', '1500ms'));
    const running = proxy;
    const client = await connectWebSocket(wsUrl(proxy, '/chat'), { 'x-request-id': 'drained' });
    const server = await upstream.connection('drained');
    const [clientSaw, serverSaw] = [closed(client), closed(server)];
    const stopped = running.stop();
    proxy = undefined;
    // Draining: the tunnel still carries messages.
    const echoed = nextMessage(client);
    client.send('during the drain');
    expect((await echoed).data.toString()).toBe('during the drain');
    expect(await clientSaw).toEqual({ code: 1001, reason: 'proxy shutting down' });
    expect(await serverSaw).toEqual({ code: 1001, reason: 'proxy shutting down' });
    await stopped;
    expect(running.log.accessLines().find((line) => line.requestId === 'drained')).toMatchObject({ status: 101, closedBy: 'drain' });
    expect(running.log.lines.find((line) => line.msg === 'drain timeout: closed the remaining connections')).toMatchObject({ websockets: 1 });
  });
});
