import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { OutgoingHttpHeaders } from 'node:http2';
import { createServer } from '../runtime/node-http.ts';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Transform, type Readable } from 'node:stream';
import type { Config, ConnectionLimits, WebSocketConfig } from '../config/types.ts';
import { ProxyError, type LocalReason } from '../exchange/errors.ts';
import { grpcCodes, grpcMethodOf, grpcStatusIn, isGrpcContentType } from '../exchange/grpc.ts';
import type { PolicyEvents } from '../exchange/events.ts';
import { callHandler, type Handler } from '../exchange/handler.ts';
import { Scope } from '../exchange/cancel.ts';
import type { ConnectionRejection, RequestProtocol, RequestRecord } from '../exchange/record.ts';
import type { ProxyRequest, RequestTrace, RequestTracer } from '../exchange/request.ts';
import { deadlineExceeded, deadlineReached, requestDeadline } from '../policies/deadline/deadline.ts';
import { absoluteForm, type Router } from '../routing/match.ts';
import type { Clock } from '../runtime/clock.ts';
import { clientKey, ConnectionTable } from './connections.ts';
import { H2cServer, type H2Request, type H2Response } from './h2c.ts';
import { callerTraceId, clientResponseHeaders, upstreamHeaders, upstreamHeadersH2 } from './headers.ts';
import { readAhead } from '../exchange/request-body.ts';
import { sendLocalReply, sendRawLocalReply } from './local-reply.ts';
import { sortConnection } from './preface.ts';
import { isWebSocketUpgrade, WebSocketUpgrades, type WebSocketObserver } from './websocket/upgrade.ts';

/** A client's request, by HTTP/1.1 or HTTP/2. */
export type ClientRequest = IncomingMessage | H2Request;
/** The response to a client's request, by HTTP/1.1 or HTTP/2. */
export type ClientResponse = ServerResponse | H2Response;

