// The connections to an h2c endpoint, against a real node:http2 server on loopback: streams
// multiplexed within the server's limit, a new session once the server says GOAWAY or the old
// one has idled, a given-up call cancelled upstream with RST_STREAM, a connection that takes
// too long failing the calls that wait for it, and a close that lets the calls in flight finish.

import http2, { type Http2Server, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { Dispatcher } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/runtime/clock.ts';
import { H2cPool } from '../../src/upstream/h2c-pool.ts';
import { FakeClock } from '../support/fake-clock.ts';
import { waitFor } from '../support/wait.ts';

interface Server {
  readonly origin: string;
  /** Streams open now, and the most open at once. */
  readonly open: { now: number; most: number };
  /** Streams the server holds unanswered, in arrival order. */
  readonly held: ServerHttp2Stream[];
  readonly sessions: ServerHttp2Session[];
  /** RST_STREAM codes of the streams the client closed before their end. */
  readonly resets: number[];
  close(): Promise<void>;
}

const servers: Http2Server[] = [];
const pools: H2cPool[] = [];

afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.destroy()));
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

/** A server that holds every stream until the test answers it; `maxConcurrentStreams` is its SETTINGS limit. */
async function startServer(maxConcurrentStreams?: number): Promise<Server> {
  const server = http2.createServer(maxConcurrentStreams === undefined ? {} : { settings: { maxConcurrentStreams } });
  servers.push(server);
  const open = { now: 0, most: 0 };
  const held: ServerHttp2Stream[] = [];
  const sessions: ServerHttp2Session[] = [];
  const resets: number[] = [];
  server.on('session', (session) => sessions.push(session));
  server.on('stream', (stream) => {
    open.now += 1;
    open.most = Math.max(open.most, open.now);
    stream.on('error', () => undefined);
    stream.on('close', () => {
      open.now -= 1;
      if (stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) resets.push(stream.rstCode);
    });
    stream.resume();
    held.push(stream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    open,
    held,
    sessions,
    resets,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function answer(stream: ServerHttp2Stream, body = 'ok'): void {
  stream.respond({ ':status': 200 });
  stream.end(body);
}

interface Call {
  readonly handler: Dispatcher.DispatchHandler;
  controller?: Dispatcher.DispatchController;
  status?: number;
  body: string;
  ended: boolean;
  error?: Error;
  /** Settles once the call ends or fails. */
  readonly over: Promise<void>;
}

function call(): Call {
  let settle!: () => void;
  const over = new Promise<void>((resolve) => (settle = resolve));
  const state: Call = {
    body: '',
    ended: false,
    over,
    handler: {
      onRequestStart: (controller) => (state.controller = controller),
      onResponseStart: (_controller, status) => (state.status = status),
      onResponseData: (_controller, chunk) => (state.body += chunk.toString()),
      onResponseEnd: () => {
        state.ended = true;
        settle();
      },
      onResponseError: (_controller, error) => {
        state.error = error;
        settle();
      },
    },
  };
  return state;
}

function pool(origin: string, connections: number | null, clock = systemClock, maxHeaderBytes = 64 * 1024): H2cPool {
  const created = new H2cPool(origin, { connections, connectTimeoutMs: 1_000, bodyTimeoutMs: 60_000, maxHeaderBytes, clock });
  pools.push(created);
  return created;
}

const get = { method: 'GET', path: '/', headers: ['host', 'catalog'], body: null };

describe('the h2c connections to an endpoint', () => {
  it('fails a call whose stream the server refused as refused, not as a reset', async () => {
    const server = await startServer();
    const target = pool(server.origin, 1);
    const refused = call();
    const reset = call();
    target.dispatch(get, refused.handler);
    target.dispatch(get, reset.handler);
    await waitFor('both calls to reach the server', () => server.held.length === 2);
    server.held[0]!.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    server.held[1]!.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    await Promise.all([refused.over, reset.over]);

    expect(refused.error).toMatchObject({ code: 'H2C_STREAM_REFUSED' });
    expect(reset.error).toMatchObject({ code: 'ERR_HTTP2_STREAM_ERROR' });
  });

  it('fails a call whose response head is over the limit, cancels its stream and keeps the session', async () => {
    const server = await startServer();
    const target = pool(server.origin, 1, systemClock, 4096);
    const big = call();
    target.dispatch(get, big.handler);
    await waitFor('the call to reach the server', () => server.held.length === 1);
    server.held[0]!.respond({ ':status': 200, 'x-padding': 'p'.repeat(2048), 'x-more-padding': 'q'.repeat(2048) });
    server.held[0]!.write('a body still coming');
    await big.over;

    expect(big.error).toMatchObject({ code: 'H2C_HEADERS_OVERFLOW', message: 'response headers over 4096 bytes' });
    expect(big.status).toBeUndefined();
    await waitFor('the server to see the stream cancelled', () => server.resets.includes(http2.constants.NGHTTP2_CANCEL));

    // A head within the limit, on the same session, passes.
    const small = call();
    target.dispatch(get, small.handler);
    await waitFor('the second call to reach the server', () => server.held.length === 2);
    server.held[1]!.respond({ ':status': 200, 'x-padding': 'p'.repeat(2048) });
    server.held[1]!.end('fits');
    await small.over;
    expect(small).toMatchObject({ status: 200, body: 'fits', ended: true });
    expect(server.sessions).toHaveLength(1);
  });

  it('multiplexes calls over its sessions, never more at once than the server allows', async () => {
    const server = await startServer(2);
    const target = pool(server.origin, 1);
    const calls = Array.from({ length: 5 }, () => call());
    for (const each of calls) target.dispatch(get, each.handler);

    await waitFor('two calls to reach the server', () => server.held.length === 2);
    for (let answered = 0; answered < 5; answered += 1) {
      await waitFor(`call ${answered + 1} to reach the server`, () => server.held.length > answered);
      answer(server.held[answered]!, `answer ${answered}`);
    }
    await Promise.all(calls.map((each) => each.over));

    expect(calls.map((each) => each.body)).toEqual(['answer 0', 'answer 1', 'answer 2', 'answer 3', 'answer 4']);
    expect(server.open.most).toBe(2);
    expect(server.sessions).toHaveLength(1);
  });

  it('sends the next call on a new session once the server has said GOAWAY', async () => {
    const server = await startServer();
    const target = pool(server.origin, 1);
    const first = call();
    target.dispatch(get, first.handler);
    await waitFor('the first call to reach the server', () => server.held.length === 1);
    answer(server.held[0]!);
    await first.over;

    server.sessions[0]!.goaway();
    await waitFor('the pool to retire the session', () => target.sessions === 0);
    const second = call();
    target.dispatch(get, second.handler);
    await waitFor('the second call to reach the server', () => server.held.length === 2);
    answer(server.held[1]!, 'again');
    await second.over;

    expect(second.body).toBe('again');
    expect(server.sessions).toHaveLength(2);
  });

  it('cancels a call it gives up on with RST_STREAM CANCEL, and keeps the session for others', async () => {
    const server = await startServer();
    const target = pool(server.origin, 1);
    const abandoned = call();
    target.dispatch(get, abandoned.handler);
    await waitFor('the call to reach the server', () => server.held.length === 1);

    abandoned.controller!.abort(new Error('the client went away'));
    await waitFor('the server to see the stream reset', () => server.resets.length === 1);
    const next = call();
    target.dispatch(get, next.handler);
    await waitFor('the next call to reach the server', () => server.held.length === 2);
    answer(server.held[1]!);
    await next.over;

    expect(abandoned.error?.message).toBe('the client went away');
    expect(server.resets).toEqual([http2.constants.NGHTTP2_CANCEL]);
    expect(next.status).toBe(200);
    expect(server.sessions).toHaveLength(1);
  });

  it('fails the calls waiting for a connection that is not made within connectTimeout', async () => {
    const server = await startServer();
    const clock = new FakeClock();
    const target = pool(server.origin, 1, clock);
    const waiting = [call(), call()];
    for (const each of waiting) target.dispatch(get, each.handler);

    clock.advance(1_000);
    await Promise.all(waiting.map((each) => each.over));

    for (const each of waiting) expect((each.error as { code?: string } | undefined)?.code).toBe('H2C_CONNECT_TIMEOUT');
    expect(server.held).toHaveLength(0);
  });

  it('closes a session that has carried nothing for a few seconds, and opens another for the next call', { timeout: 30_000 }, async () => {
    const server = await startServer();
    const target = pool(server.origin, 1);
    const first = call();
    target.dispatch(get, first.handler);
    await waitFor('the call to reach the server', () => server.held.length === 1);
    answer(server.held[0]!);
    await first.over;

    // Idle sessions are looked for every 4 s: this one closes 4 to 8 s after its call.
    await waitFor('the idle session to close', () => target.sessions === 0, 20_000);
    const next = call();
    target.dispatch(get, next.handler);
    await waitFor('the next call to reach the server', () => server.held.length === 2);
    answer(server.held[1]!);
    await next.over;

    expect(next.status).toBe(200);
    expect(server.sessions).toHaveLength(2);
  });

  it('closes once the calls in flight have finished, and takes no new ones meanwhile', async () => {
    const server = await startServer();
    const target = pool(server.origin, 1);
    const inFlight = call();
    target.dispatch(get, inFlight.handler);
    await waitFor('the call to reach the server', () => server.held.length === 1);

    let closed = false;
    const closing = target.close().then(() => (closed = true));
    const late = call();
    target.dispatch(get, late.handler);
    await late.over;
    expect(closed).toBe(false);
    answer(server.held[0]!, 'finished');
    await closing;

    expect(inFlight.body).toBe('finished');
    expect(late.error).toBeDefined();
    expect(server.held).toHaveLength(1);
    expect(target.sessions).toBe(0);
  });
});
