import type { Config, RetryConfig, RouteConfig } from '../config/types.ts';
import type { PolicyEvents } from '../exchange/events.ts';
import type { ProxyRequest } from '../exchange/request.ts';
import { compose, type Handler, type Layer } from '../exchange/handler.ts';
import { ProxyError } from '../exchange/errors.ts';
import type { AttemptObserver } from '../exchange/record.ts';
import { breakerLayer } from '../policies/breaker/layer.ts';
import { BreakerRegistry, routeBreakerName } from '../policies/breaker/registry.ts';
import type { CircuitBreaker } from '../policies/breaker/state.ts';
import { bulkheadLayer } from '../policies/bulkhead/layer.ts';
import { deadLetterLayer } from '../policies/dead-letter/layer.ts';
import { Bulkheads } from '../policies/bulkhead/registry.ts';
import { fallbackLayer } from '../policies/fallback/layer.ts';
import { hedgeLayer } from '../policies/hedge/layer.ts';
import { idempotencyLayer } from '../policies/idempotency/layer.ts';
import { StaleCaches } from '../policies/fallback/registry.ts';
import { faultLayer } from '../policies/fault/layer.ts';
import { attemptTimeoutLayer } from '../policies/deadline/layer.ts';
import type { LatencyWindow } from '../policies/deadline/latency.ts';
import { LatencyWindows } from '../policies/deadline/registry.ts';
import { retryLayer } from '../policies/retry/layer.ts';
import { budgetKey, RetryBudgets } from '../policies/retry/registry.ts';
import type { Clock } from '../runtime/clock.ts';
import type { Random } from '../runtime/random.ts';
import { forwardTo } from '../upstream/forward.ts';
import type { StoreRegistry } from '../stores/registry.ts';
import type { Upstream } from '../upstream/upstream.ts';

/** Policy state that outlives a config: kept across reloads while its key and config hold. */
export class PolicyRegistries {
  readonly breakers: BreakerRegistry;
  readonly bulkheads = new Bulkheads();
  readonly budgets = new RetryBudgets();
  /** Each hedging route's budget, kept apart from the upstreams' retry budgets by its key. */
  readonly hedgeBudgets = new RetryBudgets();
  readonly caches = new StaleCaches();
  readonly latencies = new LatencyWindows();

  constructor(events: PolicyEvents) {
    this.breakers = new BreakerRegistry(events);
  }

  /** Forgets what `config` no longer uses. */
  retainFor(config: Config): void {
    const breakers: string[] = [];
    const bulkheads: string[] = [];
    const budgets: string[] = [];
    const hedgeBudgets: string[] = [];
    const caches: string[] = [];
    for (const route of config.routes) {
      const upstream = config.upstreams.get(route.upstream)!;
      if (route.circuitBreaker !== undefined) breakers.push(routeBreakerName(route.name));
      else if (upstream.circuitBreaker !== undefined) breakers.push(upstream.name);
      if (upstream.bulkhead !== undefined) bulkheads.push(upstream.name);
      if (route.retry !== undefined) budgets.push(budgetKey(upstream.name, route.retry.budget));
      if (route.hedge !== undefined) hedgeBudgets.push(budgetKey(route.name, route.hedge.budget));
      if (route.fallback !== undefined) caches.push(route.name);
    }
    this.breakers.retain(breakers);
    this.bulkheads.retain(bulkheads);
    this.budgets.retain(budgets);
    this.hedgeBudgets.retain(hedgeBudgets);
    this.caches.retain(caches);
    this.latencies.retainFor(config.routes);
  }
}

export interface RouteDependencies {
  readonly upstreams: ReadonlyMap<string, Upstream>;
  readonly registries: PolicyRegistries;
  readonly stores: StoreRegistry;
  readonly clock: Clock;
  readonly random: Random;
  readonly events: PolicyEvents;
  readonly observeAttempt: AttemptObserver;
  readonly deadlineHeader: string;
}

/** The breaker a route's attempts pass: its own when it has a block, else its upstream's. */
function breakerFor(route: RouteConfig, upstream: Upstream, registries: PolicyRegistries): CircuitBreaker | undefined {
  if (route.circuitBreaker !== undefined) {
    return registries.breakers.get(routeBreakerName(route.name), upstream.name, route.circuitBreaker);
  }
  const shared = upstream.config.circuitBreaker;
  return shared === undefined ? undefined : registries.breakers.get(upstream.name, upstream.name, shared);
}

