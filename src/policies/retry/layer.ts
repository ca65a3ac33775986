import type { Readable } from 'node:stream';
import type { RetryConfig } from '../../config/types.ts';
import { hasEnded, waitOrAbort } from '../../exchange/cancel.ts';
import { ProxyError } from '../../exchange/errors.ts';
import type { GiveUpReason, PolicyEvents } from '../../exchange/events.ts';
import { callHandler, type CallScope, type Handler, type Layer } from '../../exchange/handler.ts';
import { responseOutcome, type AttemptOutcome } from '../../exchange/outcome.ts';
import type { ProxyRequest, UpstreamResponse } from '../../exchange/request.ts';
import type { Clock } from '../../runtime/clock.ts';
import type { Random } from '../../runtime/random.ts';
import { backoffDelay } from './backoff.ts';
import { bufferBody, ReplayableBody } from '../../exchange/request-body.ts';
import type { RetryBudget } from './budget.ts';
import { decideRetry } from './decide.ts';

export interface RetryDeps {
  readonly clock: Clock;
  readonly random: Random;
  readonly events: PolicyEvents;
  readonly budget: RetryBudget;
  /** The breaker of this route's upstream, when it has one: no retry while it is open. */
  readonly breakerOpen?: (now: number) => boolean;
  /** The header of the route's idempotency keys, when it names one: a POST with a key may be retried. */
  readonly keyHeader?: string;
  /**
   * True when the upstream has an endpoint in its balancer that `request` has not tried: the
   * next attempt goes there, and needs no backoff. Absent: every retry backs off.
   */
  readonly untried?: (request: ProxyRequest) => boolean;
}

/** One attempt's result: the upstream's response, or the attempt failure it rejected with. */
type Attempt =
  | { readonly outcome: Extract<AttemptOutcome, { kind: 'response' }>; readonly response: UpstreamResponse }
  | { readonly outcome: Extract<AttemptOutcome, { kind: 'failure' }>; readonly error: ProxyError };

const noHeaders: Readonly<Record<string, string | undefined>> = {};

/** The attempt's failure, or the error itself rethrown when it is not an attempt failure. */
function attemptFailure(error: unknown): Attempt {
  // Only a failed upstream attempt is retried: circuit_open, bulkhead_full,
  // deadline_exceeded or an injected fault are answers, not accidents.
  if (!(error instanceof ProxyError) || error.attemptFailure === undefined) throw error;
  return { outcome: { kind: 'failure', failure: error.attemptFailure }, error };
}

async function attempt(next: Handler, request: ProxyRequest, scope: CallScope): Promise<Attempt> {
  try {
    const response = await next(request, scope);
    return { outcome: responseOutcome(response), response };
  } catch (error) {
    return attemptFailure(error);
  }
}

/**
 * retryOn can only list 429 and 5xx statuses, and gRPC statuses other than OK, so any other
 * response is final.
 */
function isFinal(response: UpstreamResponse): boolean {
  return response.status < 500 && response.status !== 429 && (response.grpcStatus === undefined || response.grpcStatus === 0);
}

function settle(result: Attempt): UpstreamResponse {
  if ('error' in result) throw result.error;
  return result.response;
}

/**
 * Retries failed attempts. An attempt is retried when decideRetry says its outcome may be,
 * attempts remain (maxAttempts counts the first), the body can be sent again, the breaker is
 * not open, an attempt could still start after the wait (backoff, or Retry-After) within the
 * deadline, and the upstream's budget grants it: checked in that order, so the budget is only
 * spent on retries that happen. Otherwise the last outcome is returned as it is: the
 * upstream's response passes through, or the last attempt's error is rethrown.
 *
 * A retry that goes to an endpoint the request has not tried yet goes at once: the backoff
 * spaces out calls to an endpoint that just failed, and this one has not. Only the retries
 * that return to a tried endpoint wait, and the backoff's growth counts those alone, so with
 * one endpoint every retry backs off as it always did.
 */
