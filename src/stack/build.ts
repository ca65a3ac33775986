import type { RouteConfig } from '../config/types.ts';
import type { Upstream } from '../upstream/upstream.ts';
import { forwardTo } from '../upstream/forward.ts';
import { compose, type Handler, type Layer } from './handler.ts';

/**
 * The one place that states the order of a route's layers, outermost first. The route
 * timeout is not a layer: it bounds the whole exchange, response body included, so the
 * listener owns it (src/proxy/listener.ts).
 */
export function buildRouteHandler(_route: RouteConfig, upstream: Upstream): Handler {
  const layers: Layer[] = [];
  return compose(layers, forwardTo(upstream));
}
