import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from '../runtime/node-http.ts';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Transform, type Readable } from 'node:stream';
import type { Config, ConnectionLimits, WebSocketConfig } from '../config/types.ts';
import { ProxyError, type LocalReason } from '../exchange/errors.ts';
import type { PolicyEvents } from '../exchange/events.ts';
import { callHandler, type CallScope, type Handler } from '../exchange/handler.ts';
import type { ConnectionRejection, RequestRecord } from '../exchange/record.ts';
import type { ProxyRequest, RequestTrace, RequestTracer } from '../exchange/request.ts';
import { deadlineExceeded, deadlineReached, requestDeadline } from '../policies/deadline/deadline.ts';
import { absoluteForm, type Router } from '../routing/match.ts';
import type { Clock } from '../runtime/clock.ts';
import { clientKey, ConnectionTable } from './connections.ts';
import { callerTraceId, clientResponseHeaders, upstreamHeaders } from './headers.ts';
import { sendLocalReply, sendRawLocalReply } from './local-reply.ts';
import { isWebSocketUpgrade, WebSocketUpgrades, type WebSocketObserver } from './websocket/upgrade.ts';

/** A route of the running config, with its composed handler. */
export interface ActiveRoute {
  readonly name: string;
  readonly listener: string;
  readonly upstream: string;
  readonly timeoutMs: number;
  readonly match: Config['routes'][number]['match'];
  readonly handler: Handler;
  /** The route's WebSocket handshakes go through this one (src/stack/build.ts). */
  readonly handshake: Handler;
  readonly websocket: WebSocketConfig;
}

/** What a request needs from the running config; a request keeps the one it started with. */
export interface ProxyState {
  readonly config: Config;
  readonly router: Router<ActiveRoute>;
  /** Lower-cased request headers Breakwater consumes instead of forwarding. */
  readonly consumedHeaders: ReadonlySet<string>;
}

export interface ListenerObserver extends WebSocketObserver {
  /** Once per listener started, before its first connection. */
  listenerStarted(listener: string): void;
  requestStarted(listener: string): void;
  requestFinished(record: RequestRecord): void;
  connectionOpened(listener: string): void;
  connectionClosed(listener: string): void;
  /** A connection closed unserved: refused on arrival, or its request head was too slow. */
  connectionRejected(listener: string, reason: ConnectionRejection): void;
}

export interface ListenerOptions {
  readonly name: string;
  readonly maxHeaderBytes: number;
  readonly maxConcurrent: number | undefined;
  readonly limits: ConnectionLimits;
  readonly clock: Clock;
  readonly state: () => ProxyState;
  readonly observer: ListenerObserver;
  readonly events: PolicyEvents;
  readonly draining: () => boolean;
  /** Undefined while tracing is off. */
  readonly tracer: RequestTracer | undefined;
}

/** Status logged when the client went away before a response was sent (as nginx does). */
const clientClosedStatus = 499;

/**
 * After answering on the raw socket (a parse error, a slow head, a CONNECT), how long the
 * connection stays half-closed so the client can read the answer before it is closed: closing
 * at once, with the client's unread bytes in the socket, would reset the connection and could
 * take the answer with it (a lingering close, as nginx does).
 */
const lingerMs = 2000;

/**
 * Late heads answered per turn of the event loop. Node reports every head past headersTimeout
 * in one turn, hundreds at once under a flood; answering them in small batches lets the other
 * connections' requests be served in between.
 */
const lateHeadsPerTurn = 32;

/**
 * How often Node looks for request heads past headersTimeout: a tenth of it, so a slow head is
 * closed within 10% of the limit, but no more than once per 50 ms and at least once a second.
 */
export function headersCheckIntervalMs(headersTimeoutMs: number): number {
  return Math.min(1000, Math.max(50, Math.round(headersTimeoutMs / 10)));
}

/**
 * The Keep-Alive timeout a listener announces is a little shorter than when it closes an idle
 * connection, so a client that honours the announcement closes first and never sends a request
 * on a connection the listener is closing.
 */
function idleGraceMs(idleTimeoutMs: number): number {
  return Math.min(1000, Math.floor(idleTimeoutMs / 10));
}

/** Counts body bytes on their way upstream and fails the request past `limit`. */
function limitBody(body: IncomingMessage, limit: number): Readable {
  let seen = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length;
      if (seen > limit) done(new ProxyError('payload_too_large'));
      else done(null, chunk);
    },
  });
  body.on('error', (error) => counter.destroy(error));
  return body.pipe(counter);
}

