import type { RouteConfig } from '../config/types.ts';
import type { Clock } from '../runtime/clock.ts';
import { forwardTo, type AttemptObserver } from '../upstream/forward.ts';
import type { Upstream } from '../upstream/upstream.ts';
import { compose, type Handler, type Layer } from './handler.ts';

/**
 * The one place that states the order of a route's layers, outermost first. The route
 * timeout is not a layer: it bounds the whole exchange, response body included, so the
 * listener owns it (src/proxy/listener.ts).
 */
export interface RouteDependencies {
  readonly upstream: Upstream;
  readonly clock: Clock;
  readonly observeAttempt: AttemptObserver;
}

export function buildRouteHandler(_route: RouteConfig, dependencies: RouteDependencies): Handler {
  const layers: Layer[] = [];
  return compose(layers, forwardTo(dependencies.upstream, dependencies.clock, dependencies.observeAttempt));
}
