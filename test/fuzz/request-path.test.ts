// Property-based fuzzing of the request path: request heads generated around the edges of
// HTTP/1.1 (framing headers, obs-fold, odd methods and targets, huge, empty and invalid header
// values, bare LF line ends) are sent raw, one per connection. Whatever they are, Breakwater
// never crashes, never forwards a request it refused itself, never sends two responses on one
// connection, and keeps no connection, request or memory once the clients are gone.
//
// `npm test` runs a few dozen cases; `npm run fuzz` runs thousands (BREAKWATER_FUZZ_RUNS, and
// BREAKWATER_FUZZ_SEED to replay a failure fast-check reported).

import { connect } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBreakwater, type RunningBreakwater } from '../support/breakwater.ts';
import { parseResponses } from '../support/raw-http.ts';
import { startUpstream, type UpstreamServer } from '../support/upstream-server.ts';

const runs = Number(process.env.BREAKWATER_FUZZ_RUNS ?? 100);
const seed = process.env.BREAKWATER_FUZZ_SEED === undefined ? undefined : Number(process.env.BREAKWATER_FUZZ_SEED);

/** The replies Breakwater makes without routing a request: none of these may reach an upstream. */
const refusals = new Set(['bad_request', 'headers_too_large', 'method_not_allowed', 'upgrade_not_supported', 'request_timeout']);

// ---- generators -------------------------------------------------------------------------------

const tokenChar = fc.constantFrom(...'!#$%&\'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ');
/**
 * Bytes that have no place in a head: controls, DEL, bytes above 0x7f, a lone CR. A lone LF is
 * left out: it may end a line, so it could split one request into two, and this test sends one
 * request per connection. (Every line may still end in a bare LF: see `lineEnd`.)
 */
const invalidByte = fc.constantFrom('\u0000', '\u0001', '\u0008', '\u000b', '\u001f', '\u007f', '\u0080', '\u00ff', '\r', ' ', '\t', '"', '(', ':');
const anyChar = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...'abcxyz019-_./?=&%:; ') }, { weight: 1, arbitrary: invalidByte });

// Each part is mostly well formed, so that most requests get through the parser and the ones
// that do not are refused for one odd part, not five.
const method = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom('GET', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE') },
  { weight: 2, arbitrary: fc.constantFrom('CONNECT', 'PRI', 'M-SEARCH', 'PROPFIND', 'get', 'Get', '') },
  { weight: 1, arbitrary: fc.string({ unit: tokenChar, minLength: 1, maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: anyChar, minLength: 1, maxLength: 6 }) },
);

const target = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('/', '/a/b?c=d&e', 'http://app/x', 'HTTP://APP/X?y', 'http://app', 'http://app:80/x') },
  {
    weight: 3,
    arbitrary: fc.constantFrom('*', 'http://user:pw@app/x', 'http://[::1]:8080/x', 'https://app/x', 'ftp://app/x', 'app:443', '//double', '/%00', '/%zz', '/a b', ''),
  },
  { weight: 3, arbitrary: fc.string({ unit: anyChar, maxLength: 40 }).map((path) => `/${path}`) },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: 20_000 }).map((length) => `/${'a'.repeat(length)}`) },
);

const version = fc.oneof(
  { weight: 12, arbitrary: fc.constant('HTTP/1.1') },
  { weight: 2, arbitrary: fc.constant('HTTP/1.0') },
  { weight: 2, arbitrary: fc.constantFrom('HTTP/2.0', 'HTTP/0.9', 'http/1.1', 'HTTP/1.10', 'HTTP/1', 'HTTP/1.1 ', '') },
);

const headerName = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.constantFrom('Host', 'host', 'Content-Length', 'content-length', 'Transfer-Encoding', 'Connection', 'Expect', 'Upgrade', 'TE', 'Trailer', 'Keep-Alive', 'Proxy-Connection', 'X-Forwarded-For', 'x-request-id', 'x-request-timeout-ms', 'grpc-timeout', 'traceparent', 'X-A', 'Accept', 'Cookie'),
  },
  { weight: 2, arbitrary: fc.string({ unit: tokenChar, minLength: 1, maxLength: 20 }) },
  { weight: 1, arbitrary: fc.constantFrom('', 'X Y', 'X:Y', '(x)', ' Host', 'Host ', 'X\u0000', 'Ä', 'Content-Length\u000b') },
);