/** What a route's requests and its WebSocket handshakes share: the breaker, the per-try bound, the way out. */
interface RouteParts {
  readonly upstream: Upstream;
  readonly breaker: CircuitBreaker | undefined;
  readonly attemptTimeout: Layer;
  /** The latencies the hedge delay reads, when it is a percentile. */
  readonly hedgeWindow: LatencyWindow | undefined;
  readonly forward: (target: Upstream) => Handler;
}

function routeParts(route: RouteConfig, deps: RouteDependencies): RouteParts {
  const { clock, events, registries } = deps;
  const upstream = deps.upstreams.get(route.upstream)!;
  const breaker = breakerFor(route, upstream, registries);
  // The route's latencies, when a percentile reads them: the adaptive per-try timeout's window
  // first, then the hedge delay's when it is another length. The per-try layer feeds them.
  const adaptive = route.retry?.adaptivePerTryTimeout;
  const perTryWindow = adaptive === undefined ? undefined : registries.latencies.get(route.name, adaptive.windowMs);
  const hedgeDelay = route.hedge?.adaptiveDelay;
  const hedgeWindow = hedgeDelay === undefined ? undefined : registries.latencies.get(route.name, hedgeDelay.windowMs);
  const latencies = [...new Set([perTryWindow, hedgeWindow].filter((window) => window !== undefined))];
  const attemptTimeout = attemptTimeoutLayer(route.retry?.perTryTimeoutMs ?? adaptive, { clock, events, latencies });
  // Only the route's own upstream is behind its breaker; a failover upstream is not. The
  // breaker layer has just admitted the attempt, which brought the state up to date.
  const breakerState = breaker === undefined ? undefined : () => breaker.stateName;
  const forward = (target: Upstream): Handler =>
    forwardTo(target, {
      clock,
      observe: deps.observeAttempt,
      deadlineHeader: deps.deadlineHeader,
      breakerState: target === upstream ? breakerState : undefined,
    });
  return { upstream, breaker, attemptTimeout, hedgeWindow, forward };
}

/**
 * The one place that states the order of a route's layers, outermost first
 * (docs/architecture.md explains each position). The deadline is not a layer: it bounds the
 * whole exchange, response body included, so the listener computes it and owns its timer.
 */
export function buildRouteHandler(route: RouteConfig, deps: RouteDependencies): Handler {
  const { clock, random, events, registries } = deps;
  const { upstream, breaker, attemptTimeout, hedgeWindow, forward } = routeParts(route, deps);

  // A POST or PATCH with the route's idempotency key may be sent twice.
  const keyHeader = route.idempotency === undefined ? {} : { keyHeader: route.idempotency.header };
  // A retry to an endpoint the request has not tried goes without a backoff.
  const untried = (request: ProxyRequest): boolean => upstream.hasUntried(request.tried);
  const layers: Layer[] = [];
  // Outermost: a duplicate is answered from the store before anything else runs, so a replay is
  // never disturbed by chaos, queues or breakers, and a first request's answer is stored as the
  // caller got it, after every policy below.
  if (route.idempotency !== undefined) {
    layers.push(idempotencyLayer(route.name, route.idempotency, { clock, events, records: deps.stores.get(route.idempotency.store).records }));
  }
  // Injected faults reach the caller as a failing network would, before anything can mask
  // them, as Envoy's and Istio's fault filters do.
  if (route.fault !== undefined) layers.push(faultLayer(route.fault, { clock, random, events }));
  // Sees the final outcome after retries and fallbacks, so a fallback's answer is never kept;
  // inside fault, so an injected abort is never kept either.
  if (route.deadLetter !== undefined) {
    layers.push(deadLetterLayer(route.name, route.deadLetter, { clock, events, log: deps.stores.get(route.deadLetter.store).log }));
  }
  // Sees the final outcome after retries, and the bulkhead's and breaker's refusals.
  if (route.fallback !== undefined) {
    const failovers = new Map<string, Handler>();
    layers.push(
      fallbackLayer(route.fallback, {
        clock,
        events,
        route: route.name,
        cache: registries.caches.get(route.name, route.fallback),
        failover: (name) => {
          let handler = failovers.get(name);
          if (handler === undefined) {
            // A failover attempt gets its own per-try bound, like any attempt.
            handler = compose([attemptTimeout], forward(deps.upstreams.get(name)!));
            failovers.set(name, handler);
          }
          return handler;
        },
      }),
    );
  }
  // Outside retry: a request holds one slot for its whole life, so retries cannot multiply
  // the concurrency the upstream sees.
  const bulkhead = upstream.config.bulkhead;
  if (bulkhead !== undefined) {
    layers.push(bulkheadLayer(registries.bulkheads.get(upstream.name, bulkhead), { clock, events, queueTimeoutMs: bulkhead.queueTimeoutMs }));
  }
  // Outside the breaker: every attempt asks it, a refused attempt is not retried, and no
  // backoff is slept while it is open. With hedging, one layer owns both, so that hedges and
  // retries together count against one maxAttempts.
  if (route.hedge !== undefined) {
    layers.push(
      hedgeLayer(route.hedge, route.retry, {
        clock,
        random,
        events,
        hedgeBudget: registries.hedgeBudgets.get(route.name, route.hedge.budget),
        ...(route.retry === undefined ? {} : { retryBudget: registries.budgets.get(upstream.name, route.retry.budget) }),
        ...(breaker === undefined ? {} : { breakerOpen: (now: number) => breaker.isOpen(now) }),
        ...(hedgeWindow === undefined ? {} : { latencies: hedgeWindow }),
        ...keyHeader,
        untried,
      }),
    );
  } else if (route.retry !== undefined) {
    layers.push(
      retryLayer(route.retry, {
        clock,
        random,
        events,
        budget: registries.budgets.get(upstream.name, route.retry.budget),
        ...(breaker === undefined ? {} : { breakerOpen: (now: number) => breaker.isOpen(now) }),
        ...keyHeader,
        untried,
      }),
    );
  }
  if (breaker !== undefined) layers.push(breakerLayer(breaker, { clock, events }));
  // Innermost: bounds one attempt until its response head, and is what the upstream is told.
  layers.push(attemptTimeout);
  return compose(layers, forward(upstream));
}

