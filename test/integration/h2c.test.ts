import { constants, createServer as createH2Server, type ClientHttp2Stream, type Http2Server, type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from 'node:http2';
import { get as httpGet, type IncomingHttpHeaders } from 'node:http';
import { connect as tcpConnect, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../support/breakwater.ts';
import { h2Request, h2Session } from '../support/h2-client.ts';
import { startUpstream, type UpstreamServer } from '../support/upstream-server.ts';
import { waitFor } from '../support/wait.ts';

/** An HTTP/2 (h2c) upstream that counts its connections and answers as `answer` says. */
interface H2Upstream {
  readonly origin: string;
  readonly sessions: Set<Http2Session>;
  /** Streams open now. */
  inFlight: number;
  answer: (req: Http2ServerRequest, res: Http2ServerResponse) => void;
  close(): Promise<void>;
}

async function startH2Upstream(): Promise<H2Upstream> {
  const upstream: H2Upstream = {
    origin: '',
    sessions: new Set(),
    inFlight: 0,
    answer: (req, res) => {
      req.resume();
      req.on('end', () => res.end(`h2 upstream saw ${req.method} ${req.url}`));
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const server: Http2Server = createH2Server((req, res) => {
    upstream.inFlight += 1;
    res.on('close', () => (upstream.inFlight -= 1));
    upstream.answer(req, res);
  });
  server.on('session', (session: Http2Session) => {
    upstream.sessions.add(session);
    session.on('close', () => upstream.sessions.delete(session));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(upstream, { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
}

/** GET over HTTP/1.1, read whole, with its trailers. */
function http1Get(url: string): Promise<{ status: number; headers: IncomingHttpHeaders; body: string; trailers: NodeJS.Dict<string> }> {
  return new Promise((resolve, reject) => {
    httpGet(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body, trailers: res.trailers }));
    }).on('error', reject);
  });
}

/** The status and body of an HTTP/2 request's response, once it has ended. */
function answerOf(stream: ClientHttp2Stream): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    let status = 0;
    let body = '';
    stream.on('response', (head) => (status = Number(head[':status'])));
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => (body += chunk));
    stream.on('end', () => resolve({ status, body }));
    stream.on('error', reject);
  });
}

