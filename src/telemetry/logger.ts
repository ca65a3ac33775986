// Structured JSON logs on stdout, one access-log line per request. Credentials carried in
// headers must never reach the log, whichever log call carries a headers object, so redaction
// is configured once here on the root logger and every child inherits it.

import { pino, type DestinationStream, type Logger } from 'pino';
import type { RequestRecord, TunnelRecord } from '../exchange/record.ts';
import { systemClock, type Clock } from '../runtime/clock.ts';

export type { Logger } from 'pino';

const secretHeaders = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie'];

/**
 * Where a log call may carry a headers object: on its own (`headers`), under the request,
 * response, upstream or error it belongs to, or spread into the log object. Node and undici
 * deliver header names in lower case, so these spellings are the ones that occur.
 *
 * The paths are spelled out rather than written as `*.headers.cookie`: pino answers a leading
 * wildcard by walking every log object, which made each access-log line many times dearer,
 * and the access log runs once per request.
 */
const headerHolders = ['headers', 'req.headers', 'res.headers', 'request.headers', 'response.headers', 'upstream.headers', 'err.headers'];

const redactPaths = ['', ...headerHolders].flatMap((holder) => secretHeaders.map((name) => `${holder}["${name}"]`));

export interface LoggerOptions {
  /** Where the JSON lines go. Default: stdout, written asynchronously. */
  destination?: DestinationStream;
  /** pino level name. Default: info. */
  level?: string;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  // Asynchronous writes batch lines while a write is pending, so logging never blocks the
  // event loop on a slow stdout. pino flushes this destination synchronously on process exit.
  const destination = opts.destination ?? pino.destination({ dest: 1, sync: false });
  return pino(
    {
      level: opts.level ?? 'info',
      // pid and hostname add nothing in a container: the log collector knows the pod.
      base: undefined,
      redact: { paths: redactPaths, censor: '[redacted]' },
    },
    destination,
  );
}

/** What LineBatch writes to: pino's sonic-boom destination has all three. */
export interface LineSink {
  write(text: string): unknown;
  flush(callback: (error?: Error | null) => void): void;
  flushSync(): void;
}

/**
 * Collects log lines and hands them to a sink at least `minBytes` at a time, joined once into a
 * single string. sonic-boom's own `minLength` appends each line to a growing string and
 * measures its byte length again on every write, copying the whole batch for every line.
 */
export class LineBatch implements DestinationStream {
  readonly #sink: LineSink;
  readonly #minBytes: number;
  #lines: string[] = [];
  #length = 0;

  constructor(sink: LineSink, minBytes: number) {
    this.#sink = sink;
    this.#minBytes = minBytes;
  }

  write(line: string): void {
    this.#lines.push(line);
    this.#length += line.length;
    if (this.#length >= this.#minBytes) this.#handOver();
  }

  /** Hands over what is collected and flushes the sink (pino's `logger.flush()` calls this). */
  flush(callback: (error?: Error | null) => void = () => undefined): void {
    this.#handOver();
    this.#sink.flush(callback);
  }

  /** Hands over what is collected and writes it out before returning (process exit). */
  flushSync(): void {
    this.#handOver();
    this.#sink.flushSync();
  }

  #handOver(): void {
    if (this.#lines.length === 0) return;
    const text = this.#lines.length === 1 ? this.#lines[0]! : this.#lines.join('');
    this.#lines = [];
    this.#length = 0;
    this.#sink.write(text);
  }
}

/** Bytes of access-log lines collected before one write to stdout. */
const accessLogBatchBytes = 12 * 1024;

/**
 * The access log: one line per request, so it is the log's hot path. Its lines carry no
 * headers, so it needs no redaction, and its writes are batched like nginx's `access_log
 * buffer=`: lines collect up to 12 KiB before one write to stdout, and `logger.flush()` (which
 * the app calls every second and at shutdown) writes what is left; so does a process exit.
 */
export function createAccessLogger(opts: LoggerOptions & { clock?: Clock } = {}): Logger {
  let destination = opts.destination;
  if (destination === undefined) {
    const batch = new LineBatch(pino.destination({ dest: 1, sync: false }), accessLogBatchBytes);
    // Before sonic-boom's own exit hook ends stdout, whichever was registered first.
    process.prependListener('exit', () => batch.flushSync());
    destination = batch;
  }
  const logger = pino({ level: opts.level ?? 'info', base: undefined }, destination);
  accessDestinations.set(logger, { destination, clock: opts.clock ?? systemClock });
  return logger;
}

/**
 * The destinations of the loggers createAccessLogger made. Their request lines are written
 * there directly, as pino would write them: pino builds a line by concatenating each field in
 * turn, and a request line per request made that the dearest part of a plain proxied request.
 */
const accessDestinations = new WeakMap<Logger, { readonly destination: DestinationStream; readonly clock: Clock }>();

/** Resolves once every line logged so far has been handed to the destination. */
export function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve, reject) => {
    logger.flush((error) => (error ? reject(error) : resolve()));
  });
}

