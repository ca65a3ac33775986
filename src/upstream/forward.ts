import type { ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { AttemptTrace, ProxyRequest, ResponseBody, UpstreamResponse } from '../proxy/context.ts';
import { fromUpstreamError, type AttemptFailure, type ProxyError } from '../proxy/errors.ts';
import { announcedBudgetMs } from '../policies/deadline/budget.ts';
import type { BreakerStateName } from '../policies/events.ts';
import type { Clock } from '../runtime/clock.ts';
import type { Handler } from '../stack/handler.ts';
import type { Endpoint, Upstream } from './upstream.ts';

type Controller = Dispatcher.DispatchController;

/** How one attempt ended: with a response head, or with a failure before one. */
export interface AttemptOutcome {
  readonly route: string;
  readonly upstream: string;
  readonly endpoint: string;
  readonly outcome: 'response' | AttemptFailure;
  readonly status: number | undefined;
  /** From sending the attempt to its outcome. */
  readonly durationMs: number;
  /** What was left of the request's deadline when the attempt started. */
  readonly remainingMs: number;
}

export type AttemptObserver = (outcome: AttemptOutcome) => void;

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
  readonly #endpoint: Endpoint;
  readonly #context: ForwardDeps;
  readonly #startedAt: number;
  readonly #trace: AttemptTrace | undefined;
  #observed = false;
  #resolve: ((response: UpstreamResponse) => void) | null;
  #reject: ((error: ProxyError) => void) | null;
  #controller: Controller | null = null;
  #cancelled: ProxyError | null = null;
  #sink: ServerResponse | null = null;
  #pending: Buffer[] = [];
  #ended = false;
  #failed: ProxyError | null = null;
  #settlePipe: ((error: ProxyError | null) => void) | null = null;

  constructor(
    request: ProxyRequest,
    endpoint: Endpoint,
    context: ForwardDeps,
    resolve: (response: UpstreamResponse) => void,
    reject: (error: ProxyError) => void,
    trace: AttemptTrace | undefined,
  ) {
    this.#request = request;
    this.#endpoint = endpoint;
    this.#context = context;
    this.#startedAt = context.clock.now();
    this.#trace = trace;
    this.#resolve = resolve;
    this.#reject = reject;
    request.cancelAttempt = (reason) => this.#cancel(reason);
  }

  #cancel(reason: ProxyError): void {
    if (this.#controller !== null) {
      this.#controller.abort(reason);
    } else if (this.#cancelled === null) {
      // Still queued for a connection: fail now, and abort as soon as undici starts it.
      this.#cancelled = reason;
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
    this.#observe('response', statusCode);
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
    this.#fail(fromUpstreamError(error));
  }

  #observe(outcome: AttemptOutcome['outcome'], status: number | undefined): void {
    if (this.#observed) return;
    this.#observed = true;
    this.#context.observe({
      route: this.#request.route,
      upstream: this.#endpoint.upstream,
      endpoint: this.#endpoint.origin,
      outcome,
      status,
      durationMs: this.#context.clock.now() - this.#startedAt,
      remainingMs: this.#request.deadlineAt - this.#startedAt,
    });
    this.#trace?.outcome(outcome, status);
  }

  #fail(error: ProxyError): void {
    this.#observe(error.attemptFailure ?? 'reset', undefined);
    this.#failed = error;
    const reject = this.#reject;
    this.#resolve = null;
    this.#reject = null;
    if (reject !== null) reject(error);
    else this.#settlePipe?.(error);
  }

  #finish(): void {
    this.#endpoint.inFlight -= 1;
    if (this.#request.cancelAttempt !== null) this.#request.cancelAttempt = null;
    this.#trace?.end();
  }

  pipeTo(sink: ServerResponse): Promise<void> {
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
export function forwardTo(upstream: Upstream, context: ForwardDeps): Handler {
  const { clock, deadlineHeader, breakerState } = context;
  return (request) =>
    new Promise<UpstreamResponse>((resolve, reject) => {
      if (request.abortReason !== null) {
        reject(request.abortReason);
        return;
      }
      request.attempts += 1;
      const endpoint = upstream.pick();
      endpoint.inFlight += 1;
      const now = clock.now();
      const headers = request.headers.concat(
        'x-breakwater-attempt',
        String(request.attempts),
        deadlineHeader,
        String(announcedBudgetMs(request.attemptDeadlineAt, now)),
      );
      const trace =
        request.trace === undefined
          ? undefined
          : request.trace.startAttempt(request, {
              upstream: endpoint.upstream,
              origin: endpoint.origin,
              remainingMs: request.deadlineAt - now,
              breakerState: breakerState?.(),
              headers,
            });
      const exchange = new Exchange(request, endpoint, context, resolve, reject, trace);
      endpoint.pool.dispatch({ method: request.method, path: request.path, headers, body: request.body }, exchange);
    });
}