/** A route of the running config, with its composed handler. */
export interface ActiveRoute {
  readonly name: string;
  readonly listener: string;
  readonly upstream: string;
  readonly timeoutMs: number;
  readonly match: Config['routes'][number]['match'];
  readonly handler: Handler;
  /** The route's gRPC calls are counted by service and method (`telemetry.grpcMethods`). */
  readonly grpcMethodLabels?: boolean;
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

/**
 * The most of an HTTP/2 request body held to see whether it is all there (readAhead): the
 * retry layer's default bufferLimit, so that a body this size is replayable anyway.
 */
const readAheadLimitBytes = 64 * 1024;

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

/**
 * The grpc-status a gRPC caller read: in the trailers or the Trailers-Only head Breakwater
 * sent, CANCELLED when the client left before an answer, UNKNOWN when none was sent (the
 * stream was cut short).
 */
function grpcStatusSent(res: ClientResponse, answered: boolean): number {
  if (!answered) return grpcCodes.CANCELLED;
  if ('stream' in res) {
    const stream = res.stream as { readonly sentTrailers?: OutgoingHttpHeaders };
    const status = grpcStatusIn(stream.sentTrailers as Record<string, string> | undefined);
    if (status !== undefined) return status;
  }
  // A Trailers-Only head, which the response keeps.
  const local = res.getHeader('grpc-status');
  return typeof local === 'string' ? Number(local) : grpcCodes.UNKNOWN;
}

/** The size of a header list as HTTP/2 counts it against SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113 6.5.2). */
function headerListSize(raw: readonly string[]): number {
  let size = 0;
  for (let i = 0; i < raw.length; i += 2) size += raw[i]!.length + raw[i + 1]!.length + 32;
  return size;
}

/** Counts body bytes on their way upstream and fails the request past `limit`. */
function limitBody(body: Readable, limit: number): Readable {
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
  /** The HTTP/2 side: connections that open with the h2c preface. */
  readonly #h2c: H2cServer;
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
      (req, res) => this.#handleHttp1(req, res),
    );
    // Node's own answer to an Expect other than 100-continue is a bare 417.
    this.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) =>
      this.#handleHttp1(req, res, new ProxyError('expectation_failed')),
    );
    // Node would say 100 Continue at once; #handle says it only to a request it will forward,
    // so a body that is refused anyway (413, 404, 503) is never sent.
    this.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => this.#handleHttp1(req, res, undefined, true));
    this.#applyTimeouts(options.limits);
    this.#h2c = new H2cServer(
      { maxHeaderBytes: options.maxHeaderBytes, limits: options.limits },
      {
        request: (req, res, expectsContinue) => this.#handle(req, res, true, undefined, expectsContinue),
        connect: (req, res) => this.#handle(req, res, true, new ProxyError('method_not_allowed')),
        unmetExpectation: (req, res) => this.#handle(req, res, true, new ProxyError('expectation_failed')),
      },
    );
    // node:http serves a connection from its own 'connection' listener. It is taken out and
    // called only for connections that turn out to speak HTTP/1.1: each new connection is
    // first counted in (or refused) before a byte is read, then sorted by its first bytes.
    const serveHttp1 = this.server.listeners('connection')[0] as (this: Server, socket: Socket) => void;
    this.server.removeListener('connection', serveHttp1);
    this.server.on('connection', (socket: Socket) => this.#accept(socket, serveHttp1));
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
    this.#h2c.setLimits(limits);
  }

  /** Stops accepting connections; resolves once every connection, HTTP/1.1 and HTTP/2, has closed. */
  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /**
   * Closes the idle keep-alive connections, and tells HTTP/2 clients to open no new streams
   * (GOAWAY): every connection closes once its requests in flight have ended.
   */
  closeIdleConnections(): void {
    this.server.closeIdleConnections();
    this.#h2c.closeIdle();
  }

  /** Closes every connection now, requests in flight included. */
  closeAllConnections(): void {
    this.server.closeAllConnections();
    this.#h2c.closeAll();
  }

  #applyTimeouts(limits: ConnectionLimits): void {
    this.server.headersTimeout = limits.headersTimeoutMs;
    const grace = idleGraceMs(limits.idleTimeoutMs);
    this.server.keepAliveTimeout = limits.idleTimeoutMs - grace;
    this.server.keepAliveTimeoutBuffer = grace;
  }

  /**
   * Counts a new connection in, or closes it at once when a connection limit refuses it; then
   * hands it to HTTP/1.1 or HTTP/2 by its first bytes. A connection that sends nothing for
   * headersTimeout is closed, as one whose head is too slow.
   */
  #accept(socket: Socket, serveHttp1: (this: Server, socket: Socket) => void): void {
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
    sortConnection(
      socket,
      this.#limits.headersTimeoutMs,
      (protocol) => {
        if (protocol === 'h2c') {
          this.#h2c.accept(socket);
          return;
        }
        serveHttp1.call(this.server, socket);
        socket.resume();
      },
      () => {
        // A connection that never sent a byte has no request to answer.
        observer.connectionRejected(this.name, 'headers_timeout');
        socket.destroy();
      },
    );
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
      protocol: 'http1',
      route: undefined,
      upstream: undefined,
      method,
      path,
      status: error.status,
      grpcStatus: undefined,
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
  #handleHttp1(req: IncomingMessage, res: ServerResponse, refusal?: ProxyError, expectsContinue = false): void {
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
    this.#handle(req, res, false, refusal, expectsContinue);
  }

  /**
   * Routes and proxies a request that came by HTTP/1.1 or, with `h2`, by HTTP/2. `refusal`:
   * answer it with this instead, as any request answered early; `expectsContinue`: the client
   * waits for 100 Continue before it sends the body.
   */
  #handle(req: ClientRequest, res: ClientResponse, h2: boolean, refusal?: ProxyError, expectsContinue = false): void {
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
    // RFC 9113 8.3.1: an HTTP/2 request names its target's authority in :authority.
    let host = (h2 ? (req.headers[':authority'] as string | undefined) : undefined) ?? req.headers.host ?? '';
    if (refusal !== undefined) {
      this.#answerEarly(req, res, startedAt, requestId, trace, url, refusal);
      return;
    }
    // A client that ignores the header list size Breakwater announces (SETTINGS_MAX_HEADER_LIST_SIZE)
    // is answered as an HTTP/1.1 one with too large a head.
    if (h2 && headerListSize(req.rawHeaders) > options.maxHeaderBytes) {
      this.#answerEarly(req, res, startedAt, requestId, trace, url, new ProxyError('headers_too_large'));
      return;
    }
    // RFC 9112 3.2: an HTTP/1.1 request without Host is refused, whatever its target's form.
    if (!h2 && req.headers.host === undefined && req.httpVersionMajor === 1 && req.httpVersionMinor >= 1) {
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
    // An HTTP/2 request without a body ends its stream with its headers.
    const hasBody =
      contentLength !== undefined ? contentLength !== '0' : h2 ? !(req as H2Request).stream.endAfterHeaders : req.headers['transfer-encoding'] !== undefined;
    // An HTTP/2 request's body is its stream's readable side.
    const bodyStream: Readable = h2 ? (req as H2Request).stream : (req as IncomingMessage);
    const grpc = isGrpcContentType(req.headers['content-type']);
    const request: ProxyRequest = {
      listener: this.name,
      route: route.name,
      upstream: route.upstream,
      method,
      path: url,
      headers: (h2 ? upstreamHeadersH2 : upstreamHeaders)(req, { host, requestId, consumed: state.consumedHeaders }),
      body: !hasBody ? null : limits.maxBodyBytes > 0 && contentLength === undefined ? limitBody(bodyStream, limits.maxBodyBytes) : bodyStream,
      requestId,
      startedAt,
      deadlineAt: startedAt + deadline.lifetimeMs,
      attempts: 0,
      tried: [],
      trace,
      grpc,
    };
    // The request's one timer: its deadline, which ends whatever still runs for it.
    const scope = Scope.root(request.deadlineAt);
    const cancelTimer = clock.setTimer(deadline.lifetimeMs, () => {
      scope.cancel(deadlineReached(options.events, request, deadline, res.headersSent));
    });

    /** The reply Breakwater made, or what cut a streaming answer short. */
    let failure: ProxyError | undefined;
    let fallback: string | undefined;
    res.once('close', () => {
      cancelTimer();
      if (!res.writableFinished) scope.cancel(new ProxyError('upstream_unavailable', { message: 'the client closed the connection' }));
      this.#finished(req, res, {
        protocol: grpc ? 'grpc' : h2 ? 'h2c' : 'http1',
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

    const dispatch = (): void => {
      callHandler(route.handler, request, scope).then(
        (response) => {
          if (res.destroyed) {
            response.body.discard();
            return;
          }
          fallback = response.fallback;
          if (!h2 && options.draining()) (res as ServerResponse).shouldKeepAlive = false;
          // The two response kinds take the same calls; node:http's types stand for both.
          const sink = res as ServerResponse;
          const headers = clientResponseHeaders(response.headers, request.attempts, requestId);
          if (h2 && response.headers['grpc-status'] !== undefined) {
            // A Trailers-Only gRPC response: its head must end the stream, as it came, or a gRPC
            // client reads its status as metadata. Left unsent, the head goes out with the end.
            sink.statusCode = response.status;
            for (const name in headers) sink.setHeader(name, headers[name]!);
          } else {
            sink.writeHead(response.status, headers);
          }
          response.body.pipeTo(sink).catch((error: unknown) => {
            // The head is already out: all that is left is to cut the response short.
            if (error instanceof ProxyError) failure = error;
            res.destroy();
          });
        },
        (error: unknown) => {
          const reply = error instanceof ProxyError ? error : new ProxyError('upstream_unavailable', { cause: error });
          if (res.destroyed) return;
          failure = reply;
          if (!h2 && options.draining()) (res as ServerResponse).shouldKeepAlive = false;
          sendLocalReply(res, reply, { route: route.name, upstream: route.upstream, requestId, attempts: request.attempts, grpc }, !h2 && reply.reason === 'payload_too_large');
        },
      );
    };

    const body = request.body;
    if (!h2 || body === null || Buffer.isBuffer(body)) {
      dispatch();
      return;
    }
    // An HTTP/2 body that has all come by the next turn of the event loop (a unary gRPC call's
    // one message, most often) goes upstream as the bytes it is: a stream costs undici's HTTP/2
    // client a pipeline per request, several times the cost of the rest of the call.
    readAhead(body, readAheadLimitBytes, scope, (settled) => {
      request.body = settled;
      dispatch();
    });
  }

  /** Answers before any upstream is involved. */
  #answerEarly(
    req: ClientRequest,
    res: ClientResponse,
    startedAt: number,
    requestId: string,
    trace: RequestTrace | undefined,
    path: string,
    error: ProxyError,
    route?: ActiveRoute,
  ): void {
    // An unread body would otherwise be drained to keep the connection: close it instead. An
    // HTTP/2 stream ends alone, its connection untouched.
    const closeConnection =
      req.httpVersionMajor !== 2 &&
      (this.#options.draining() || req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined);
    const grpc = isGrpcContentType(req.headers['content-type']);
    const protocol = grpc ? 'grpc' : req.httpVersionMajor === 2 ? 'h2c' : 'http1';
    res.once('close', () =>
      this.#finished(req, res, { protocol, route, startedAt, requestId, path, failure: error, fallback: undefined, attempts: 0, trace }),
    );
    sendLocalReply(
      res,
      error,
      { route: route?.name, upstream: route?.upstream, requestId, attempts: route === undefined ? undefined : 0, grpc },
      closeConnection,
    );
  }

  #finished(
    req: ClientRequest,
    res: ClientResponse,
    outcome: {
      protocol: RequestProtocol;
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
      protocol: outcome.protocol,
      route: outcome.route?.name,
      upstream: outcome.route?.upstream,
      method: req.method ?? '',
      path: outcome.path,
      status: answered ? res.statusCode : clientClosedStatus,
      grpcStatus: outcome.protocol === 'grpc' ? grpcStatusSent(res, answered) : undefined,
      grpcMethod: outcome.protocol === 'grpc' && outcome.route?.grpcMethodLabels === true ? grpcMethodOf(outcome.path) : undefined,
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
