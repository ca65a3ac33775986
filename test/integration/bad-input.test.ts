import { connect } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../support/breakwater.ts';
import { rawRequest } from '../support/raw-http.ts';
import { startUpstream, type UpstreamServer } from '../support/upstream-server.ts';

describe('bad input', () => {
  let upstream: UpstreamServer;
  let proxy: RunningBreakwater;
  let port: number;

  beforeAll(async () => {
    upstream = await startUpstream();
    proxy = await startBreakwater(`${ephemeralAddresses}
limits: {maxHeaderBytes: 4KiB, maxBodyBytes: 1KiB}
upstreams:
  app: {endpoints: ["${upstream.origin}"]}
routes:
  - {name: app, match: {pathPrefix: /}, upstream: app}
`);
    port = Number(new URL(proxy.url()).port);
  });

  afterAll(async () => {
    await proxy.stop();
    await upstream.close();
  });

  function statusLine(text: string): string {
    return text.slice(0, text.indexOf('\r\n'));
  }

  it('answers malformed HTTP with 400 and closes the connection', async () => {
    const before = upstream.connections;
    const exchange = await rawRequest(port, 'GARBAGE\r\n\r\n');
    expect(statusLine(exchange.text)).toBe('HTTP/1.1 400 Bad Request');
    expect(exchange.text).toMatch(/x-breakwater-reason: bad_request/);
    expect(exchange.closed).toBe(true);
    expect(upstream.connections).toBe(before);
  });

  it('answers oversized request headers with 431', async () => {
    const exchange = await rawRequest(port, `GET / HTTP/1.1\r\nHost: app\r\nx-big: ${'a'.repeat(8 * 1024)}\r\n\r\n`);
    expect(statusLine(exchange.text)).toBe('HTTP/1.1 431 Request Header Fields Too Large');
    expect(exchange.text).toMatch(/x-breakwater-reason: headers_too_large/);
    expect(exchange.closed).toBe(true);
  });

  it('rejects Content-Length together with Transfer-Encoding before any upstream sees it', async () => {
    const before = upstream.requests.length;
    const exchange = await rawRequest(
      port,
      'POST / HTTP/1.1\r\nHost: app\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app\r\n\r\n',
    );
    expect(statusLine(exchange.text)).toBe('HTTP/1.1 400 Bad Request');
    expect(exchange.closed).toBe(true);
    expect(upstream.requests.length).toBe(before);
  });

  it('rejects two different Content-Length values before any upstream sees them', async () => {
    const before = upstream.requests.length;
    const exchange = await rawRequest(port, 'POST / HTTP/1.1\r\nHost: app\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde');
    expect(statusLine(exchange.text)).toBe('HTTP/1.1 400 Bad Request');
    expect(exchange.closed).toBe(true);
    expect(upstream.requests.length).toBe(before);
  });

  it('refuses a Transfer-Encoding that does not end in chunked, never forwarding it, with one answer', async () => {
    const before = upstream.requests.length;
    const exchange = await rawRequest(port, 'POST /te HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: gzip\r\n\r\nabc');
    expect(statusLine(exchange.text)).toBe('HTTP/1.1 400 Bad Request');
    expect(exchange.text).toMatch(/x-breakwater-reason: bad_request/);
    expect(exchange.text.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    expect(exchange.closed).toBe(true);
    expect(upstream.requests.length).toBe(before);
  });

  it('refuses an HTTP/1.1 request without Host with a reason of its own', async () => {
    const exchange = await rawRequest(port, 'GET /no-host HTTP/1.1\r\n\r\n', 300);
    expect(statusLine(exchange.text)).toBe('HTTP/1.1 400 Bad Request');
    expect(exchange.text).toMatch(/x-breakwater-reason: bad_request/);
    expect(exchange.text).toMatch(/an HTTP\/1\.1 request needs a Host header/);
  });

  it('answers an expectation other than 100-continue with 417 and a reason', async () => {
    const before = upstream.requests.length;
    const exchange = await rawRequest(port, 'GET /expect HTTP/1.1\r\nHost: app\r\nExpect: something-else\r\n\r\n', 300);
    expect(statusLine(exchange.text)).toBe('HTTP/1.1 417 Expectation Failed');
    expect(exchange.text).toMatch(/x-breakwater-reason: expectation_failed/);
    expect(upstream.requests.length).toBe(before);
  });

  it('says 100 Continue only to a request it forwards: a body it would refuse is never asked for', async () => {
    const refused = await rawRequest(port, 'POST /upload HTTP/1.1\r\nHost: app\r\nExpect: 100-continue\r\nContent-Length: 2048\r\n\r\n', 300);
    expect(statusLine(refused.text)).toBe('HTTP/1.1 413 Payload Too Large');

    const accepted = await rawRequest(port, 'POST /upload HTTP/1.1\r\nHost: app\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n', 300);
    expect(statusLine(accepted.text)).toBe('HTTP/1.1 100 Continue');
  });

  it('answers a request once, even when the client gives up on a body it had announced', async () => {
    // Answered before its body arrived (a 504 when the caller's 50 ms run out); then the client closes
    // its side without sending the 5 bytes it announced.
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.write('POST /budget HTTP/1.1\r\nHost: app\r\nx-request-timeout-ms: 50\r\nContent-Length: 5\r\n\r\n');
    await expect.poll(() => text).toMatch(/\r\n\r\n\{.*\}$/);
    socket.end();
    await closed;

    expect(text.match(/HTTP\/1\.1 \d{3} /g)).toEqual(['HTTP/1.1 504 ']);
  });

  it('answers 413 when Content-Length is over the body limit, without dialling the upstream', async () => {
    const before = upstream.requests.length;
    const response = await request(`${proxy.url()}/upload`, { method: 'POST', body: 'x'.repeat(2048) });
    expect(response.statusCode).toBe(413);
    expect(response.headers['x-breakwater-reason']).toBe('payload_too_large');
    await response.body.dump();
    expect(upstream.requests.length).toBe(before);
  });

  it('answers 413 when a chunked body grows past the limit', async () => {
    const exchange = await rawRequest(
      port,
      `POST /upload HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n${'x'.repeat(2048)}\r\n0\r\n\r\n`,
    );
    expect(statusLine(exchange.text)).toBe('HTTP/1.1 413 Payload Too Large');
    expect(exchange.text).toMatch(/x-breakwater-reason: payload_too_large/);
  });

  it('passes a body under the limit', async () => {
    const response = await request(`${proxy.url()}/upload`, { method: 'POST', body: 'x'.repeat(512) });
    expect(response.statusCode).toBe(200);
    expect(await response.body.json()).toMatchObject({ bodyBytes: 512 });
  });

  it('refuses CONNECT with 405, a reason and an access-log line, and dials nothing', async () => {
    const before = upstream.connections;
    const exchange = await rawRequest(port, 'CONNECT app:443 HTTP/1.1\r\nHost: app:443\r\nx-request-id: tunnel-1\r\n\r\n');
    expect(statusLine(exchange.text)).toBe('HTTP/1.1 405 Method Not Allowed');
    expect(exchange.text).toMatch(/x-breakwater-reason: method_not_allowed/);
    expect(exchange.text).toMatch(/allow: GET, HEAD/);
    expect(exchange.text).toMatch(/x-request-id: tunnel-1/);
    expect(exchange.closed).toBe(true);
    expect(upstream.connections).toBe(before);
    await expect.poll(() => proxy.log.accessLines().find((line) => line.requestId === 'tunnel-1')).toMatchObject({
      method: 'CONNECT',
      status: 405,
      reason: 'method_not_allowed',
    });
  });

  it('refuses an upgrade to anything but WebSocket with 501 instead of proxying it as a plain GET', async () => {
    const before = upstream.requests.length;
    const exchange = await rawRequest(
      port,
      'GET /socket HTTP/1.1\r\nHost: app\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n',
    );
    expect(statusLine(exchange.text)).toBe('HTTP/1.1 501 Not Implemented');
    expect(exchange.text).toMatch(/x-breakwater-reason: upgrade_not_supported/);
    expect(exchange.closed).toBe(true);
    expect(upstream.requests.length).toBe(before);
  });
});