describe('HTTP/1.1 and h2c on one port', () => {
  let h1: UpstreamServer;
  let h2: H2Upstream;
  let proxy: RunningBreakwater;

  beforeAll(async () => {
    h1 = await startUpstream();
    h2 = await startH2Upstream();
    proxy = await startBreakwater(`${ephemeralAddresses}
limits: {maxBodyBytes: 1000, maxHeaderBytes: 4KiB, maxResponseHeaderBytes: 16KiB}
upstreams:
  h1: {endpoints: ["${h1.origin}"]}
  h2: {endpoints: ["${h2.origin}"], protocol: h2c, maxConnections: 1}
  flaky: {endpoints: ["${h1.origin}"]}
routes:
  - {name: to-h2, match: {pathPrefix: /h2}, upstream: h2}
  - {name: to-h2-retried, match: {pathPrefix: /retried}, upstream: h2, retry: {maxAttempts: 2, backoff: {type: none}}}
  - {name: flaky, match: {pathPrefix: /flaky}, upstream: flaky, retry: {maxAttempts: 2, retryOn: [503], backoff: {type: none}}}
  - {name: to-h1, match: {pathPrefix: /h1}, upstream: h1}
`);
  });

  afterAll(async () => {
    await proxy.stop();
    await Promise.all([h1.close(), h2.close()]);
  });

  it('serves an HTTP/1.1 client and an HTTP/2 client with prior knowledge on the same port', async () => {
    const before = h1.requests.length;
    const overHttp1 = await http1Get(`${proxy.url()}/h1/one`);
    const session = h2Session(proxy.url());
    const overH2 = await h2Request(session, { ':method': 'POST', ':path': '/h1/two', 'x-custom': 'kept' }, 'hello');
    session.close();

    expect(overHttp1.status).toBe(200);
    expect(JSON.parse(overHttp1.body)).toEqual({ method: 'GET', url: '/h1/one', bodyBytes: 0 });
    expect(overH2.status).toBe(200);
    expect(overH2.headers['x-breakwater-attempts']).toBe('1');
    expect(JSON.parse(overH2.body.toString())).toEqual({ method: 'POST', url: '/h1/two', bodyBytes: 5 });
    // The HTTP/2 request reached the HTTP/1.1 upstream as an ordinary request: Host from its
    // :authority, no pseudo-headers, its own headers kept.
    const seen = h1.requests[before + 1]!;
    expect(seen.headers.host).toBe(new URL(proxy.url()).host);
    expect(seen.headers['x-custom']).toBe('kept');
    expect(seen.rawHeaders.filter((name, index) => index % 2 === 0 && name.startsWith(':'))).toEqual([]);
  });

  it('multiplexes the requests to an h2c upstream over its maxConnections connections', async () => {
    const held: Http2ServerResponse[] = [];
    h2.answer = (req, res) => {
      req.resume();
      held.push(res);
    };
    const session = h2Session(proxy.url());
    const answers = Array.from({ length: 20 }, (_, index) => h2Request(session, { ':path': `/h2/${index}` }));
    // All twenty are open upstream at once, on the one connection maxConnections allows.
    await waitFor('twenty requests open upstream', () => held.length === 20);
    expect(h2.sessions.size).toBe(1);
    for (const res of held) res.end('done');
    const responses = await Promise.all(answers);
    session.close();
    expect(responses.map((response) => response.status)).toEqual(Array(20).fill(200));
    expect(responses.every((response) => response.body.toString() === 'done')).toBe(true);
  });

  it('sends an h2c upstream the HTTP/1.1 head as HTTP/2 fields: Host as :authority, repeats joined, cookies apart', async () => {
    let seen: { headers: IncomingHttpHeaders; rawHeaders: string[] } | undefined;
    h2.answer = (req, res) => {
      seen = { headers: req.headers, rawHeaders: req.rawHeaders };
      req.resume();
      req.on('end', () => res.end('ok'));
    };
    const { port } = new URL(proxy.url());
    const socket = tcpConnect(Number(port), '127.0.0.1');
    socket.write(
      'GET /h2/head HTTP/1.1\r\nHost: shop.example\r\nX-Tag: a\r\nx-tag: b\r\nCookie: one=1\r\nCookie: two=2\r\n' +
        'Keep-Alive: timeout=5\r\nConnection: close\r\n\r\n',
    );
    let reply = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (reply += chunk));
    await new Promise((resolve) => socket.on('close', resolve));

    expect(reply.startsWith('HTTP/1.1 200')).toBe(true);
    expect(seen?.headers[':authority']).toBe('shop.example');
    expect(seen?.headers[':method']).toBe('GET');
    expect(seen?.headers[':path']).toBe('/h2/head');
    expect(seen?.headers['x-tag']).toBe('a, b');
    const names = seen!.rawHeaders.filter((_, index) => index % 2 === 0);
    expect(names.filter((name) => name === 'cookie')).toHaveLength(2);
    expect(names).not.toContain('host');
    expect(names).not.toContain('connection');
    expect(names).not.toContain('keep-alive');
  });

  it('applies the body limit to HTTP/2 requests, declared or streamed', async () => {
    const session = h2Session(proxy.url());
    const declared = await h2Request(session, { ':method': 'POST', ':path': '/h1/big', 'content-length': '2000' }, 'x'.repeat(2000));
    const streamed = await h2Request(session, { ':method': 'POST', ':path': '/h1/big' }, 'x'.repeat(2000));
    session.close();
    for (const response of [declared, streamed]) {
      expect(response.status).toBe(413);
      expect(response.headers['x-breakwater-reason']).toBe('payload_too_large');
    }
  });

  it('says 100 Continue to an HTTP/2 request that waits for it, and refuses any other expectation with 417', async () => {
    const session = h2Session(proxy.url());
    const waiting = session.request({ ':method': 'POST', ':path': '/h1/upload', expect: '100-continue' });
    const continued = new Promise<void>((resolve) => waiting.once('continue', resolve));
    const answered = answerOf(waiting);
    await continued;
    waiting.end('body');
    const unmet = await h2Request(session, { ':method': 'POST', ':path': '/h1/upload', expect: 'something-else' }, 'body');
    const waited = await answered;
    session.close();

    expect(waited.status).toBe(200);
    expect(JSON.parse(waited.body)).toEqual({ method: 'POST', url: '/h1/upload', bodyBytes: 4 });
    expect(unmet.status).toBe(417);
    expect(unmet.headers['x-breakwater-reason']).toBe('expectation_failed');
  });

  it('says 100 Continue to an HTTP/2 request that waits for it on the way to an h2c upstream, and passes its body on', async () => {
    h2.answer = (req, res) => {
      let bytes = 0;
      req.on('data', (chunk: Buffer) => (bytes += chunk.length));
      req.on('end', () => res.end(`${req.method} ${req.url}: ${bytes} bytes, expect ${req.headers.expect ?? 'none'}`));
    };
    const session = h2Session(proxy.url());
    const waiting = session.request({ ':method': 'POST', ':path': '/h2/upload', expect: '100-continue' });
    const answered = answerOf(waiting);
    await new Promise<void>((resolve) => waiting.once('continue', resolve));
    waiting.end('a body of 23 bytes.....');
    const response = await answered;
    session.close();

    expect(response).toEqual({ status: 200, body: 'POST /h2/upload: 23 bytes, expect none' });
  });

  it('refuses an HTTP/2 head over maxHeaderBytes with 431, and keeps the connection', async () => {
    const session = h2Session(proxy.url());
    // Sent before the client has read Breakwater's SETTINGS, so the client does not refuse it itself.
    const big = await h2Request(session, { ':path': '/h1/x', 'x-big': 'a'.repeat(6000) });
    const after = await h2Request(session, { ':path': '/h1/x' });
    session.close();
    expect(big.status).toBe(431);
    expect(big.headers['x-breakwater-reason']).toBe('headers_too_large');
    expect(after.status).toBe(200);
  });

  it('answers 502 when an h2c upstream sends a response head over maxResponseHeaderBytes, as for HTTP/1.1', async () => {
    h2.answer = (req, res) => {
      req.resume();
      res.writeHead(200, { 'x-padding': 'p'.repeat(10_000), 'x-more-padding': 'q'.repeat(10_000) });
      res.end('never passed on');
    };
    const big = await http1Get(`${proxy.url()}/h2/big`);
    h2.answer = (req, res) => {
      req.resume();
      res.end(`within the limit: ${req.url}`);
    };
    const after = await http1Get(`${proxy.url()}/h2/after`);

    expect(big.status).toBe(502);
    expect(big.headers['x-breakwater-reason']).toBe('upstream_invalid_response');
    expect(JSON.parse(big.body).error.message).toBe(
      `${h2.origin} sent an invalid response: response headers over limits.maxResponseHeaderBytes (16384 bytes)`,
    );
    expect(after).toMatchObject({ status: 200, body: 'within the limit: /h2/after' });
  });

  it('sends a POST again when an h2c upstream refused its stream unprocessed', async () => {
    let streams = 0;
    const handled: string[] = [];
    h2.answer = (req, res) => {
      streams += 1;
      if (streams === 1) {
        req.stream.close(constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        handled.push(body);
        res.end('charged once');
      });
    };
    const session = h2Session(proxy.url());
    const charged = await h2Request(session, { ':method': 'POST', ':path': '/retried/charge' }, 'amount=42');
    session.close();

    expect(charged.status).toBe(200);
    expect(charged.body.toString()).toBe('charged once');
    expect(charged.headers['x-breakwater-attempts']).toBe('2');
    expect(handled).toEqual(['amount=42']);
  });

  it('answers HTTP/2 requests with the same policies and replies as HTTP/1.1 ones', async () => {
    let calls = 0;
    h1.respond((_req, res) => {
      calls += 1;
      res.writeHead(calls === 1 ? 503 : 200).end(calls === 1 ? 'busy' : 'ok');
    });
    const session = h2Session(proxy.url());
    const retried = await h2Request(session, { ':path': '/flaky' });
    const unrouted = await h2Request(session, { ':path': '/nowhere' });
    session.close();
    h1.respond((_req, res) => res.end('ok'));

    expect(retried.status).toBe(200);
    expect(retried.headers['x-breakwater-attempts']).toBe('2');
    expect(unrouted.status).toBe(404);
    expect(unrouted.headers['x-breakwater-reason']).toBe('no_route');
    expect(JSON.parse(unrouted.body.toString())).toMatchObject({ error: { reason: 'no_route' } });
  });

  it('passes trailers through unchanged, HTTP/1.1 chunked and HTTP/2, either way round', async () => {
    h1.respond((_req, res) => {
      res.writeHead(200, { trailer: 'x-checksum' });
      res.write('from h1');
      res.addTrailers({ 'x-checksum': 'h1-sum' });
      res.end();
    });
    h2.answer = (req, res) => {
      req.resume();
      res.writeHead(200);
      res.write('from h2');
      res.addTrailers({ 'x-checksum': 'h2-sum' });
      res.end();
    };
    const h1ToH1 = await http1Get(`${proxy.url()}/h1/t`);
    const h2ToH1 = await http1Get(`${proxy.url()}/h2/t`);
    const session = h2Session(proxy.url());
    const h1ToH2 = await h2Request(session, { ':path': '/h1/t' });
    const h2ToH2 = await h2Request(session, { ':path': '/h2/t' });
    session.close();
    h1.respond((_req, res) => res.end('ok'));

    expect([h1ToH1.body, h1ToH1.trailers['x-checksum'], h1ToH1.headers.trailer]).toEqual(['from h1', 'h1-sum', 'x-checksum']);
    expect([h2ToH1.body, h2ToH1.trailers['x-checksum'], h2ToH1.headers['transfer-encoding']]).toEqual(['from h2', 'h2-sum', 'chunked']);
    expect([h1ToH2.body.toString(), h1ToH2.trailers?.['x-checksum']]).toEqual(['from h1', 'h1-sum']);
    expect([h2ToH2.body.toString(), h2ToH2.trailers?.['x-checksum']]).toEqual(['from h2', 'h2-sum']);
  });
});