const headerValue = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.constantFrom('', ' ', 'app', 'app:80', 'other', 'chunked', 'Chunked', 'gzip, chunked', 'chunked, gzip', 'identity', 'chunked\u000b', '0', '5', '-1', '+5', ' 5 ', '5, 5', '5,6', '0x5', 'abc', '99999999999999999999', 'close', 'keep-alive', 'Upgrade', 'upgrade, close', '100-continue', 'websocket', 'h2c', 'trailers', '100', '1S', 'x', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'),
  },
  { weight: 2, arbitrary: fc.string({ unit: fc.constantFrom(...'abcxyz019-_./?=&%:; '), maxLength: 30 }) },
  { weight: 1, arbitrary: fc.string({ unit: anyChar, maxLength: 30 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: 20_000 }).map((length) => 'v'.repeat(length)) },
);

/** How a header line is written: its separator, and whether it is folded onto a next line (obs-fold). */
const headerLine = fc
  .record({
    name: headerName,
    value: headerValue,
    separator: fc.oneof({ weight: 12, arbitrary: fc.constant(': ') }, { weight: 1, arbitrary: fc.constantFrom(':', ' : ', ':\t') }),
    fold: fc.oneof({ weight: 15, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom(' continued', '\tmore', ' ') }),
  })
  .map(({ name, value, separator, fold }) => `${name}${separator}${value}${fold === null ? '' : `\r\n${fold}`}`);

/**
 * A body that never runs past the framing the head declares, so that the connection carries one
 * request and no more: chunked bodies (whole, cut short, with an extension or a trailer, or with
 * a bad size) when a Transfer-Encoding header is there; else at most the smallest plain
 * Content-Length of a–z bytes; else none.
 */
function bodyFor(headers: readonly string[]): fc.Arbitrary<string> {
  const named = (name: string) => headers.filter((line) => line.slice(0, line.indexOf(':')).toLowerCase() === name).map((line) => line.slice(line.indexOf(':') + 1));
  if (named('transfer-encoding').length > 0) {
    return fc.constantFrom('', '5\r\nhello\r\n0\r\n\r\n', '5\r\nhello\r\n', '5;ext=1\r\nhello\r\n0\r\n\r\n', 'zz\r\nhello\r\n0\r\n\r\n', '0\r\n\r\n', '0\r\nx-trailer: y\r\n\r\n', '3\r\nab');
  }
  const lengths = named('content-length')
    .filter((value) => /^[ \t]*\d+[ \t]*$/.test(value))
    .map((value) => Math.min(Number(value.trim()), 64));
  if (lengths.length === 0) return fc.constant('');
  return fc.integer({ min: 0, max: Math.min(...lengths) }).map((length) => 'b'.repeat(length));
}

interface Case {
  readonly requestLine: string;
  readonly lineEnd: string;
  readonly headers: readonly string[];
  readonly body: string;
  readonly isHead: boolean;
}

const cases: fc.Arbitrary<Case> = fc
  .record({
    method,
    target,
    version,
    lineEnd: fc.constantFrom('\r\n', '\r\n', '\r\n', '\r\n', '\r\n', '\n'),
    host: fc.integer({ min: 0, max: 9 }).map((draw) => draw > 0),
    headers: fc.array(headerLine, { maxLength: 3 }),
  })
  .chain(({ method: m, target: t, version: v, lineEnd, host, headers }) =>
    bodyFor(headers).map((body) => ({
      requestLine: `${m} ${t} ${v}`,
      lineEnd,
      headers: host ? ['Host: app', ...headers] : headers,
      body,
      isHead: m === 'HEAD',
    })),
  );

// ---- one exchange on its own connection ---------------------------------------------------------

interface Exchange {
  readonly text: string;
  /** True when the connection was still open after the wait and the test closed it. */
  readonly hung: boolean;
}

/**
 * Sends `payload` on a new connection and reads what comes back: until a whole response plus a
 * little more time for a second one, or until the server is quiet; then closes its own side and
 * reads to the server's close. Bounded: the connection is destroyed after a few seconds.
 */
function exchange(port: number, payload: string, isHead: boolean): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    let ended = false;
    let timer: NodeJS.Timeout | undefined;
    const end = (): void => {
      if (ended) return;
      ended = true;
      socket.end();
    };
    const wait = (ms: number): void => {
      clearTimeout(timer);
      timer = setTimeout(end, ms);
    };
    const hardStop = setTimeout(() => {
      socket.destroy();
      resolve({ text, hung: true });
    }, 5000);
    socket.on('connect', () => {
      socket.write(payload, 'latin1');
      // A head or body Breakwater waits the rest of is ended by the client, as a client that gives up.
      wait(150);
    });
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      // A whole response: a little longer, in case a second one follows; else as long again.
      wait(parseResponses(text, { head: isHead }).responses.length > 0 ? 30 : 150);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      clearTimeout(hardStop);
      resolve({ text, hung: false });
    });
  });
}

function forceGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

describe('fuzzing the request path', () => {
  let upstream: UpstreamServer;
  let proxy: RunningBreakwater;
  let port: number;
  const seen = new Set<string>();

  beforeAll(async () => {
    upstream = await startUpstream((req, res) => {
      const id = req.headers['x-fuzz-id'];
      if (typeof id === 'string') seen.add(id);
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
      res.end('ok');
    });
    proxy = await startBreakwater(`
listeners:
  - {name: outbound, address: 127.0.0.1:0}
telemetry: {address: 127.0.0.1:0}
admin: {address: 127.0.0.1:0}
limits: {maxHeaderBytes: 8KiB, maxBodyBytes: 1KiB, headersTimeout: 1s, idleTimeout: 1s}
upstreams:
  app: {endpoints: ["${upstream.origin}"]}
routes:
  - {name: app, match: {pathPrefix: /}, upstream: app, timeout: 2s}
`);
    port = Number(new URL(proxy.url()).port);
  });

  afterAll(async () => {
    await proxy.stop();
    await upstream.close();
  });

  it(
    'never crashes, forwards nothing it refused, and sends at most one response per connection',
    async () => {
      const gc = forceGc();
      gc();
      const heapBefore = process.memoryUsage().heapUsed;
      let id = 0;
      const outcomes = new Map<string, number>();

      await fc.assert(
        fc.asyncProperty(cases, async (generated) => {
          const fuzzId = `fuzz-${++id}`;
          const { requestLine, lineEnd, headers } = generated;
          const payload = `${requestLine}${lineEnd}x-fuzz-id: ${fuzzId}\r\n${headers.map((line) => `${line}${lineEnd}`).join('')}${lineEnd}${generated.body}`;
          const result = await exchange(port, payload, generated.isHead);
          const parsed = parseResponses(result.text, { head: generated.isHead });
          const rest = parsed.rest;
          // Final answers; a 100 Continue before one is part of the same exchange.
          const responses = parsed.responses.filter((response) => response.status >= 200);
          expect(parsed.responses.length - responses.length).toBeLessThanOrEqual(1);

          // Once the client has closed its side, Breakwater closes the connection.
          expect(result.hung).toBe(false);
          // At most one final response, and nothing on the wire that is not part of one.
          expect(responses.length).toBeLessThanOrEqual(1);
          expect(rest).toBe('');
          const response = responses[0];
          const reason = response?.headers['x-breakwater-reason'];
          const outcome = response === undefined ? 'no answer' : seen.has(fuzzId) ? 'forwarded' : (reason ?? 'unnamed');
          outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
          // An answer Breakwater made itself names its reason.
          if (response !== undefined && !seen.has(fuzzId)) expect(reason).toBeDefined();
          // A request Breakwater refused never reached the upstream, and one it forwarded was not refused.
          if (response !== undefined && (response.status === 400 || (reason !== undefined && refusals.has(reason)))) {
            expect(seen.has(fuzzId)).toBe(false);
          }
          if (seen.has(fuzzId) && reason !== undefined) expect(refusals.has(reason)).toBe(false);
        }),
        { numRuns: runs, ...(seed === undefined ? {} : { seed }), endOnFailure: false },
      );

      // How the cases ended, for whoever reads the output of a long run.
      console.log(`fuzzed ${runs} requests:`, Object.fromEntries(outcomes));
      // Still serving, and nothing of the fuzzed clients is left open.
      const check = await request(`${proxy.url()}/still-there`, { headers: { host: 'app' } });
      await check.body.dump();
      expect(check.statusCode).toBe(200);
      const metric = async (name: string): Promise<number> => {
        const text = await (await request(`${proxy.telemetryUrl}/metrics`)).body.text();
        const line = text.split('\n').find((candidate) => candidate.startsWith(`${name}{listener="outbound"}`));
        return Number(line?.slice(line.lastIndexOf(' ') + 1));
      };
      await expect.poll(() => metric('breakwater_requests_in_flight'), { timeout: 5000 }).toBe(0);
      await expect.poll(() => metric('breakwater_connections'), { timeout: 5000 }).toBe(0);
      gc();
      // A few megabytes of caches and compiled code; a leak per request would grow with the runs.
      expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(32 * 1024 * 1024);
    },
    runs * 6000 + 60_000,
  );
});