/** An HTTP listener: routes each request and streams it through its route's handler. */
export class Listener {
  readonly name: string;
  readonly server: Server;
  readonly #options: ListenerOptions;
  #limits: ConnectionLimits;
  readonly #connections = new ConnectionTable();
  /** Sockets answered on the raw socket: whatever Node still parses on them is not served. */
  readonly #refused = new WeakSet<Duplex>();
  /** Requests begun on each connection, while maxRequestsPerConnection is set. */
  readonly #requestsOn = new WeakMap<Socket, number>();
  /**
   * The last exchange on each connection: a parse error before its request body ended, or while
   * its response is under way, belongs to it, and it has (or is getting) its one answer.
   */
  readonly #lastExchange = new WeakMap<Duplex, { readonly req: IncomingMessage; readonly res: ServerResponse }>();
  /** Connections whose head came too late, waiting for their 408 (see lateHeadsPerTurn). */
  readonly #lateHeads: Socket[] = [];
  readonly #websockets: WebSocketUpgrades;
  /** Waiting for the moment when the only connections left are WebSocket tunnels. */
  #tunnelsOnlyWaiters: (() => void)[] = [];
  #inFlight = 0;

  constructor(options: ListenerOptions) {
    this.name = options.name;
    this.#options = options;
    this.#limits = options.limits;
    this.server = createServer(
      {
        maxHeaderSize: options.maxHeaderBytes,
        // Bodies stream for as long as the route's timeout allows; Node's own request timer
        // would cut long uploads short. Only the head has a time limit of its own.
        requestTimeout: 0,
        // Node checks heads against headersTimeout on this interval only (30 s by default).
        connectionsCheckingInterval: headersCheckIntervalMs(options.limits.headersTimeoutMs),
        // Node's own 400 for a missing Host would carry no x-breakwater-reason: #handle answers it.
        requireHostHeader: false,
      },
      (req, res) => this.#handle(req, res),
    );
    // Node's own answer to an Expect other than 100-continue is a bare 417.
    this.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) =>
      this.#handle(req, res, new ProxyError('expectation_failed')),
    );
    // Node would say 100 Continue at once; #handle says it only to a request it will forward,
    // so a body that is refused anyway (413, 404, 503) is never sent.
    this.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => this.#handle(req, res, undefined, true));
    this.#applyTimeouts(options.limits);
    // After node:http's own listener has set the socket up, and before it has read a byte.
    this.server.on('connection', (socket: Socket) => this.#admit(socket));
    this.server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => this.#rejectMalformed(error, socket));
    // Without these listeners Node drops a CONNECT's socket without a byte, and passes an
    // upgrade on as a plain request with its Upgrade header stripped.
    this.server.on('connect', (req: IncomingMessage, socket: Duplex) =>
      this.#refuseOnSocket(socket, new ProxyError('method_not_allowed'), 'CONNECT', req.url ?? '', req.headers),
    );
    this.#websockets = new WebSocketUpgrades({
      listener: options.name,
      clock: options.clock,
      state: options.state,
      observer: {
        requestFinished: (record) => options.observer.requestFinished(record),
        tunnelOpened: (record) => {
          options.observer.tunnelOpened(record);
          this.#checkTunnelsOnly();
        },
        tunnelClosed: (record) => options.observer.tunnelClosed(record),
      },
      events: options.events,
      tracer: options.tracer,
      maxConcurrent: options.maxConcurrent,
      requests: {
        started: () => {
          this.#inFlight += 1;
          options.observer.requestStarted(this.name);
          return this.#inFlight;
        },
        finished: () => {
          this.#inFlight -= 1;
        },
      },
    });
    // WebSocket is proxied; any other upgrade (h2c over HTTP/1.1, say) is refused.
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (isWebSocketUpgrade(req)) this.#websockets.handle(req, socket, head);
      else this.#refuseOnSocket(socket, new ProxyError('upgrade_not_supported'), req.method ?? '', req.url ?? '', req.headers);
    });
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const address = this.server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : port);
      });
    });
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Open connections, refused ones not counted. */
  get connections(): number {
    return this.#connections.open;
  }

  /** Open WebSocket tunnels. */
  get tunnels(): number {
    return this.#websockets.open;
  }

  /** Closes every open tunnel with a close frame 1001 to both sides (the end of a drain); returns how many. */
  closeTunnels(): number {
    return this.#websockets.closeAll();
  }

  /**
   * Resolves once the only connections left are WebSocket tunnels (or none): a listener a reload
   * closes lets its tunnels run on, and need not wait for them.
   */
  tunnelsOnly(): Promise<void> {
    return new Promise((resolve) => {
      this.#tunnelsOnlyWaiters.push(resolve);
      this.#checkTunnelsOnly();
    });
  }

  #checkTunnelsOnly(): void {
    if (this.#tunnelsOnlyWaiters.length === 0 || this.#connections.open > this.#websockets.open) return;
    const waiters = this.#tunnelsOnlyWaiters;
    this.#tunnelsOnlyWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /**
   * Takes new connection limits: the counts apply to the next connection, the timeouts to the
   * next head and the next idle wait. The interval Node checks heads on stays the one the
   * listener started with (ListenerSet restarts a listener when it would change).
   */
  setLimits(limits: ConnectionLimits): void {
    this.#limits = limits;
    this.#applyTimeouts(limits);
  }

  #applyTimeouts(limits: ConnectionLimits): void {
    this.server.headersTimeout = limits.headersTimeoutMs;
    const grace = idleGraceMs(limits.idleTimeoutMs);
    this.server.keepAliveTimeout = limits.idleTimeoutMs - grace;
    this.server.keepAliveTimeoutBuffer = grace;
  }

  /** Counts a new connection in, or closes it at once when a connection limit refuses it. */
  #admit(socket: Socket): void {
    const observer = this.#options.observer;
    const client = clientKey(socket.remoteAddress);
    const refusal = this.#connections.admit(client, this.#limits);
    if (refusal !== undefined) {
      // Nothing has been read yet: the client sees its connection closed, and no request of
      // its is ever parsed.
      socket.destroy();
      observer.connectionRejected(this.name, refusal);
      return;
    }
    observer.connectionOpened(this.name);
    socket.once('close', () => {
      this.#connections.release(client);
      observer.connectionClosed(this.name);
      this.#checkTunnelsOnly();
    });
  }

  #rejectMalformed(error: NodeJS.ErrnoException, socket: Socket): void {
    if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      this.#options.observer.connectionRejected(this.name, 'headers_timeout');
      // A connection that never sent a byte has no request to answer.
      if (socket.bytesRead === 0 || !socket.writable) {
        socket.destroy();
        return;
      }
      // Refused from now on, even if the rest of its head arrives before its 408 goes out.
      this.#refused.add(socket);
      this.#lateHeads.push(socket);
      if (this.#lateHeads.length === 1) setImmediate(() => this.#answerLateHeads());
      return;
    }
    // Node reports a bad or cut-short body after it handed the head over (an invalid
    // Transfer-Encoding, a client gone before its Content-Length was sent): that request has
    // its answer, or is getting one, so the connection is only closed.
    const last = this.#lastExchange.get(socket);
    const unfinished = last !== undefined && (!last.req.complete || !last.res.writableFinished);
    if (!socket.writable || error.code === 'ECONNRESET' || this.#refused.has(socket) || unfinished) {
      socket.destroy();
      return;
    }
    const reason: LocalReason = error.code === 'HPE_HEADER_OVERFLOW' ? 'headers_too_large' : 'bad_request';
    this.#refuseOnSocket(socket, new ProxyError(reason), '', '');
  }

  /** Answers a batch of late heads with 408, and leaves the rest for the next turn. */
  #answerLateHeads(): void {
    for (const socket of this.#lateHeads.splice(0, lateHeadsPerTurn)) {
      if (!socket.destroyed) this.#refuseOnSocket(socket, new ProxyError('request_timeout'), '', '');
    }
    if (this.#lateHeads.length > 0) setImmediate(() => this.#answerLateHeads());
  }

  /**
   * Answers a request that never reaches a route (a CONNECT, an upgrade, a head Node's parser
   * rejected or that came too slowly) on the raw socket and closes it, with an access-log line
   * like any other.
   */
  #refuseOnSocket(socket: Duplex, error: ProxyError, method: string, path: string, headers?: IncomingMessage['headers']): void {
    const incomingId = headers?.['x-request-id'];
    const requestId = typeof incomingId === 'string' && incomingId !== '' ? incomingId : randomUUID();
    this.#refused.add(socket);
    // Started and finished at once: the in-flight gauge counts it in and out like any request.
    this.#options.observer.requestStarted(this.name);
    sendRawLocalReply(socket, error, requestId);
    // Whatever the client still sends is read and dropped until it closes, or the linger ends.
    socket.resume();
    const cancelLinger = this.#options.clock.setTimer(lingerMs, () => socket.destroy());
    socket.once('close', cancelLinger);
    this.#options.observer.requestFinished({
      listener: this.name,
      route: undefined,
      upstream: undefined,
      method,
      path,
      status: error.status,
      reason: error.reason,
      detail: error.message,
      fallback: undefined,
      durationMs: 0,
      attempts: 0,
      requestId,
      traceId: callerTraceId(headers?.traceparent),
      spanId: undefined,
    });
  }

  /**
   * Routes and proxies a request. `refusal`: answer it with this instead, as any request answered
   * early; `expectsContinue`: the client waits for 100 Continue before it sends the body.
   */
  #handle(req: IncomingMessage, res: ServerResponse, refusal?: ProxyError, expectsContinue = false): void {
    const socket = req.socket;
    // Node parses on after an answer on the raw socket (a 408 for a slow head, say): a head
    // that completes then was already refused.
    if (this.#refused.has(socket)) {
      socket.destroy();
      return;
    }
    const maxRequests = this.#limits.maxRequestsPerConnection;
    if (maxRequests > 0) {
      const count = (this.#requestsOn.get(socket) ?? 0) + 1;
      this.#requestsOn.set(socket, count);
      // A request pipelined behind the last one allowed is left unanswered: the connection
      // closes after that answer, and the client sends it again on a new one (RFC 9112 9.3.2).
      if (count > maxRequests) return;
      if (count === maxRequests) res.shouldKeepAlive = false;
    }
    this.#lastExchange.set(socket, { req, res });
    const options = this.#options;
    const clock = options.clock;
    const startedAt = clock.now();
    const state = options.state();
    const method = req.method ?? 'GET';
    const incomingId = req.headers['x-request-id'];
    const requestId = typeof incomingId === 'string' && incomingId !== '' ? incomingId : randomUUID();
    const trace = options.tracer === undefined ? undefined : options.tracer.startRequest(req, this.name);

    this.#inFlight += 1;
    options.observer.requestStarted(this.name);

    let url = req.url ?? '/';
    let host = req.headers.host ?? '';
    if (refusal !== undefined) {
      this.#answerEarly(req, res, startedAt, requestId, trace, url, refusal);
      return;
    }
    // RFC 9112 3.2: an HTTP/1.1 request without Host is refused, whatever its target's form.
    if (req.headers.host === undefined && req.httpVersionMajor === 1 && req.httpVersionMinor >= 1) {
      this.#answerEarly(req, res, startedAt, requestId, trace, url, new ProxyError('bad_request', { message: 'an HTTP/1.1 request needs a Host header' }));
      return;
    }
    // RFC 9112 6.1: unless chunked is its last coding, a request body's length cannot be
    // known. Node hands such a head over and fails on its body; it is never forwarded.
    const transferEncoding = req.headers['transfer-encoding'];
    if (transferEncoding !== undefined && transferEncoding.split(',').pop()!.trim().toLowerCase() !== 'chunked') {
      this.#answerEarly(req, res, startedAt, requestId, trace, url, new ProxyError('bad_request', { message: 'Transfer-Encoding must end with chunked' }));
      return;
    }
    if (url.charCodeAt(0) !== 47 /* '/' */) {
      // Absolute form, as sent by clients that use Breakwater as their HTTP_PROXY.
      const parts = absoluteForm.exec(url);
      if (parts === null) {
        this.#answerEarly(req, res, startedAt, requestId, trace, url, new ProxyError('bad_request', { message: 'unsupported request target' }));
        return;
      }
      host = parts[1]!;
      url = parts[2] === '' ? '/' : parts[2]!;
    }

    const route = state.router.match(this.name, { method, host, path: url, headers: req.headers });
    if (route === undefined) {
      this.#answerEarly(req, res, startedAt, requestId, trace, url, new ProxyError('no_route'));
      return;
    }

    const limits = state.config.limits;
    const contentLength = req.headers['content-length'];
    if (limits.maxBodyBytes > 0 && contentLength !== undefined && Number(contentLength) > limits.maxBodyBytes) {
      this.#answerEarly(req, res, startedAt, requestId, trace, url, new ProxyError('payload_too_large'), route);
      return;
    }
    if (options.maxConcurrent !== undefined && this.#inFlight > options.maxConcurrent) {
      this.#answerEarly(req, res, startedAt, requestId, trace, url, new ProxyError('bulkhead_full', { message: `listener ${this.name} is at its limit of ${options.maxConcurrent} concurrent requests` }), route);
      return;
    }

    const deadline = requestDeadline(route.timeoutMs, req.headers, state.config.deadline);
    if (deadline.kind === 'spent') {
      const error = deadlineExceeded(options.events, 'arrival', "the caller's deadline was already spent on arrival", { route: route.name, upstream: route.upstream });
      this.#answerEarly(req, res, startedAt, requestId, trace, url, error, route);
      return;
    }

    if (expectsContinue) res.writeContinue();
    const hasBody = contentLength !== undefined ? contentLength !== '0' : req.headers['transfer-encoding'] !== undefined;
    const request: ProxyRequest = {
      listener: this.name,
      route: route.name,
      upstream: route.upstream,
      method,
      path: url,
      headers: upstreamHeaders(req, { host, requestId, consumed: state.consumedHeaders }),
      body: !hasBody ? null : limits.maxBodyBytes > 0 && contentLength === undefined ? limitBody(req, limits.maxBodyBytes) : req,
      requestId,
      startedAt,
      deadlineAt: startedAt + deadline.lifetimeMs,
      attempts: 0,
      tried: [],
      trace,
    };
    // The request's one timer: its deadline, which ends whatever still runs for it.
    const controller = new AbortController();
    const scope: CallScope = { signal: controller.signal, dueAt: request.deadlineAt };
    const cancelTimer = clock.setTimer(deadline.lifetimeMs, () => {
      controller.abort(deadlineReached(options.events, request, deadline, res.headersSent));
    });

    /** The reply Breakwater made, or what cut a streaming answer short. */
    let failure: ProxyError | undefined;
    let fallback: string | undefined;
    res.once('close', () => {
      cancelTimer();
      if (!res.writableFinished) controller.abort(new ProxyError('upstream_unavailable', { message: 'the client closed the connection' }));
      this.#finished(req, res, {
        route,
        startedAt,
        requestId,
        path: url,
        failure,
        fallback,
        attempts: request.attempts,
        trace,
      });
    });

    callHandler(route.handler, request, scope).then(
      (response) => {
        if (res.destroyed) {
          response.body.discard();
          return;
        }
        fallback = response.fallback;
        if (options.draining()) res.shouldKeepAlive = false;
        res.writeHead(response.status, clientResponseHeaders(response.headers, request.attempts, requestId));
        response.body.pipeTo(res).catch((error: unknown) => {
          // The head is already out: all that is left is to cut the response short.
          if (error instanceof ProxyError) failure = error;
          res.destroy();
        });
      },
      (error: unknown) => {
        const reply = error instanceof ProxyError ? error : new ProxyError('upstream_unavailable', { cause: error });
        if (res.destroyed) return;
        failure = reply;
        if (options.draining()) res.shouldKeepAlive = false;
        sendLocalReply(res, reply, { route: route.name, upstream: route.upstream, requestId, attempts: request.attempts }, reply.reason === 'payload_too_large');
      },
    );
  }

  /** Answers before any upstream is involved. */
  #answerEarly(
    req: IncomingMessage,
    res: ServerResponse,
    startedAt: number,
    requestId: string,
    trace: RequestTrace | undefined,
    path: string,
    error: ProxyError,
    route?: ActiveRoute,
  ): void {
    // An unread body would otherwise be drained to keep the connection: close it instead.
    const closeConnection =
      this.#options.draining() || req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    res.once('close', () =>
      this.#finished(req, res, { route, startedAt, requestId, path, failure: error, fallback: undefined, attempts: 0, trace }),
    );
    sendLocalReply(
      res,
      error,
      { route: route?.name, upstream: route?.upstream, requestId, attempts: route === undefined ? undefined : 0 },
      closeConnection,
    );
  }

  #finished(
    req: IncomingMessage,
    res: ServerResponse,
    outcome: {
      route: ActiveRoute | undefined;
      startedAt: number;
      requestId: string;
      path: string;
      failure: ProxyError | undefined;
      fallback: string | undefined;
      attempts: number;
      trace: RequestTrace | undefined;
    },
  ): void {
    this.#inFlight -= 1;
    const answered = res.headersSent;
    const trace = outcome.trace;
    const record: RequestRecord = {
      listener: this.name,
      route: outcome.route?.name,
      upstream: outcome.route?.upstream,
      method: req.method ?? '',
      path: outcome.path,
      status: answered ? res.statusCode : clientClosedStatus,
      reason: answered ? outcome.failure?.reason : 'client_closed',
      detail: answered ? outcome.failure?.message : undefined,
      fallback: outcome.fallback,
      durationMs: this.#options.clock.now() - outcome.startedAt,
      attempts: outcome.attempts,
      requestId: outcome.requestId,
      // With tracing off, the caller's trace id still joins the log line to its trace.
      traceId: trace === undefined ? callerTraceId(req.headers.traceparent) : trace.traceId,
      spanId: trace?.spanId,
    };
    trace?.end(record);
    this.#options.observer.requestFinished(record);
  }
}