/**
 * The retry rules of a WebSocket handshake: the route's, retrying only an attempt that could not
 * connect. The upstream never saw such a handshake; one that reached it may have opened a
 * session there, and the client's own WebSocket library decides whether to reconnect after a
 * refusal (browsers and most libraries do, with their own backoff). Undefined when the route
 * does not retry connect failures.
 */
export function handshakeRetry(retry: RetryConfig | undefined): RetryConfig | undefined {
  if (retry === undefined || !retry.retryOn.includes('connect-failure')) return undefined;
  return { ...retry, retryOn: ['connect-failure'] };
}

/**
 * The layers a WebSocket handshake passes, outermost first, up to the upstream's answer. What
 * comes after a 101 (the tunnel, its idle and duration bounds) is the listener's business.
 * Idempotency, dead letters, fallbacks and hedging are left out: a handshake is a GET with no
 * body to replay, a static or cached answer is no WebSocket, and a hedge could open two.
 */
export function buildHandshakeHandler(route: RouteConfig, deps: RouteDependencies): Handler {
  const { clock, random, events, registries } = deps;
  const { upstream, breaker, attemptTimeout, forward } = routeParts(route, deps);
  if (upstream.config.protocol === 'h2c') {
    // A WebSocket over HTTP/2 needs extended CONNECT (RFC 8441), which neither undici's client
    // nor most servers speak: refused clearly here rather than failing as an unreachable upstream.
    const refusal = `upstream ${upstream.name} speaks h2c; WebSocket handshakes need an upstream with protocol: http1`;
    return () => Promise.reject(new ProxyError('upgrade_not_supported', { message: refusal }));
  }
  const layers: Layer[] = [];
  // Chaos as for any request: an injected abort answers the handshake, a delay holds it.
  if (route.fault !== undefined) layers.push(faultLayer(route.fault, { clock, random, events }));
  // The slot is held until the upstream's answer only (the 101's empty body ends at once): a
  // tunnel open for hours holding one would starve the upstream's requests.
  const bulkhead = upstream.config.bulkhead;
  if (bulkhead !== undefined) {
    layers.push(bulkheadLayer(registries.bulkheads.get(upstream.name, bulkhead), { clock, events, queueTimeoutMs: bulkhead.queueTimeoutMs }));
  }
  const retry = handshakeRetry(route.retry);
  if (retry !== undefined) {
    layers.push(
      retryLayer(retry, {
        clock,
        random,
        events,
        budget: registries.budgets.get(upstream.name, retry.budget),
        ...(breaker === undefined ? {} : { breakerOpen: (now: number) => breaker.isOpen(now) }),
      }),
    );
  }
  // The handshake's outcome counts like any attempt's: a 101 is a success, a refused connection a failure.
  if (breaker !== undefined) layers.push(breakerLayer(breaker, { clock, events }));
  layers.push(attemptTimeout);
  return compose(layers, forward(upstream));
}