/**
 * The access-log fields of a request record. Keys with an undefined value are left out of the
 * line by pino, so one object shape serves every request.
 */
function requestFields(entry: RequestRecord) {
  return {
    requestId: entry.requestId,
    traceId: entry.traceId,
    spanId: entry.spanId,
    listener: entry.listener,
    protocol: entry.protocol,
    route: entry.route ?? null,
    upstream: entry.upstream ?? null,
    method: entry.method,
    path: pathOnly(entry.path),
    status: entry.status,
    grpcStatus: entry.grpcStatus,
    durationMs: Math.round(entry.durationMs * 1000) / 1000,
    attempts: entry.attempts,
    reason: entry.reason,
    detail: entry.detail,
    fallback: entry.fallback,
  };
}

/** pino's number for the info level, the one access-log lines are written at. */
const infoLevel = 30;

/** Writes the one access-log line of a finished request (`msg: "request"`). */
export function writeAccessLog(logger: Logger, entry: RequestRecord): void {
  const direct = accessDestinations.get(logger);
  if (direct === undefined || logger.levelVal > infoLevel) {
    logger.info(requestFields(entry), 'request');
    return;
  }
  // pino's own line, key for key: level and time first, fields with an undefined value left
  // out, a non-finite number written as null, the message last. JSON.stringify writes the
  // fields in one native pass; requestId is always among them, so the object is never empty.
  const fields = JSON.stringify(requestFields(entry));
  direct.destination.write(`{"level":${infoLevel},"time":${direct.clock.wallNow()},${fields.slice(1, -1)},"msg":"request"}\n`);
}

/**
 * Writes the one access-log line of a WebSocket, when its tunnel has closed: the request's
 * fields (status 101, the duration up to the close), the handshake's duration, the bytes each
 * way and who closed it.
 */
export function writeTunnelLog(logger: Logger, entry: TunnelRecord): void {
  logger.info(
    {
      ...requestFields(entry),
      handshakeMs: Math.round(entry.handshakeMs * 1000) / 1000,
      bytesToUpstream: entry.bytesToUpstream,
      bytesToClient: entry.bytesToClient,
      closedBy: entry.closedBy,
    },
    'request',
  );
}

const slash = 0x2f;
/** '/', '?' and '#': the characters that end an authority. */
const pathEnd = new Set([slash, 0x3f, 0x23]);

/**
 * The path of a request target, without query string or fragment: queries often carry tokens
 * (`?access_token=`, signed URLs), and the path alone is what an operator reads a log for.
 * An absolute-form target (`http://user:pass@host/x?y`, as sent through HTTP_PROXY) loses its
 * scheme, userinfo and authority too.
 */
export function pathOnly(target: string): string {
  let start = 0;
  if (!target.startsWith('/')) {
    const authority = target.indexOf('//');
    if (authority !== -1) {
      start = authority + 2;
      while (start < target.length && !pathEnd.has(target.charCodeAt(start))) start++;
      // No path after the authority (`http://host` or `http://host?q`) is the root path.
      if (target.charCodeAt(start) !== slash) return '/';
    }
  }
  let end = target.length;
  const query = target.indexOf('?', start);
  if (query !== -1) end = query;
  const fragment = target.indexOf('#', start);
  if (fragment !== -1 && fragment < end) end = fragment;
  return start === 0 && end === target.length ? target : target.slice(start, end);
}

/**
 * Flushes `logger` every second, so a quiet sidecar's access lines still reach the log soon;
 * returns a function that stops it and flushes what is left.
 */
export function flushEverySecond(logger: Logger, clock: Clock): () => void {
  let cancel = (): void => undefined;
  const arm = (): void => {
    cancel = clock.setTimer(1000, () => {
      logger.flush();
      arm();
    });
  };
  arm();
  return () => {
    cancel();
    logger.flush();
  };
}
