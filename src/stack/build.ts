import type { RouteConfig } from '../config/types.ts';
import type { PolicyEvents } from '../policies/events.ts';
import { attemptTimeoutLayer } from '../policies/timeout/layer.ts';
import type { Clock } from '../runtime/clock.ts';
import { forwardTo, type AttemptObserver } from '../upstream/forward.ts';
import type { Upstream } from '../upstream/upstream.ts';
import { compose, type Handler, type Layer } from './handler.ts';

export interface RouteDependencies {
  readonly upstream: Upstream;
  readonly clock: Clock;
  readonly events: PolicyEvents;
  readonly observeAttempt: AttemptObserver;
  readonly deadlineHeader: string;
}

/**
 * The one place that states the order of a route's layers, outermost first. The deadline is
 * not a layer: it bounds the whole exchange, response body included, so the listener
 * computes it and owns its timer (src/proxy/listener.ts).
 */
export function buildRouteHandler(route: RouteConfig, deps: RouteDependencies): Handler {
  const layers: Layer[] = [
    // Innermost: bounds each attempt until its response head, and refuses to start one once
    // the deadline is spent.
    attemptTimeoutLayer(route.retry?.perTryTimeoutMs, deps),
  ];
  return compose(
    layers,
    forwardTo(deps.upstream, { clock: deps.clock, observe: deps.observeAttempt, deadlineHeader: deps.deadlineHeader }),
  );
}
