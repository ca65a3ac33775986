import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Transform, type Readable } from 'node:stream';
import type { Config } from '../config/types.ts';
import { ProxyError, type LocalReason } from '../exchange/errors.ts';
import type { PolicyEvents } from '../exchange/events.ts';
import { callHandler, type CallScope, type Handler } from '../exchange/handler.ts';
import type { RequestRecord } from '../exchange/record.ts';
import type { ProxyRequest, RequestTrace, RequestTracer } from '../exchange/request.ts';
import { deadlineExceeded, deadlineReached, requestDeadline } from '../policies/deadline/deadline.ts';
import { absoluteForm, type Router } from '../routing/match.ts';
import type { Clock } from '../runtime/clock.ts';
import { callerTraceId, clientResponseHeaders, upstreamHeaders } from './headers.ts';
import { sendLocalReply, sendRawLocalReply } from './local-reply.ts';

/** A route of the running config, with its composed handler. */
export interface ActiveRoute {
  readonly name: string;
  readonly listener: string;
  readonly upstream: string;
  readonly timeoutMs: number;
  readonly match: Config['routes'][number]['match'];
  readonly handler: Handler;
}

/** What a request needs from the running config; a request keeps the one it started with. */
export interface ProxyState {
  readonly config: Config;
  readonly router: Router<ActiveRoute>;
  /** Lower-cased request headers Breakwater consumes instead of forwarding. */
  readonly consumedHeaders: ReadonlySet<string>;
}

export interface ListenerObserver {
  requestStarted(listener: string): void;
  requestFinished(record: RequestRecord): void;
}

export interface ListenerOptions {
  readonly name: string;
  readonly maxHeaderBytes: number;
  readonly maxConcurrent: number | undefined;
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
  #inFlight = 0;

  constructor(options: ListenerOptions) {
    this.name = options.name;
    this.#options = options;
    this.server = createServer(
      {
        maxHeaderSize: options.maxHeaderBytes,
        // Bodies stream for as long as the route's timeout allows; Node's own request timer
        // would cut long uploads short.
        requestTimeout: 0,
      },
      (req, res) => this.#handle(req, res),
    );
    this.server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => this.#rejectMalformed(error, socket));
    // Without these listeners Node drops a CONNECT's socket without a byte, and passes an
    // upgrade on as a plain request with its Upgrade header stripped.
    this.server.on('connect', (req: IncomingMessage, socket: Duplex) =>
      this.#refuseOnSocket(socket, new ProxyError('method_not_allowed'), 'CONNECT', req.url ?? '', req.headers),
    );
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex) =>
      this.#refuseOnSocket(socket, new ProxyError('upgrade_not_supported'), req.method ?? '', req.url ?? '', req.headers),
    );
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

  #rejectMalformed(error: NodeJS.ErrnoException, socket: Socket): void {
    if (!socket.writable || error.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    const reason: LocalReason = error.code === 'HPE_HEADER_OVERFLOW' ? 'headers_too_large' : 'bad_request';
    this.#refuseOnSocket(socket, new ProxyError(reason), '', '');
  }

  /**
   * Answers a request that never reaches a route (a CONNECT, an upgrade, a head Node's parser
   * rejected) on the raw socket and closes it, with an access-log line like any other.
   */
  #refuseOnSocket(socket: Duplex, error: ProxyError, method: string, path: string, headers?: IncomingMessage['headers']): void {
    const incomingId = headers?.['x-request-id'];
    const requestId = typeof incomingId === 'string' && incomingId !== '' ? incomingId : randomUUID();
    sendRawLocalReply(socket, error, requestId);
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

  #handle(req: IncomingMessage, res: ServerResponse): void {
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
