// The connection limits of a listener as one client sees them: a slow head gets 408, a request
// whose head arrived runs as long as its route allows, keep-alive ends after
// maxRequestsPerConnection, and a reload changes the limits of a running listener in place.

import { connect, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { configFromYaml, startBreakwater, type RunningBreakwater } from '../support/breakwater.ts';
import { parseResponses } from '../support/raw-http.ts';
import { startUpstream, type UpstreamServer } from '../support/upstream-server.ts';

const config = (upstream: string, inbound: string): string => `
listeners:
  - {name: outbound, address: 127.0.0.1:0}
  - {name: inbound, address: 127.0.0.1:0${inbound}}
telemetry: {address: 127.0.0.1:0}
admin: {address: 127.0.0.1:0}
limits: {headersTimeout: 300ms, idleTimeout: 300ms}
upstreams:
  app: {endpoints: ["${upstream}"]}
routes:
  - {name: app, listener: inbound, match: {pathPrefix: /}, upstream: app, timeout: 10s}
  - {name: app-out, listener: outbound, match: {pathPrefix: /}, upstream: app, timeout: 10s}
`;

/** A raw connection that collects what the server sends and knows when the server closed it. */
function rawConnection(port: number): Promise<{ socket: Socket; text: () => string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    socket.once('error', reject);
    socket.once('connect', () => resolve({ socket, text: () => text, closed }));
  });
}

const responses = (text: string): string[] => parseResponses(text).responses.map((response) => response.head);

describe('connection limits', () => {
  let upstream: UpstreamServer;
  let proxy: RunningBreakwater;
  let port: number;
  let inboundPort: number;

  beforeAll(async () => {
    upstream = await startUpstream((req, res, body) => {
      // /slow answers after longer than the headers and idle timeouts together.
      const delay = req.url === '/slow' ? 700 : 0;
      setTimeout(() => res.end(JSON.stringify({ bodyBytes: body.length })), delay);
    });
    // outbound: headersTimeout and idleTimeout 300ms; inbound waits a second on an idle
    // connection, so that the head of a next request meets its headersTimeout first.
    proxy = await startBreakwater(config(upstream.origin, ', idleTimeout: 1s, maxRequestsPerConnection: 2'));
    port = Number(new URL(proxy.url('outbound')).port);
    inboundPort = Number(new URL(proxy.url('inbound')).port);
  });

  afterAll(async () => {
    await proxy.stop();
    await upstream.close();
  });

  it('answers a head that does not arrive within headersTimeout with 408 and closes the connection', async () => {
    const connection = await rawConnection(port);
    connection.socket.write('GET / HTTP/1.1\r\nHost: app\r\n');

    await connection.closed;

    expect(responses(connection.text())).toHaveLength(1);
    expect(connection.text()).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(connection.text()).toMatch(/\r\nx-breakwater-reason: request_timeout\r\n/);
    expect(connection.text()).toMatch(/"reason":"request_timeout"/);
    await expect.poll(() => proxy.log.accessLines().find((line) => line.reason === 'request_timeout')).toMatchObject({ status: 408 });
  });

  it('times the head of a keep-alive connection’s next request from its first byte, and never serves it late', async () => {
    const connection = await rawConnection(inboundPort);
    connection.socket.write('GET /first HTTP/1.1\r\nHost: app\r\n\r\n');
    await expect.poll(() => responses(connection.text()).length).toBe(1);

    // Half of the next head, then the rest after the server has given up on it.
    connection.socket.write('GET /second HTTP/1.1\r\n');
    await expect.poll(() => responses(connection.text()).length).toBe(2);
    connection.socket.write('Host: app\r\n\r\n');
    await connection.closed;

    expect(responses(connection.text())[1]).toMatch(/^HTTP\/1\.1 408 /);
    expect(upstream.requests.map((r) => r.url)).not.toContain('/second');
  });

  it('never cuts a request whose head arrived: a slow upload and a slow answer outlast both timeouts', async () => {
    // 6 chunks 100 ms apart: the body takes twice headersTimeout and idleTimeout.
    const chunks = Array.from({ length: 6 }, () => 'x'.repeat(100));
    const body = Readable.from(
      (async function* () {
        for (const chunk of chunks) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          yield chunk;
        }
      })(),
    );
    const upload = await request(`${proxy.url('outbound')}/upload`, { method: 'POST', body });
    expect(upload.statusCode).toBe(200);
    expect(await upload.body.json()).toEqual({ bodyBytes: 600 });

    const slow = await request(`${proxy.url('outbound')}/slow`);
    expect(slow.statusCode).toBe(200);
    await slow.body.dump();
  });

  it('closes a keep-alive connection with Connection: close on its maxRequestsPerConnection-th answer', async () => {
    const connection = await rawConnection(inboundPort);
    connection.socket.write('GET /1 HTTP/1.1\r\nHost: app\r\n\r\n');
    await expect.poll(() => responses(connection.text()).length).toBe(1);
    connection.socket.write('GET /2 HTTP/1.1\r\nHost: app\r\n\r\n');

    await connection.closed;

    const [first, second] = responses(connection.text());
    expect(first).toMatch(/\r\nConnection: keep-alive\r\n/i);
    expect(second).toMatch(/\r\nConnection: close\r\n/i);
  });

  it('closes an idle keep-alive connection after idleTimeout', async () => {
    const connection = await rawConnection(port);
    connection.socket.write('GET /idle HTTP/1.1\r\nHost: app\r\n\r\n');

    await connection.closed;

    expect(responses(connection.text())).toHaveLength(1);
    expect(connection.text()).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
  });
});

describe('connection limits on reload', () => {
  let upstream: UpstreamServer;
  let proxy: RunningBreakwater;
  const open: Socket[] = [];

  beforeAll(async () => {
    upstream = await startUpstream();
    proxy = await startBreakwater(config(upstream.origin, ''));
  });

  afterEach(() => {
    for (const socket of open.splice(0)) socket.destroy();
  });

  afterAll(async () => {
    await proxy.stop();
    await upstream.close();
  });

  it('apply to the next connection of the running listener, on the same port', async () => {
    const port = proxy.breakwater.ports.listeners.inbound!;
    await proxy.breakwater.apply(configFromYaml(config(upstream.origin, ', maxConnectionsPerClient: 1')), 'one-per-client');

    // The listener kept its port: it was not restarted.
    expect(proxy.breakwater.ports.listeners.inbound).toBe(port);
    const first = await rawConnection(port);
    open.push(first.socket);
    const second = await rawConnection(port);
    open.push(second.socket);

    // The second connection from the same address is one too many: closed without an answer.
    await second.closed;
    expect(second.text()).toBe('');
    first.socket.write('GET / HTTP/1.1\r\nHost: app\r\n\r\n');
    await expect.poll(() => responses(first.text()).length).toBe(1);
  });
});
