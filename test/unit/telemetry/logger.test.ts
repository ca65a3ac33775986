import { execFile } from 'node:child_process';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createAccessLogger, createLogger, flushLogger, pathOnly, writeAccessLog, type Logger } from '../../../src/telemetry/logger.ts';
import { requestRecord } from '../../support/records.ts';

/** A logger from createLogger (or createAccessLogger) writing into memory instead of stdout. */
function capture(level?: string, create = createLogger): { logger: Logger; raw: () => string; lines: () => Record<string, unknown>[] } {
  let raw = '';
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      raw += chunk.toString();
      done();
    },
  });
  const logger = create(level === undefined ? { destination } : { destination, level });
  return {
    logger,
    raw: () => raw,
    lines: () =>
      raw
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

const answeredByUpstream = requestRecord({
  requestId: '5f1c0a4e-9d0b-4b53-8f1e-2f7e0b1c9a77',
  path: '/charge/42',
  status: 201,
  durationMs: 12.3456789,
  attempts: 2,
});

describe('access log', () => {
  it('writes one line per request with the keys of a request the upstream answered', () => {
    const log = capture(undefined, createAccessLogger);

    writeAccessLog(log.logger, answeredByUpstream);

    expect(log.raw().split('\n').filter(Boolean)).toHaveLength(1);
    const [line] = log.lines();
    expect(Object.keys(line ?? {}).sort()).toEqual(
      ['attempts', 'durationMs', 'level', 'listener', 'method', 'msg', 'path', 'protocol', 'requestId', 'route', 'status', 'time', 'upstream'].sort(),
    );
    expect(line).toMatchObject({
      msg: 'request',
      requestId: answeredByUpstream.requestId,
      listener: 'outbound',
      protocol: 'http1',
      route: 'charge',
      upstream: 'payments',
      method: 'POST',
      path: '/charge/42',
      status: 201,
      attempts: 2,
    });
    expect(line?.durationMs).toBeCloseTo(12.346, 3);
  });

  it('adds trace ids, the local reason and the fallback kind when they exist', () => {
    const log = capture(undefined, createAccessLogger);

    writeAccessLog(log.logger, {
      ...answeredByUpstream,
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      spanId: '00f067aa0ba902b7',
      status: 200,
      reason: 'circuit_open',
      fallback: 'static',
    });

    expect(log.lines()[0]).toMatchObject({
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      spanId: '00f067aa0ba902b7',
      reason: 'circuit_open',
      fallback: 'static',
    });
  });

  it("names a gRPC call's protocol and the grpc-status its client read", () => {
    const log = capture(undefined, createAccessLogger);

    writeAccessLog(log.logger, { ...answeredByUpstream, protocol: 'grpc', status: 200, grpcStatus: 14 });

    expect(log.lines()[0]).toMatchObject({ protocol: 'grpc', status: 200, grpcStatus: 14 });
  });

  it('logs route and upstream as null when no route matched', () => {
    const log = capture(undefined, createAccessLogger);

    writeAccessLog(log.logger, { ...answeredByUpstream, route: undefined, upstream: undefined, status: 404, reason: 'no_route', attempts: 0 });

    expect(log.lines()[0]).toMatchObject({ route: null, upstream: null, status: 404, reason: 'no_route', attempts: 0 });
  });

  it('logs the path without the query string, which may carry tokens', () => {
    const log = capture(undefined, createAccessLogger);

    writeAccessLog(log.logger, { ...answeredByUpstream, path: '/charge/42?access_token=tok-8c1e7d&amount=5' });
    writeAccessLog(log.logger, { ...answeredByUpstream, path: 'http://user:pw-93ab@payments:8080/charge/42?sig=sig-77f0' });

    expect(log.lines().map((line) => line.path)).toEqual(['/charge/42', '/charge/42']);
    for (const secret of ['tok-8c1e7d', 'pw-93ab', 'sig-77f0']) expect(log.raw()).not.toContain(secret);
  });

  it('writes the same line as pino would, the time apart', () => {
    const records = [
      answeredByUpstream,
      { ...answeredByUpstream, route: undefined, upstream: undefined, status: 404, reason: 'no_route', attempts: 0 },
      { ...answeredByUpstream, traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), reason: 'upstream_timeout', detail: 'no answer in "1s"\n\\ \u0001', fallback: 'static' },
      { ...answeredByUpstream, protocol: 'grpc' as const, grpcStatus: 4, durationMs: Number.NaN, path: '/pay.v1.Payments/Charge' },
    ];
    const access = capture(undefined, createAccessLogger);
    const general = capture();
    for (const record of records) {
      writeAccessLog(access.logger, record);
      // A logger not made by createAccessLogger has its request lines written by pino itself.
      writeAccessLog(general.logger, record);
    }
    const withoutTime = (raw: string): string[] => raw.split('\n').map((line) => line.replace(/"time":\d+,/, ''));
    expect(withoutTime(access.raw())).toEqual(withoutTime(general.raw()));
    expect(access.lines().map((line) => typeof line.time)).toEqual(records.map(() => 'number'));
  });

  it('writes no request line when the access logger is above info', () => {
    const log = capture('warn', createAccessLogger);
    writeAccessLog(log.logger, answeredByUpstream);
    expect(log.raw()).toBe('');
  });
});

