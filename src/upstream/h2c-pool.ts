// The connections to one h2c endpoint, on node:http2's client session: HTTP/2 with prior
// knowledge, each session carrying many streams at once, up to `connections` sessions. It
// takes an attempt as undici's Pool does (dispatch with a handler and its controller), so the
// forwarder treats both kinds of upstream alike; undici's HTTP/2 client did this before, at a
// cost per call this one avoids (docs/decisions/0017-h2c-upstream-on-node-http2.md).

import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders, IncomingHttpStatusHeader } from 'node:http2';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Clock } from '../runtime/clock.ts';

/** Streams one session carries at once when its server allows as many (undici's and a Node server's default). */
const streamsPerSession = 100;

/**
 * A session that has carried no stream for this long (up to twice as long) is closed, as undici
 * closed an idle connection (its keep-alive default): a connection kept open to an upstream that
 * went away without a word would otherwise take the next calls, and they would wait for their
 * timeouts.
 */
const idleSessionMs = 4_000;

// HTTP/2's own numbers (RFC 9113): node:http2 itself is loaded at the first connection, so that
// a sidecar without h2c upstreams never holds it (docs/decisions/0014-memory-budget.md).
/** The NO_ERROR, REFUSED_STREAM and CANCEL error codes of RST_STREAM and GOAWAY. */
const NGHTTP2_NO_ERROR = 0x0;
const NGHTTP2_REFUSED_STREAM = 0x7;
const NGHTTP2_CANCEL = 0x8;
/** The END_STREAM flag of a HEADERS frame. */
const NGHTTP2_FLAG_END_STREAM = 0x1;

/** Codes of the errors this pool makes itself, as errors.ts classifies them. */
export const h2cErrorCodes = {
  connectTimeout: 'H2C_CONNECT_TIMEOUT',
  bodyTimeout: 'H2C_BODY_TIMEOUT',
  closed: 'H2C_CLOSED',
  reset: 'H2C_STREAM_RESET',
  headersOverflow: 'H2C_HEADERS_OVERFLOW',
  refused: 'H2C_STREAM_REFUSED',
} as const;

function codedError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

export interface H2cPoolOptions {
  /** Sessions open at once; null: as many as the load needs. */
  readonly connections: number | null;
  readonly connectTimeoutMs: number;
  /** Silence between two pieces of a response body that fails the attempt. */
  readonly bodyTimeoutMs: number;
  /** Response heads larger than this fail the attempt (limits.maxResponseHeaderBytes). */
  readonly maxHeaderBytes: number;
  readonly clock: Clock;
}

export type DispatchOptions = Pick<Dispatcher.DispatchOptions, 'method' | 'path' | 'headers' | 'body'>;

/** The request-header names HTTP/2 forbids (RFC 9113 8.2.2); `te` passes only as "trailers". */
const connectionSpecific = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'http2-settings']);

/** In a head requestHead makes: where the :authority value sits, and where the regular fields start. */
const authorityValueAt = 7;
const firstFieldAt = 8;

/** Where `name` sits among the regular fields of `head`, or -1. */
function fieldIndex(head: readonly string[], name: string): number {
  for (let i = firstFieldAt; i < head.length; i += 2) if (head[i] === name) return i;
  return -1;
}

/**
 * The request's head as node:http2 takes it, a flat [name, value, ...] list: pseudo-headers
 * from the request line and the Host header, repeated fields joined with a comma (cookies kept
 * apart), and the fields HTTP/2 has no place for left out. A list rather than an object:
 * node:http2 copies an object's fields into a dictionary of its own for each request, and the
 * stream holds that copy as long as it lives.
 */
