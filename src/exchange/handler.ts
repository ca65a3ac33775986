import type { ProxyRequest, UpstreamResponse } from './request.ts';

/**
 * What bounds one pass down a route's layers. The listener makes the request's scope; a layer
 * that starts attempts of its own (a per-try timeout, a hedge) gives each a child scope
 * (src/exchange/cancel.ts), so one attempt can be cancelled while the others go on.
 */
export interface CallScope {
  /** Aborted, with the ProxyError that ends it, when this pass must stop. */
  readonly signal: AbortSignal;
  /** Monotonic ms by which this pass must have its response head: the deadline, or an attempt's bound. */
  readonly dueAt: number;
}

/** Turns a request into the upstream's response, or rejects with a ProxyError. */
export type Handler = (request: ProxyRequest, scope: CallScope) => Promise<UpstreamResponse>;

/** Wraps a handler with one concern (a timeout, a retry, a breaker...). */
export type Layer = (next: Handler) => Handler;

/** Folds layers around a terminal handler; `layers[0]` is the outermost. */
export function compose(layers: readonly Layer[], terminal: Handler): Handler {
  return layers.reduceRight<Handler>((next, layer) => layer(next), terminal);
}

/**
 * Calls a handler, turning a synchronous throw into a rejection, so that the layer calling it
 * always reaches its clean-up (a slot, a timer, a probe) through the promise.
 */
export function callHandler(handler: Handler, request: ProxyRequest, scope: CallScope): Promise<UpstreamResponse> {
  try {
    return handler(request, scope);
  } catch (error) {
    return Promise.reject(error);
  }
}
