import { hasEnded } from '../../exchange/cancel.ts';
import type { FallbackConfig, FallbackStep } from '../../config/types.ts';
import { ProxyError } from '../../exchange/errors.ts';
import type { FallbackKind, PolicyEvents } from '../../exchange/events.ts';
import { callHandler, type CallScope, type Handler, type Layer } from '../../exchange/handler.ts';
import type { ProxyRequest, UpstreamResponse } from '../../exchange/request.ts';
import type { Clock } from '../../runtime/clock.ts';
import { bufferedBody, grpcMessageBody, statusHasBody } from '../../exchange/body.ts';
import { encodeGrpcMessage, grpcCodes, grpcStatusOfHttp } from '../../exchange/grpc.ts';
import { responseOutcome } from '../../exchange/outcome.ts';
import { triggersFallback } from './select.ts';
import type { StaleCache } from './stale-cache.ts';

export interface FallbackDeps {
  readonly clock: Clock;
  readonly events: PolicyEvents;
  /** The route's stale cache; required when the chain has a staleCache step. */
  readonly cache?: StaleCache;
  /** A handler for another upstream, with its own timeout; required when the chain has an upstream step. */
  readonly failover?: (upstream: string) => Handler;
  readonly route: string;
}

const kindOfStep: Record<FallbackStep['kind'], FallbackKind> = { staleCache: 'stale', upstream: 'upstream', response: 'static' };

function staticResponse(step: Extract<FallbackStep, { kind: 'response' }>): UpstreamResponse {
  const body = Buffer.from(step.body);
  const headers: Record<string, string> = { ...step.headers, 'x-breakwater-fallback': 'static' };
  if (statusHasBody(step.status)) headers['content-length'] = String(body.length);
  return { status: step.status, headers, body: bufferedBody(body), fallback: 'static' };
}

/**
 * The static step as a gRPC caller gets it: a gRPC response, not the HTTP one its client could
 * not read. OK answers one message with every field at its default value (an empty message
 * decodes as that whatever its type); another status answers with that status alone.
 */
function staticGrpcResponse(step: Extract<FallbackStep, { kind: 'response' }>): UpstreamResponse {
  const grpcStatus = step.grpcStatus ?? (step.status >= 200 && step.status <= 299 ? grpcCodes.OK : grpcStatusOfHttp(step.status));
  const headers = { 'content-type': 'application/grpc', 'x-breakwater-fallback': 'static' };
  if (grpcStatus !== grpcCodes.OK) {
    return {
      status: 200,
      headers: { ...headers, 'grpc-status': String(grpcStatus), 'grpc-message': encodeGrpcMessage('served by a static fallback') },
      grpcStatus,
      body: bufferedBody(null),
      fallback: 'static',
    };
  }
  return { status: 200, headers, grpcStatus, body: grpcMessageBody(Buffer.alloc(0), { 'grpc-status': '0' }), fallback: 'static' };
}

/**
 * Answers for a failed call from the route's fallback chain. It sits outside the bulkhead and
 * retries, so it sees the final outcome. When the outcome is one of `on`, the steps are tried
 * in order and the first that yields a response wins; past the last, the original failure
 * stands. Successful GET and HEAD answers are copied into the stale cache as they stream.
 */
export function fallbackLayer(config: FallbackConfig, deps: FallbackDeps): Layer {
  const { clock, events, cache, failover, route } = deps;
  for (const step of config.chain) {
    if (step.kind === 'staleCache' && cache === undefined) throw new Error(`route ${route}: a staleCache fallback needs a cache`);
    if (step.kind === 'upstream' && failover === undefined) throw new Error(`route ${route}: an upstream fallback needs a failover handler`);
  }
  const statics = new Map(config.chain.flatMap((step) => (step.kind === 'response' ? [[step, staticResponse(step)] as const] : [])));
  const grpcStatics = new Map(config.chain.flatMap((step) => (step.kind === 'response' ? [[step, staticGrpcResponse(step)] as const] : [])));

  async function failOver(upstream: string, request: ProxyRequest, scope: CallScope): Promise<UpstreamResponse | undefined> {
    // A streamed body has been consumed and cannot be sent again; a request cut short (route
    // timeout, client gone) would have its new attempt cancelled at once.
    if (!(request.body === null || Buffer.isBuffer(request.body)) || hasEnded(scope)) return undefined;
    let response: UpstreamResponse;
    try {
      response = await failover!(upstream)(request, scope);
    } catch {
      return undefined;
    }
    // The other upstream failing the same way is no better an answer: go on down the chain.
    if (triggersFallback(responseOutcome(response), config.on)) {
      response.body.discard();
      return undefined;
    }
    return { ...response, headers: { ...response.headers, 'x-breakwater-fallback': 'upstream' }, fallback: 'upstream' };
  }

  function tryStep(step: FallbackStep, request: ProxyRequest, scope: CallScope): Promise<UpstreamResponse | undefined> | UpstreamResponse | undefined {
    switch (step.kind) {
      case 'staleCache':
        return cache!.lookup(request, clock.now(), step.maxAgeMs);
      case 'upstream':
        return failOver(step.upstream, request, scope);
      case 'response':
        return (request.grpc === true ? grpcStatics : statics).get(step);
    }
  }

  async function runChain(request: ProxyRequest, scope: CallScope): Promise<UpstreamResponse | undefined> {
    for (const step of config.chain) {
      const response = await tryStep(step, request, scope);
      events.emit({ type: 'fallback', route, kind: kindOfStep[step.kind], result: response === undefined ? 'failure' : 'success' }, request);
      if (response !== undefined) return response;
    }
    return undefined;
  }

  async function afterError(request: ProxyRequest, scope: CallScope, error: unknown): Promise<UpstreamResponse> {
    if (!(error instanceof ProxyError) || !triggersFallback({ kind: 'error', reason: error.reason }, config.on)) throw error;
    const served = await runChain(request, scope);
    if (served === undefined) throw error;
    return served;
  }

  async function afterFailingResponse(request: ProxyRequest, scope: CallScope, response: UpstreamResponse): Promise<UpstreamResponse> {
    // The upstream's own answer stays on hold: it is what the caller gets if no step serves.
    const served = await runChain(request, scope);
    if (served === undefined) return response;
    response.body.discard();
    return served;
  }

  return (next) => (request, scope) => {
    return callHandler(next, request, scope).then(
      (response) => {
        if (triggersFallback(responseOutcome(response), config.on)) return afterFailingResponse(request, scope, response);
        return cache === undefined ? response : cache.capture(request, response, clock.now());
      },
      (error: unknown) => afterError(request, scope, error),
    );
  };
}