describe('connection limits and drain for h2c', () => {
  it('counts an h2c connection against maxConnections, and drains it with GOAWAY after its streams end', async () => {
    const h2 = await startH2Upstream();
    const held: Http2ServerResponse[] = [];
    h2.answer = (req, res) => {
      req.resume();
      held.push(res);
    };
    const proxy = await startBreakwater(`${ephemeralAddresses}
limits: {maxConnections: 1}
shutdown: {drainTimeout: 10s}
upstreams:
  h2: {endpoints: ["${h2.origin}"], protocol: h2c}
routes:
  - {name: all, match: {pathPrefix: /}, upstream: h2}
`);
    try {
      const session = h2Session(proxy.url());
      const inFlight = h2Request(session, { ':path': '/slow' });
      await waitFor('the request to reach the upstream', () => held.length === 1);
      // The one connection allowed is the h2c one: another is closed unread.
      const refused = await new Promise<boolean>((resolve) => {
        const socket = tcpConnect(Number(new URL(proxy.url()).port), '127.0.0.1');
        socket.on('error', () => resolve(true));
        socket.on('close', () => resolve(true));
      });
      expect(refused).toBe(true);

      const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()));
      const drained = proxy.breakwater.drain();
      await goaway;
      // The stream in flight still gets its whole answer.
      held[0]!.end('finished');
      const response = await inFlight;
      expect(response.status).toBe(200);
      expect(response.body.toString()).toBe('finished');
      await drained;
    } finally {
      await proxy.stop();
      await h2.close();
    }
  });
});