describe('pathOnly', () => {
  it.each([
    ['/a/b', '/a/b'],
    ['/a/b?x=1', '/a/b'],
    ['/a/b#frag', '/a/b'],
    ['/a?x=1#frag', '/a'],
    ['/a/b/?', '/a/b/'],
    ['http://payments/x/y?z=1', '/x/y'],
    ['http://payments:8080', '/'],
    ['http://payments?z=/not/a/path', '/'],
    ['https://u:p@payments.svc:443/x', '/x'],
    ['*', '*'],
  ])('%s → %s', (target, path) => {
    expect(pathOnly(target)).toBe(path);
  });
});

describe('redaction', () => {
  const secrets = {
    authorization: 'Bearer secret-authz-1f2e',
    'proxy-authorization': 'Basic secret-proxy-3d4c',
    cookie: 'session=secret-cookie-5b6a',
    'set-cookie': ['session=secret-setcookie-7988', 'other=secret-setcookie-a9b8'],
  };
  const secretValues = Object.values(secrets).flat();
  const headers = { ...secrets, 'x-request-id': 'visible-request-id' };
  const shapes: [string, object][] = [
    ['a headers object', { headers }],
    ['request headers', { req: { method: 'GET', url: '/x', headers } }],
    ['response headers', { res: { statusCode: 200, headers } }],
    ['an outgoing request', { request: { headers } }],
    ['an upstream response', { response: { status: 503, headers } }],
    ['an upstream', { upstream: { name: 'payments', headers } }],
    ['an error', { err: { message: 'upstream said no', headers } }],
    ['headers spread into the log object', { ...headers }],
  ];

  it.each(shapes)('never writes credential header values carried by %s', (_shape, object) => {
    const log = capture();

    log.logger.warn(object, 'with headers');

    expect(log.lines()).toHaveLength(1);
    for (const secret of secretValues) expect(log.raw()).not.toContain(secret);
    // The other headers are still logged: only the credentials are hidden.
    expect(log.raw()).toContain('visible-request-id');
    expect(log.raw()).toContain('"cookie":"[redacted]"');
  });

  it('redacts the bindings of a child logger too', () => {
    const log = capture();

    log.logger.child({ req: { headers } }).info('from a child');

    for (const secret of secretValues) expect(log.raw()).not.toContain(secret);
    expect(log.lines()[0]).toMatchObject({ req: { headers: { cookie: '[redacted]', 'set-cookie': '[redacted]', 'x-request-id': 'visible-request-id' } } });
  });
});

describe('logger', () => {
  it('drops lines below the configured level', () => {
    const log = capture('warn');

    log.logger.info('routine');
    log.logger.warn('unusual');

    expect(log.lines().map((line) => line.msg)).toEqual(['unusual']);
  });

  it('writes no pid or hostname', () => {
    const log = capture();

    log.logger.info('hello');

    expect(Object.keys(log.lines()[0] ?? {}).sort()).toEqual(['level', 'msg', 'time']);
  });

  it('flushLogger resolves once the lines are written', async () => {
    const log = capture();

    log.logger.info('before flush');
    await flushLogger(log.logger);

    expect(log.lines().map((line) => line.msg)).toEqual(['before flush']);
  });

  it('delivers every line to stdout when the process exits right after logging', async () => {
    const script = fileURLToPath(new URL('./fixtures/log-then-exit.ts', import.meta.url));

    const { stdout } = await promisify(execFile)(process.execPath, [script], { maxBuffer: 16 * 1024 * 1024 });

    const lines = stdout.split('\n').filter(Boolean);
    expect(lines).toHaveLength(1000);
    expect(JSON.parse(lines[999] ?? '{}')).toMatchObject({ msg: 'request', requestId: 'req-999' });
  });

  it.each([3, 1000])('delivers all of %i batched access-log lines to stdout when the process exits right after logging', async (count) => {
    const script = fileURLToPath(new URL('./fixtures/log-then-exit.ts', import.meta.url));

    const { stdout } = await promisify(execFile)(process.execPath, [script, 'access', String(count)], { maxBuffer: 16 * 1024 * 1024 });

    const lines = stdout.split('\n').filter(Boolean);
    expect(lines.map((line) => (JSON.parse(line) as { requestId: string }).requestId)).toEqual(Array.from({ length: count }, (_, i) => `req-${i}`));
  });
});