function requestHead(options: DispatchOptions, defaultAuthority: string, bodyLength: number | null): string[] {
  const head = [':method', options.method, ':path', options.path, ':scheme', 'http', ':authority', defaultAuthority];
  let hasLength = false;
  const list = options.headers as string[] | null | undefined;
  if (list != null) {
    for (let i = 0; i < list.length; i += 2) {
      const name = list[i]!.toLowerCase();
      const value = list[i + 1]!;
      if (connectionSpecific.has(name)) {
        if (name === 'host') head[authorityValueAt] = value;
        continue;
      }
      if (name === 'te' && value.trim().toLowerCase() !== 'trailers') continue;
      if (name === 'content-length') hasLength = true;
      const at = name === 'cookie' ? -1 : fieldIndex(head, name);
      if (at === -1) head.push(name, value);
      else head[at + 1] = `${head[at + 1]!}, ${value}`;
    }
  }
  if (bodyLength !== null && !hasLength) head.push('content-length', String(bodyLength));
  return head;
}

/**
 * The size of a response head as limits.maxResponseHeaderBytes counts it: each field's name and
 * value. node:http2 takes any size its peer sends (it announces a SETTINGS_MAX_HEADER_LIST_SIZE
 * but does not hold the peer to it), so the limit an HTTP/1.1 head meets is applied here.
 */
function headBytes(headers: IncomingHttpHeaders & IncomingHttpStatusHeader): number {
  let bytes = 0;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (typeof value === 'string') bytes += name.length + value.length;
    else if (Array.isArray(value)) for (const each of value) bytes += name.length + each.length;
    else bytes += name.length + String(value).length;
  }
  return bytes;
}

/** The response head without its :status, as undici's handlers receive it. */
function responseHead(headers: IncomingHttpHeaders & IncomingHttpStatusHeader): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {};
  for (const name in headers) if (name.charCodeAt(0) !== 58 /* ':' */) out[name] = headers[name];
  return out;
}

/** One session to the endpoint and the streams it carries. */
class Session {
  readonly session: ClientHttp2Session;
  connected = false;
  /** Streams opened on it since the last look for idle sessions. */
  opened = 0;
  /** No new stream goes on it: it sent or received GOAWAY, or it is closing. */
  retired = false;
  active = 0;
  constructor(session: ClientHttp2Session) {
    this.session = session;
  }

  /** Streams it may carry at once: the server's limit, at most streamsPerSession. */
  get capacity(): number {
    const limit = this.session.remoteSettings?.maxConcurrentStreams;
    return limit === undefined ? streamsPerSession : Math.min(limit, streamsPerSession);
  }
}

/**
 * One attempt: its stream once it has one, and the controller its handler pauses, resumes and
 * aborts it with.
 */
class H2cCall implements Dispatcher.DispatchController {
  readonly #pool: H2cPool;
  readonly options: DispatchOptions;
  readonly handler: Dispatcher.DispatchHandler;
  #stream: ClientHttp2Stream | null = null;
  #session: Session | null = null;
  #reason: Error | null = null;
  #paused = false;
  #done = false;
  #responded = false;
  #trailers: IncomingHttpHeaders | null = null;

  constructor(pool: H2cPool, options: DispatchOptions, handler: Dispatcher.DispatchHandler) {
    this.#pool = pool;
    this.options = options;
    this.handler = handler;
  }

  get aborted(): boolean {
    return this.#reason !== null;
  }

  get paused(): boolean {
    return this.#paused;
  }

  get reason(): Error | null {
    return this.#reason;
  }

  get done(): boolean {
    return this.#done;
  }

