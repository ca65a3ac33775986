import { PassThrough, type Duplex, type Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { abortReason, onAbort, Scope, hasEnded, type ScopeFollower } from '../exchange/cancel.ts';
import { fromUpstreamError, ProxyError } from '../exchange/errors.ts';
import type { BreakerStateName } from '../exchange/events.ts';
import type { CallScope, Handler } from '../exchange/handler.ts';
import type { AttemptObserver, RecordedOutcome } from '../exchange/record.ts';
import { formatGrpcTimeout, grpcCodes, grpcStatusIn, grpcStatusOfHttp } from '../exchange/grpc.ts';
import type { AttemptOutcome } from '../exchange/outcome.ts';
import type { AttemptTrace, BodySink, LateOutcome, ProxyRequest, ResponseBody, UpstreamResponse } from '../exchange/request.ts';
import { deadlineHeaderValue } from '../policies/deadline/deadline.ts';
import type { Clock } from '../runtime/clock.ts';
import type { Endpoint, Upstream } from './upstream.ts';

type Controller = Dispatcher.DispatchController;

const cancelled: RecordedOutcome = { kind: 'cancelled' };

/**
 * Informational (1xx) responses accepted before the final one. An upstream sends one or two (a
 * 103 Early Hints, a 102 Processing now and then); a stream of them only burns CPU until the
 * deadline, so past this many the attempt fails.
 */
const maxInformationalResponses = 64;

export interface ForwardDeps {
  readonly clock: Clock;
  readonly observe: AttemptObserver;
  /** The header that tells the upstream how long Breakwater will wait for this attempt. */
  readonly deadlineHeader: string;
  /** The state of the route's breaker, for the attempt's span; absent when no breaker guards these attempts. */
  readonly breakerState?: (() => BreakerStateName) | undefined;
}

/**
 * The outcome of a gRPC call whose head carried no status: told once, when its trailers come
 * (or the response fails or is given up), to whoever asked.
 */
class LateGrpcOutcome implements LateOutcome {
  /** Monotonic ms of the response head: the attempt's latency ends there. */
  readonly respondedAt: number;
  #listeners: ((outcome: AttemptOutcome | undefined) => void)[] | null = [];
  #outcome: AttemptOutcome | undefined;

  constructor(respondedAt: number) {
    this.respondedAt = respondedAt;
  }

  get settled(): boolean {
    return this.#listeners === null;
  }

  onOutcome(listener: (outcome: AttemptOutcome | undefined) => void): void {
    if (this.#listeners === null) listener(this.#outcome);
    else this.#listeners.push(listener);
  }

  settle(outcome: AttemptOutcome | undefined): void {
    const listeners = this.#listeners;
    if (listeners === null) return;
    this.#listeners = null;
    this.#outcome = outcome;
    for (const listener of listeners) listener(outcome);
  }
}

/** Takes an error a destroyed request body raises after its attempt is over. */
function ignoreLateError(): void {}

/**
 * One attempt on one endpoint, as an undici dispatch handler. It resolves at the response
 * head, then holds the body (the connection paused) until it is piped into the client
 * response or discarded, so layers can look at the status before anything reaches the client.
 */
class Exchange implements Dispatcher.DispatchHandler, ResponseBody, ScopeFollower {
  readonly #request: ProxyRequest;
  readonly #upstream: Upstream;
  readonly #endpoint: Endpoint;
  readonly #deps: ForwardDeps;
  readonly #startedAt: number;
  readonly #trace: AttemptTrace | undefined;
  // The scope it follows until it is over: a Scope tells it directly, any other through its signal.
  readonly #scope: CallScope;
  readonly #stopListening: (() => void) | null;
  #observed = false;
  #informational = 0;
  #resolve: ((response: UpstreamResponse) => void) | null;
  #reject: ((error: ProxyError) => void) | null;
  #controller: Controller | null = null;
  #cancelled: ProxyError | null = null;
  #sink: BodySink | null = null;
  #pending: Buffer[] = [];
  #ended = false;
  /** The response's trailers, once it ended with some. */
  #trailers: Record<string, string | string[]> | null = null;
  #finished = false;
  #failed: ProxyError | null = null;
  #settlePipe: ((error: ProxyError | null) => void) | null = null;
  /** The sink's drain listener while the body streams into it. */
  #onDrain: (() => void) | null = null;
  /** A gRPC call's outcome still to come with its trailers; null otherwise. */
  #late: LateGrpcOutcome | null = null;
  #status = 0;
  /** Told once the body is over (streamed, failed or discarded): one, or a list. */
  #onOver: (() => void) | (() => void)[] | null = null;
  #over = false;

  constructor(
    request: ProxyRequest,
    upstream: Upstream,
    endpoint: Endpoint,
    deps: ForwardDeps,
    scope: CallScope,
    resolve: (response: UpstreamResponse) => void,
    reject: (error: ProxyError) => void,
    trace: AttemptTrace | undefined,
  ) {
    this.#request = request;
    this.#upstream = upstream;
    this.#endpoint = endpoint;
    this.#deps = deps;
    this.#startedAt = deps.clock.now();
    this.#trace = trace;
    this.#resolve = resolve;
    this.#reject = reject;
    // Until the exchange is over, body included, the scope's end cancels it.
    this.#scope = scope;
    if (scope instanceof Scope) {
      scope.add(this);
      this.#stopListening = null;
    } else {
      this.#stopListening = onAbort(scope.signal, (reason) => this.#cancel(reason));
    }
  }

  scopeEnded(reason: ProxyError): void {
    this.#cancel(reason);
  }

  #cancel(reason: ProxyError): void {
    if (this.#controller !== null) {
      this.#controller.abort(reason);
    } else if (this.#cancelled === null) {
      // Still queued for a connection: fail now, and abort as soon as undici starts it.
      this.#cancelled = reason;
      this.#finish();
      this.#fail(reason);
    }
  }

  onRequestStart(controller: Controller): void {
    this.#controller = controller;
    if (this.#cancelled !== null) controller.abort(this.#cancelled);
  }

  onResponseStart(controller: Controller, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    // undici's controller keeps the response's raw header list (a Buffer per name and value)
    // for as long as undici's request object lives, which by now may be in the old generation:
    // the scavenger would then keep the list alive, and promote it, until the next full
    // collection. The parsed headers are all Breakwater reads.
    if (controller.rawHeaders != null) controller.rawHeaders = null;
    // An informational response (103 Early Hints, 102 Processing) is not the answer: it is
    // dropped, and the final response is still to come.
    if (statusCode < 200) {
      this.#informational += 1;
      if (this.#informational > maxInformationalResponses) {
        const message = `${this.#endpoint.origin} sent an invalid response: more than ${maxInformationalResponses} informational (1xx) responses`;
        controller.abort(new ProxyError('upstream_invalid_response', { message, attemptFailure: 'reset' }));
      }
      return;
    }
    // Hold the body until someone decides where it goes.
    controller.pause();
    const resolve = this.#resolve;
    this.#resolve = null;
    this.#reject = null;
    if (this.#request.grpc !== true) {
      this.#observe({ kind: 'response', status: statusCode });
      resolve?.({ status: statusCode, headers, body: this });
      return;
    }
    // A gRPC call: a Trailers-Only response (or a plain HTTP error) tells its status now;
    // otherwise the trailers will, at the end of the body.
    const grpcStatus = grpcStatusIn(headers) ?? (statusCode === 200 ? undefined : grpcStatusOfHttp(statusCode));
    if (grpcStatus === undefined) {
      this.#status = statusCode;
      this.#late = new LateGrpcOutcome(this.#deps.clock.now());
      resolve?.({ status: statusCode, headers, body: this, lateOutcome: this.#late });
      return;
    }
    this.#observe({ kind: 'response', status: statusCode, grpcStatus });
    resolve?.({ status: statusCode, headers, body: this, grpcStatus });
  }

  /** The upstream switched protocols (a 101 to a WebSocket handshake): the connection is the tunnel's now. */
  onRequestUpgrade(_controller: Controller, statusCode: number, headers: Record<string, string | string[] | undefined>, socket: Duplex): void {
    const resolve = this.#resolve;
    this.#resolve = null;
    this.#reject = null;
    if (resolve === null) {
      // Already given up on: nobody is left to carry the tunnel.
      socket.destroy();
      return;
    }
    this.#observe({ kind: 'response', status: statusCode });
    // No body follows a 101. The endpoint keeps the tunnel counted in flight until it closes.
    this.#ended = true;
    this.#finish(false);
    const endpoint = this.#endpoint;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      endpoint.inFlight -= 1;
    };
    resolve({ status: statusCode, headers, body: this, tunnel: { socket, release } });
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    const sink = this.#sink;
    if (sink === null) {
      this.#pending.push(chunk);
    } else if (!sink.write(chunk)) {
      controller.pause();
    }
  }

  onResponseEnd(controller: Controller, trailers: Record<string, string | string[] | undefined>): void {
    if (controller.rawTrailers != null) controller.rawTrailers = null;
    this.#ended = true;
    if (hasAny(trailers)) this.#trailers = trailers as Record<string, string | string[]>;
    // A gRPC response that ends without a status is one its client reports as UNKNOWN. Told
    // before #finish ends the attempt's span, which records it.
    if (this.#late !== null) this.#settleLate({ kind: 'response', status: this.#status, grpcStatus: grpcStatusIn(trailers) ?? grpcCodes.UNKNOWN });
    this.#finish();
    if (this.#sink !== null) {
      if (this.#trailers !== null) this.#sink.addTrailers?.(this.#trailers);
      this.#sink.end();
      this.#pipeSettled(null);
    }
  }

  onResponseError(_controller: Controller, error: Error): void {
    const failure = fromUpstreamError(error, this.#endpoint.origin, this.#upstream.maxResponseHeaderBytes);
    // A gRPC call cut after its head: its outcome is told before #finish ends its span.
    if (this.#late !== null) this.#settleLate(failure.attemptFailure === undefined ? undefined : { kind: 'failure', failure: failure.attemptFailure });
    this.#finish();
    this.#fail(failure);
  }

  /** `respondedAt`: when the response head came, for an outcome its trailers told later. */
  #observe(outcome: RecordedOutcome, respondedAt?: number): void {
    if (this.#observed) return;
    this.#observed = true;
    const now = this.#deps.clock.now();
    // A cancelled attempt judges no endpoint: it says nothing of how the endpoint does.
    this.#upstream.attemptEnded(this.#endpoint, outcome.kind === 'cancelled' ? undefined : outcome, this.#startedAt, now, respondedAt);
    this.#deps.observe({
      route: this.#request.route,
      upstream: this.#endpoint.upstream,
      endpoint: this.#endpoint.origin,
      outcome,
      durationMs: (respondedAt ?? now) - this.#startedAt,
      remainingMs: this.#request.deadlineAt - this.#startedAt,
    });
    this.#trace?.outcome(outcome);
  }

  /** The late outcome of a gRPC call is known: undefined when Breakwater gave up on it. */
  #settleLate(outcome: AttemptOutcome | undefined): void {
    const late = this.#late!;
    if (late.settled) return;
    this.#observe(outcome ?? cancelled, late.respondedAt);
    late.settle(outcome);
  }

  #fail(error: ProxyError): void {
    if (this.#late !== null) this.#settleLate(error.attemptFailure === undefined ? undefined : { kind: 'failure', failure: error.attemptFailure });
    // No attempt failure: Breakwater itself cancelled the attempt (a hedge that lost, a client gone).
    this.#observe(error.attemptFailure === undefined ? cancelled : { kind: 'failure', failure: error.attemptFailure });
    this.#failed = error;
    const reject = this.#reject;
    this.#resolve = null;
    this.#reject = null;
    if (reject !== null) reject(error);
    else this.#pipeSettled(error);
  }

  #pipeSettled(error: ProxyError | null): void {
    const settle = this.#settlePipe;
    if (settle === null) return;
    this.#settlePipe = null;
    // The sink outlives the exchange (node:http holds a client response until its connection's
    // next request): its drain listener reaches the attempt through undici's controller.
    const onDrain = this.#onDrain;
    if (onDrain !== null) {
      this.#onDrain = null;
      this.#sink!.off('drain', onDrain);
    }
    settle(error);
    this.#tellOver();
  }

  /**
   * Lets go of what the attempt held: its place on the endpoint (unless a tunnel keeps it), the
   * scope's listener, the span.
   */
  #finish(releaseEndpoint = true): void {
    if (this.#finished) return;
    this.#finished = true;
    if (releaseEndpoint) this.#endpoint.inFlight -= 1;
    if (this.#stopListening === null) (this.#scope as Scope).remove(this);
    else this.#stopListening();
    this.#trace?.end();
    // undici leaves an error listener on a streamed request body once it has sent it, and
    // node:http holds a client request until its connection's next one: through that listener
    // undici's request and this attempt would live on. A destroyed body (ended, or failed)
    // has nothing left to tell, but an error its destruction raised may still be on its way
    // (an HTTP/2 stream emits it a tick later): one listener that ignores it stays.
    const body = this.#request.body;
    if (body !== null && !Buffer.isBuffer(body) && body.destroyed) body.removeAllListeners('error').on('error', ignoreLateError);
  }

  pipeTo(sink: BodySink): Promise<void> {
    const piped = new Promise<void>((resolve, reject) => {
      if (this.#failed !== null) {
        reject(this.#failed);
        return;
      }
      this.#sink = sink;
      for (const chunk of this.#pending) sink.write(chunk);
      this.#pending = [];
      if (this.#ended) {
        if (this.#trailers !== null) sink.addTrailers?.(this.#trailers);
        sink.end();
        resolve();
        return;
      }
      // Kept free of the exchange itself: the sink (a client response, which node:http holds
      // until the connection's next request) keeps the drain listener and, through it, this.
      this.#settlePipe = (error) => (error === null ? resolve() : reject(error));
      const controller = this.#controller;
      if (controller !== null) {
        const onDrain = (): void => controller.resume();
        this.#onDrain = onDrain;
        sink.on('drain', onDrain);
        controller.resume();
      }
    });
    // Over at once unless the body still streams; then when #settlePipe is called.
    if (this.#settlePipe === null) this.#tellOver();
    return piped;
  }

  /**
   * Calls `done` once the body is over, as onBodyEnd's wrapper would, without one: a layer
   * that holds something for the whole exchange (a bulkhead slot, an attempt's scope) lets go
   * of it there.
   */
  onEnd(done: () => void): void {
    if (this.#over) {
      done();
      return;
    }
    const onOver = this.#onOver;
    if (onOver === null) this.#onOver = done;
    else if (typeof onOver === 'function') this.#onOver = [onOver, done];
    else onOver.push(done);
  }

  #tellOver(): void {
    if (this.#over) return;
    this.#over = true;
    const onOver = this.#onOver;
    this.#onOver = null;
    if (onOver === null) return;
    if (typeof onOver === 'function') onOver();
    else for (const done of onOver) done();
  }

  /**
   * The body to hand an h2c upstream's pool: `source`, except that when it fails (a body over
   * maxBodyBytes, a client gone mid-upload) the attempt is cancelled on the next turn of the
   * event loop, and the body the pool reads neither errors nor is destroyed by anyone but the
   * pool, which destroys it as the attempt ends. A piped body's error does not reach the stream
   * it is piped to: unguarded, the upstream stream would wait for the rest of a body that will
   * never come (docs/decisions/0011-h2c-and-grpc.md).
   */
  guardBody(source: Readable): Readable {
    const guarded = new PassThrough();
    // The pool destroys it as the attempt ends; the attempt reports its own error.
    guarded.on('error', () => undefined);
    source.on('error', (error: unknown) => {
      const reason = error instanceof ProxyError ? error : new ProxyError('upstream_unavailable', { message: 'the request body could not be read', cause: error });
      setImmediate(() => this.#cancel(reason));
    });
    source.pipe(guarded);
    return guarded;
  }

  discard(): void {
    try {
      this.#pending = [];
      if (this.#ended || this.#failed !== null) return;
      // Given up by Breakwater (a retry or fallback replaces it): no judgement of the upstream.
      if (this.#late !== null) this.#settleLate(undefined);
      this.#controller?.abort(new Error('response discarded'));
    } finally {
      this.#tellOver();
    }
  }
}

/** True when `fields` has at least one field (undici gives an empty object for a response without trailers). */
function hasAny(fields: Record<string, unknown> | undefined): boolean {
  for (const name in fields) if (fields[name] !== undefined) return true;
  return false;
}

/** The terminal handler: one attempt on an endpoint the upstream's balancer picks. */
export function forwardTo(upstream: Upstream, deps: ForwardDeps): Handler {
  const { clock, deadlineHeader, breakerState } = deps;
  const h2c = upstream.config.protocol === 'h2c';
  return (request, scope) =>
    new Promise<UpstreamResponse>((resolve, reject) => {
      if (hasEnded(scope)) {
        reject(abortReason(scope.signal));
        return;
      }
      // Before the attempt is counted: with no endpoint to pick, none is made.
      const endpoint = upstream.pick(request.tried);
      const number = ++request.attempts;
      request.tried.push(endpoint.origin);
      endpoint.inFlight += 1;
      const now = clock.now();
      // One list made at its final length: what the attempt adds, the deadline among it.
      const headers = request.headers.concat('x-breakwater-attempt', String(number), deadlineHeader, deadlineHeaderValue(scope.dueAt, now));
      // A gRPC server reads its deadline from grpc-timeout: this attempt's bound, as the deadline header says.
      if (request.grpc === true) headers.push('grpc-timeout', formatGrpcTimeout(scope.dueAt - now));
      const trace =
        request.trace === undefined
          ? undefined
          : request.trace.startAttempt(request, {
              number,
              upstream: endpoint.upstream,
              origin: endpoint.origin,
              remainingMs: request.deadlineAt - now,
              breakerState: breakerState?.(),
              headers,
            });
      const exchange = new Exchange(request, upstream, endpoint, deps, scope, resolve, reject, trace);
      const body = request.body;
      const sent = h2c && body !== null && !Buffer.isBuffer(body) ? exchange.guardBody(body) : body;
      const options: Dispatcher.DispatchOptions = { method: request.method, path: request.path, headers, body: sent };
      // undici writes the Connection and Upgrade headers of a handshake itself.
      if (request.upgrade !== undefined) options.upgrade = request.upgrade;
      endpoint.pool.dispatch(options, exchange);
    });
}