export function retryLayer(config: RetryConfig, deps: RetryDeps): Layer {
  const { clock, random, events, budget, breakerOpen } = deps;

  /** Decides on the outcome of attempt number `attempts`, then makes the retries it allows. */
  /** `replay`: whether the body can be sent again, or the body that says so and gives each attempt its own copy. */
  async function retryAfter(next: Handler, request: ProxyRequest, scope: CallScope, replay: boolean | ReplayableBody, first: Attempt): Promise<UpstreamResponse> {
    const { route, upstream } = request;
    const giveUp = (reason: GiveUpReason, result: Attempt): UpstreamResponse => {
      events.emit({ type: 'retry-give-up', route, upstream, reason }, request);
      return settle(result);
    };
    let previousDelayMs = config.backoff.baseMs;
    let backoffs = 0;
    let result = first;
    for (let attempts = 1; ; attempts++) {
      if ('response' in result && isFinal(result.response)) return result.response;
      // The route timeout fired or the client left: nothing more can be sent.
      if (hasEnded(scope)) return settle(result);

      const now = clock.now();
      const remainingMs = scope.dueAt - now;
      const decision = decideRetry(config, {
        outcome: result.outcome,
        responseHeaders: 'response' in result ? result.response.headers : noHeaders,
        method: request.method,
        requestHeaders: request.headers,
        grpc: request.grpc === true,
        remainingMs,
        wallNow: clock.wallNow(),
        ...(deps.keyHeader === undefined ? {} : { keyHeader: deps.keyHeader }),
      });
      if (decision.kind === 'final') return settle(result);
      if (decision.kind === 'give-up') return giveUp(decision.reason, result);
      if (attempts >= config.maxAttempts) return giveUp('attempts', result);
      if (replay === false || (replay !== true && !replay.replayable)) return giveUp('body', result);
      if (breakerOpen?.(now) === true) return giveUp('breaker', result);
      const backsOff = decision.retryAfterMs === undefined && deps.untried?.(request) !== true;
      const delayMs = decision.retryAfterMs ?? (backsOff ? backoffDelay(config.backoff, backoffs + 1, previousDelayMs, random) : 0);
      if (remainingMs <= delayMs) return giveUp('deadline', result);
      if (!budget.tryWithdraw(now)) return giveUp('budget', result);

      if (backsOff) {
        backoffs += 1;
        previousDelayMs = delayMs;
      }
      if ('response' in result) result.response.body.discard();
      events.emit({ type: 'retry', route, upstream, attempt: attempts + 1, delayMs, trigger: decision.trigger }, request);
      // The request's end (route timeout, client gone) cuts the wait short.
      if (delayMs > 0) await waitOrAbort(clock, delayMs, scope.signal);
      // Nothing of a streaming body passed during the wait: no attempt was reading it.
      if (typeof replay !== 'boolean') request.body = replay.open();
      result = await attempt(next, request, scope);
    }
  }

  async function bufferThenRetry(next: Handler, request: ProxyRequest, scope: CallScope, body: Readable): Promise<UpstreamResponse> {
    const replayable = await bufferBody(request, body, config.bufferLimitBytes, scope);
    return retryAfter(next, request, scope, replayable, await attempt(next, request, scope));
  }

  /** A gRPC call's body streams to the first attempt at once, and is kept to be sent again (ReplayableBody). */
  async function streamThenRetry(next: Handler, request: ProxyRequest, scope: CallScope, body: Readable): Promise<UpstreamResponse> {
    const replay = new ReplayableBody(body, config.bufferLimitBytes);
    request.body = replay.open();
    return retryAfter(next, request, scope, replay, await attempt(next, request, scope));
  }

  return (next) => (request, scope) => {
    budget.recordRequest(clock.now());
    const body = request.body;
    if (body !== null && !Buffer.isBuffer(body)) {
      // A gRPC call may stream both ways: its first attempt cannot wait for the end of its body.
      if (request.grpc === true) return streamThenRetry(next, request, scope, body);
      // A body still streaming from the client is read into memory first, when it fits.
      return bufferThenRetry(next, request, scope, body);
    }
    // Without a body to buffer the first attempt goes straight out, and a final response
    // comes back without the retry loop.
    return callHandler(next, request, scope).then(
      (response) => (isFinal(response) ? response : retryAfter(next, request, scope, true, { outcome: responseOutcome(response), response })),
      (error: unknown) => retryAfter(next, request, scope, true, attemptFailure(error)),
    );
  };
}