  abort(reason: Error): void {
    if (this.#done) return;
    this.#reason = reason;
    const stream = this.#stream;
    // RST_STREAM(CANCEL): the upstream stops working on a call nobody waits for.
    if (stream !== null && !stream.destroyed) stream.close(NGHTTP2_CANCEL);
    this.fail(reason);
  }

  pause(): void {
    this.#paused = true;
    this.#stream?.pause();
  }

  resume(): void {
    this.#paused = false;
    this.#stream?.resume();
  }

  /** Opens its stream on `session`. */
  start(session: Session, authority: string): void {
    this.#session = session;
    session.active += 1;
    session.opened += 1;
    const { body } = this.options;
    const buffered = body === null || body === undefined ? null : Buffer.isBuffer(body) ? body : null;
    const head = requestHead(this.options, authority, buffered === null ? null : buffered.length);
    let stream: ClientHttp2Stream;
    try {
      stream = session.session.request(head, { endStream: body === null || body === undefined });
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    this.#stream = stream;
    stream.on('response', (headers, flags) => this.#onResponse(headers, flags));
    stream.on('headers', (headers) => this.#onInformational(headers));
    stream.on('trailers', (trailers) => (this.#trailers = trailers));
    stream.on('data', (chunk: Buffer) => this.handler.onResponseData?.(this, chunk));
    stream.on('end', () => this.#onEnd());
    stream.on('error', (error) => this.fail(this.#refused() ?? error));
    // The session's slot is free once the stream is closed both ways, not at its end: a server
    // counts a stream against its limit until then, and refuses one more.
    stream.on('close', () => this.#onClose());
    if (buffered !== null) stream.end(buffered);
    else if (body !== null && body !== undefined) (body as Readable).pipe(stream);
  }

  #onInformational(headers: IncomingHttpHeaders & IncomingHttpStatusHeader): void {
    if (this.#done || this.#headOverLimit(headers)) return;
    const status = Number(headers[':status']);
    if (status < 200) this.handler.onResponseStart?.(this, status, responseHead(headers));
  }

  #onResponse(headers: IncomingHttpHeaders & IncomingHttpStatusHeader, flags: number): void {
    if (this.#done || this.#headOverLimit(headers)) return;
    this.#responded = true;
    const stream = this.#stream!;
    // From here a silent body fails the attempt; the wait for the head is the policies' business.
    const bodyTimeoutMs = this.#pool.options.bodyTimeoutMs;
    if (bodyTimeoutMs > 0 && (flags & NGHTTP2_FLAG_END_STREAM) === 0) {
      // Held back by a slow client, the body is not late: the silence counts again once it flows.
      stream.on('timeout', () => {
        if (this.#paused) stream.setTimeout(bodyTimeoutMs);
        else this.abort(codedError('the upstream sent no part of the response body for the idle timeout', h2cErrorCodes.bodyTimeout));
      });
      stream.setTimeout(bodyTimeoutMs);
    }
    if (this.#paused) stream.pause();
    this.handler.onResponseStart?.(this, Number(headers[':status']), responseHead(headers));
  }

  /** Fails the attempt, as an invalid response, when `headers` are over the pool's limit. */
  #headOverLimit(headers: IncomingHttpHeaders & IncomingHttpStatusHeader): boolean {
    const max = this.#pool.options.maxHeaderBytes;
    if (headBytes(headers) <= max) return false;
    this.abort(codedError(`response headers over ${max} bytes`, h2cErrorCodes.headersOverflow));
    return true;
  }

  #onEnd(): void {
    if (this.#done) return;
    // A stream destroyed with its session ends without a response: no answer, a failure.
    if (!this.#responded) {
      this.fail(codedError('stream closed before a response', h2cErrorCodes.reset));
      return;
    }
    this.#done = true;
    // Trailers carry no pseudo-header: node:http2's object goes as it is.
    this.handler.onResponseEnd?.(this, this.#trailers ?? {});
  }

  /**
   * The failure of a stream the upstream refused with REFUSED_STREAM before any response: by
   * RFC 9113 (8.7) it did no work on it, so the call may be sent again whatever its method.
   */
  #refused(): Error | undefined {
    if (this.#responded || this.#stream?.rstCode !== NGHTTP2_REFUSED_STREAM) return undefined;
    return codedError('stream refused before it was processed (HTTP/2 REFUSED_STREAM)', h2cErrorCodes.refused);
  }

  #onClose(): void {
    this.#release();
    if (this.#done) return;
    const refused = this.#refused();
    if (refused !== undefined) {
      this.fail(refused);
      return;
    }
    const code = this.#stream!.rstCode;
    // A stream closed before its end: reset by the upstream, or its session gone.
    const message =
      code !== undefined && code !== NGHTTP2_NO_ERROR
        ? `stream reset by the upstream (HTTP/2 error ${code})`
        : this.#responded
          ? 'stream closed before the end of the response'
          : 'stream closed before a response';
    this.fail(codedError(message, h2cErrorCodes.reset));
  }

  /** Ends the attempt with `error`, told to its handler once. */
  fail(error: Error): void {
    if (this.#done) return;
    this.#done = true;
    const stream = this.#stream;
    if (stream === null) this.#release();
    else if (!stream.destroyed) {
      // RST_STREAM(CANCEL) is queued by close(); destroying the stream now lets go of it even
      // when a busy session would be slow to tell of its close.
      stream.close(NGHTTP2_CANCEL);
      stream.destroy();
    }
    const body = this.options.body;
    if (body !== null && body !== undefined && !Buffer.isBuffer(body)) (body as Readable).destroy();
    this.handler.onResponseError?.(this, error);
  }

  /** Gives its place back: in the queue, or on its session. */
  #release(): void {
    const session = this.#session;
    if (session === null) {
      this.#pool.dequeue(this);
      return;
    }
    this.#session = null;
    session.active -= 1;
    this.#pool.released(session);
  }
}

/** The h2c connections to one endpoint, with undici's Pool's dispatch, close and destroy. */
export class H2cPool {
  readonly origin: string;
  readonly options: H2cPoolOptions;
  readonly #authority: string;
  readonly #sessions: Session[] = [];
  /** Calls waiting for a stream. */
  #queue: H2cCall[] = [];
  #closing: Promise<void> | null = null;
  #destroyed = false;
  #whenIdle: (() => void) | null = null;
  #cancelIdleWatch: (() => void) | null = null;

  constructor(origin: string, options: H2cPoolOptions) {
    this.origin = origin;
    this.options = options;
    this.#authority = new URL(origin).host;
  }

  /** Sessions open or opening that take new streams. */
  get sessions(): number {
    let count = 0;
    for (const session of this.#sessions) if (!session.retired) count += 1;
    return count;
  }

  dispatch(options: DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const call = new H2cCall(this, options, handler);
    handler.onRequestStart?.(call, null);
    if (call.done) return true;
    if (this.#closing !== null || this.#destroyed) {
      call.fail(codedError('the connection pool is closed', h2cErrorCodes.closed));
      return false;
    }
    const session = this.#available();
    if (session !== undefined) {
      call.start(session, this.#authority);
      return true;
    }
    this.#queue.push(call);
    this.#grow();
    return false;
  }

  /** A session with room for another stream now. */
  #available(): Session | undefined {
    for (const session of this.#sessions) {
      if (session.connected && !session.retired && !session.session.destroyed && session.active < session.capacity) return session;
    }
    return undefined;
  }

  /** Opens a session when calls wait, none is being opened and the limit allows one more. */
  #grow(): void {
    if (this.#queue.length === 0) return;
    let open = 0;
    for (const session of this.#sessions) {
      if (!session.connected && !session.retired) return;
      if (!session.retired) open += 1;
    }
    const limit = this.options.connections;
    if (limit !== null && open >= limit) return;
    this.#open();
  }

  #open(): void {
    const http2 = process.getBuiltinModule('node:http2').connect(this.origin, { settings: { enablePush: false } });
    const session = new Session(http2);
    this.#sessions.push(session);
    // Until the server's SETTINGS come, a connection that was made is of no use yet: the wait
    // for them counts in connectTimeout, and they say how many streams the session may carry.
    const cancelTimer = this.options.clock.setTimer(this.options.connectTimeoutMs, () => {
      http2.destroy(codedError(`connect timeout (${this.options.connectTimeoutMs} ms)`, h2cErrorCodes.connectTimeout));
    });
    http2.once('remoteSettings', () => {
      cancelTimer();
      if (http2.destroyed || http2.closed) return;
      session.connected = true;
      this.#serveQueue();
    });
    http2.on('goaway', () => this.#retire(session));
    this.#watchIdle();
    http2.on('error', (error) => {
      cancelTimer();
      // Calls waiting for the session's connection fail with its error, as undici fails a
      // client's queue when its connection cannot be made.
      if (!session.connected) this.#failQueue(error);
    });
    http2.once('close', () => {
      cancelTimer();
      this.#retire(session);
      const index = this.#sessions.indexOf(session);
      if (index >= 0) this.#sessions.splice(index, 1);
      this.#checkIdle();
      this.#grow();
    });
  }

  /**
   * Looks for idle sessions every idleSessionMs while there are sessions. One timer per pool and
   * a count per stream: a timeout per session, which node:http2 refreshes on every frame, costs
   * a busy session more.
   */
  #watchIdle(): void {
    if (this.#cancelIdleWatch !== null) return;
    this.#cancelIdleWatch = this.options.clock.setTimer(idleSessionMs, () => {
      this.#cancelIdleWatch = null;
      for (const session of this.#sessions) {
        if (session.connected && session.active === 0 && session.opened === 0) this.#retire(session);
        session.opened = 0;
      }
      if (this.#sessions.some((session) => !session.retired)) this.#watchIdle();
    });
  }

  #retire(session: Session): void {
    if (session.retired) return;
    session.retired = true;
    // Its streams in flight finish; it closes once they have.
    if (!session.session.closed && !session.session.destroyed) session.session.close();
    this.#grow();
  }

  #failQueue(error: Error): void {
    const queue = this.#queue;
    this.#queue = [];
    for (const call of queue) call.fail(error);
  }

  #serveQueue(): void {
    while (this.#queue.length > 0) {
      const session = this.#available();
      if (session === undefined) break;
      const call = this.#queue.shift()!;
      call.start(session, this.#authority);
    }
    this.#grow();
  }

  /** A call left the queue without a stream (aborted while waiting). */
  dequeue(call: H2cCall): void {
    const index = this.#queue.indexOf(call);
    if (index >= 0) this.#queue.splice(index, 1);
  }

  /** A stream on `session` is over: a waiting call may take its place. */
  released(session: Session): void {
    if (this.#queue.length > 0) this.#serveQueue();
    else if (session.active === 0) this.#checkIdle();
  }

  #checkIdle(): void {
    if (this.#whenIdle === null) return;
    for (const session of this.#sessions) if (session.active > 0) return;
    if (this.#queue.length > 0) return;
    this.#whenIdle();
  }

  /** Waits for the calls in flight and queued, then closes every session (GOAWAY). */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      this.#whenIdle = () => {
        this.#whenIdle = null;
        this.#cancelIdleWatch?.();
        this.#cancelIdleWatch = null;
        const closing = this.#sessions.map((session) => new Promise<void>((closed) => (session.session.closed ? closed() : session.session.close(closed))));
        void Promise.all(closing).then(() => resolve());
      };
      this.#checkIdle();
    });
    return this.#closing;
  }

  /** Closes every session now, failing the calls in flight and queued. */
  destroy(): Promise<void> {
    this.#destroyed = true;
    this.#cancelIdleWatch?.();
    this.#cancelIdleWatch = null;
    this.#failQueue(codedError('the connection pool was destroyed', h2cErrorCodes.closed));
    const closing = this.#sessions.map(
      (session) =>
        new Promise<void>((closed) => {
          if (session.session.destroyed) closed();
          else {
            session.session.once('close', () => closed());
            session.session.destroy();
          }
        }),
    );
    return Promise.all(closing).then(() => undefined);
  }
}
