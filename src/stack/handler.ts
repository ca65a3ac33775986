import type { ProxyRequest, UpstreamResponse } from '../proxy/context.ts';

/** Turns a request into the upstream's response, or rejects with a ProxyError. */
export type Handler = (request: ProxyRequest) => Promise<UpstreamResponse>;

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
export function callHandler(handler: Handler, request: ProxyRequest): Promise<UpstreamResponse> {
  try {
    return handler(request);
  } catch (error) {
    return Promise.reject(error);
  }
}
