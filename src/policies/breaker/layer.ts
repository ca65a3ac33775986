// The breaker on the data path. It sits inside retry, so every attempt passes it and is
// counted, and outside the per-try timeout, so a timed-out attempt counts as a timeout.

import { ProxyError } from '../../exchange/errors.ts';
import type { PolicyEvents } from '../../exchange/events.ts';
import { callHandler, type Layer } from '../../exchange/handler.ts';
import { matchesFailOn, responseOutcome, type AttemptOutcome } from '../../exchange/outcome.ts';
import type { Clock } from '../../runtime/clock.ts';
import type { CircuitBreaker } from './state.ts';
import type { JudgedCall } from './window.ts';

// The four verdicts, made once: every call through the breaker is judged.
const fast: JudgedCall = { failed: false, slow: false };
const slow: JudgedCall = { failed: false, slow: true };
const failedFast: JudgedCall = { failed: true, slow: false };
const failedSlow: JudgedCall = { failed: true, slow: true };

export interface BreakerLayerDependencies {
  readonly clock: Clock;
  readonly events: PolicyEvents;
}

/**
 * Refuses attempts with 503 circuit_open while the breaker is open, without touching the
 * network, and reports the outcome of every attempt it lets through: failed as the breaker's
 * `failOn` says, slow when its response head took longer than `slowCallDuration`.
 */
export function breakerLayer(breaker: CircuitBreaker, deps: BreakerLayerDependencies): Layer {
  const { clock, events } = deps;
  const { failOn, slowCallDurationMs } = breaker.config;
  /** `tookMs`: from the attempt's start to its response head, or to its failure. */
  const judge = (outcome: AttemptOutcome, tookMs: number): JudgedCall => {
    const failed = matchesFailOn(outcome, failOn);
    return tookMs > slowCallDurationMs ? (failed ? failedSlow : slow) : failed ? failedFast : fast;
  };

  return (next) => (request, scope) => {
    const startedAt = clock.now();
    const admission = breaker.admit(startedAt);
    if (admission.verdict === 'reject') {
      events.emit({ type: 'breaker-rejected', breaker: breaker.name, route: request.route, upstream: request.upstream }, request);
      return Promise.reject(new ProxyError('circuit_open', { message: refusal(breaker, startedAt) }));
    }
    return callHandler(next, request, scope).then(
      (response) => {
        const now = clock.now();
        const late = response.lateOutcome;
        if (late === undefined) {
          breaker.record(now, judge(responseOutcome(response), now - startedAt), admission);
          return response;
        }
        // A gRPC call is judged by the status its trailers bring; it is slow or not by its head.
        const tookMs = now - startedAt;
        late.onOutcome((outcome) => {
          if (outcome === undefined) breaker.release(admission);
          else breaker.record(clock.now(), judge(outcome, tookMs), admission);
        });
        return response;
      },
      (error: unknown) => {
        const failure = error instanceof ProxyError ? error.attemptFailure : undefined;
        // No attempt failure means the upstream was never judged: the call was cancelled (the
        // client left) or never sent (no deadline left). Its probe slot goes to the next call.
        if (failure === undefined) breaker.release(admission);
        else {
          const now = clock.now();
          breaker.record(now, judge({ kind: 'failure', failure }, now - startedAt), admission);
        }
        throw error;
      },
    );
  };
}

/** Names the breaker and says why it refused, for the body of the 503. */
function refusal(breaker: CircuitBreaker, now: number): string {
  const state = breaker.stateAt(now);
  if (breaker.mode === 'forced-open') return `circuit breaker ${breaker.name} was forced open by an operator`;
  if (state.kind === 'open') return `circuit breaker ${breaker.name} is open; probes resume in ${Math.ceil(state.retryAt - now)} ms`;
  return `circuit breaker ${breaker.name} is half-open and every probe slot is taken`;
}
