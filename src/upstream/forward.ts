import type { Dispatcher } from 'undici';
import { abortReason, onAbort } from '../exchange/cancel.ts';
import { fromUpstreamError, type ProxyError } from '../exchange/errors.ts';
import type { BreakerStateName } from '../exchange/events.ts';
import type { CallScope, Handler } from '../exchange/handler.ts';
import type { AttemptObserver, RecordedOutcome } from '../exchange/record.ts';
import type { AttemptTrace, BodySink, ProxyRequest, ResponseBody, UpstreamResponse } from '../exchange/request.ts';
import { writeDeadline } from '../policies/deadline/deadline.ts';
import type { Clock } from '../runtime/clock.ts';
import type { Endpoint, Upstream } from './upstream.ts';

type Controller = Dispatcher.DispatchController;

const cancelled: RecordedOutcome = { kind: 'cancelled' };

export interface ForwardDeps {
  readonly clock: Clock;
  readonly observe: AttemptObserver;
  /** The header that tells the upstream how long Breakwater will wait for this attempt. */
  readonly deadlineHeader: string;
  /** The state of the route's breaker, for the attempt's span; absent when no breaker guards these attempts. */
  readonly breakerState?: (() => BreakerStateName) | undefined;
}

/**
 * One attempt on one endpoint, as an undici dispatch handler. It resolves at the response
 * head, then holds the body (the connection paused) until it is piped into the client
 * response or discarded, so layers can look at the status before anything reaches the client.
 */
class Exchange implements Dispatcher.DispatchHandler, ResponseBody {
  readonly #request: ProxyRequest;
  readonly #upstream: Upstream;
  readonly #endpoint: Endpoint;
  readonly #deps: ForwardDeps;
  readonly #startedAt: number;
  readonly #trace: AttemptTrace | undefined;
  readonly #stopListening: () => void;
  #observed = false;
  #resolve: ((response: UpstreamResponse) => void) | null;
  #reject: ((error: ProxyError) => void) | null;
  #controller: Controller | null = null;
  #cancelled: ProxyError | null = null;
  #sink: BodySink | null = null;
  #pending: Buffer[] = [];
  #ended = false;
  #finished = false;
  #failed: ProxyError | null = null;
  #settlePipe: ((error: ProxyError | null) => void) | null = null;

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
    this.#stopListening = onAbort(scope.signal, (reason) => this.#cancel(reason));
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
    // Hold the body until someone decides where it goes.
    controller.pause();
    this.#observe({ kind: 'response', status: statusCode });
    const resolve = this.#resolve;
    this.#resolve = null;
    this.#reject = null;
    resolve?.({ status: statusCode, headers, body: this });
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    const sink = this.#sink;
    if (sink === null) {
      this.#pending.push(chunk);
    } else if (!sink.write(chunk)) {
      controller.pause();
    }
  }

  onResponseEnd(): void {
    this.#ended = true;
    this.#finish();
    if (this.#sink !== null) {
      this.#sink.end();
      this.#settlePipe?.(null);
    }
  }

  onResponseError(_controller: Controller, error: Error): void {
    this.#finish();
    this.#fail(fromUpstreamError(error, this.#endpoint.origin));
  }

  #observe(outcome: RecordedOutcome): void {
    if (this.#observed) return;
    this.#observed = true;
    // A cancelled attempt judges no endpoint: it says nothing of how the endpoint does.
    this.#upstream.attemptEnded(this.#endpoint, outcome.kind === 'cancelled' ? undefined : outcome, this.#startedAt, this.#deps.clock.now());
    this.#deps.observe({
      route: this.#request.route,
      upstream: this.#endpoint.upstream,
      endpoint: this.#endpoint.origin,
      outcome,
      durationMs: this.#deps.clock.now() - this.#startedAt,
      remainingMs: this.#request.deadlineAt - this.#startedAt,
    });
    this.#trace?.outcome(outcome);
  }

  #fail(error: ProxyError): void {
    // No attempt failure: Breakwater itself cancelled the attempt (a hedge that lost, a client gone).
    this.#observe(error.attemptFailure === undefined ? cancelled : { kind: 'failure', failure: error.attemptFailure });
    this.#failed = error;
    const reject = this.#reject;
    this.#resolve = null;
    this.#reject = null;
    if (reject !== null) reject(error);
    else this.#settlePipe?.(error);
  }

  /** Lets go of what the attempt held: its place on the endpoint, the scope's listener, the span. */
  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#endpoint.inFlight -= 1;
    this.#stopListening();
    this.#trace?.end();
  }

  pipeTo(sink: BodySink): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#failed !== null) {
        reject(this.#failed);
        return;
      }
      this.#sink = sink;
      for (const chunk of this.#pending) sink.write(chunk);
      this.#pending = [];
      if (this.#ended) {
        sink.end();
        resolve();
        return;
      }
      this.#settlePipe = (error) => (error === null ? resolve() : reject(error));
      const controller = this.#controller;
      if (controller !== null) {
        sink.on('drain', () => controller.resume());
        controller.resume();
      }
    });
  }

  discard(): void {
    this.#pending = [];
    if (!this.#ended && this.#failed === null) this.#controller?.abort(new Error('response discarded'));
  }
}

/** The terminal handler: one attempt on an endpoint the upstream's balancer picks. */
export function forwardTo(upstream: Upstream, deps: ForwardDeps): Handler {
  const { clock, deadlineHeader, breakerState } = deps;
  return (request, scope) =>
    new Promise<UpstreamResponse>((resolve, reject) => {
      if (scope.signal.aborted) {
        reject(abortReason(scope.signal));
        return;
      }
      // Before the attempt is counted: with no endpoint to pick, none is made.
      const endpoint = upstream.pick(request.tried);
      const number = ++request.attempts;
      request.tried.push(endpoint.origin);
      endpoint.inFlight += 1;
      const now = clock.now();
      const headers = request.headers.concat('x-breakwater-attempt', String(number));
      writeDeadline(headers, deadlineHeader, scope.dueAt, now);
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
      endpoint.pool.dispatch({ method: request.method, path: request.path, headers, body: request.body }, exchange);
    });
}
