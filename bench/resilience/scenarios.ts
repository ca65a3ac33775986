// The scenarios of the resilience benchmark, as data: what the upstream does when, and what
// the client sends. Every scenario has the same services: `orders` (two replicas, the one that
// fails) and `catalog` (one replica, healthy throughout: the neighbour). Times scale with
// --quick, so a smoke run keeps every phase in proportion.
import type { Behaviour, EndpointPlan, RateStep, Window } from './plan.ts';

export type ScenarioName = 'transient' | 'stall' | 'outage' | 'overload' | 'slow-neighbour' | 'noisy-neighbour';

export interface Span {
  readonly fromMs: number;
  readonly toMs: number;
}

export interface Scenario {
  readonly name: ScenarioName;
  readonly title: string;
  /** What the upstream does, for the report. */
  readonly fault: string;
  readonly durationMs: number;
  readonly endpoints: readonly EndpointPlan[];
  readonly rates: { readonly orders: readonly RateStep[]; readonly catalog: readonly RateStep[] };
  /** The part of the run over which orders' figures are taken. */
  readonly measured: Span;
  /** The full outage, for the fail-fast and recovery figures. */
  readonly outage?: Span;
  /**
   * The p99 of `service` (catalog unless named) in `baseline` (after a first second of settling
   * in) is compared with its p99 in `fault`.
   */
  readonly neighbour?: { readonly service?: string; readonly baseline: Span; readonly fault: Span };
  /** What each system does against the scenario's fault, by its settings, printed under the tables. */
  readonly notes?: string;
  /** A second client flooding the system with half-sent requests from another address. */
  readonly flood?: { readonly fromMs: number; readonly toMs: number; readonly connections: number; readonly newPerSecond: number };
}

/**
 * The calling service: it gives up on a request after `timeoutMs`, and its HTTP client keeps
 * at most `connectionsPerOrigin` connections per host:port.
 */
export const caller = { timeoutMs: 5000, connectionsPerOrigin: 64 } as const;

/** Normal service time of both services: 5 ms median, p99 about 16 ms. */
export const normalLatency = { medianMs: 5, sigma: 0.5 } as const;
const healthy: Behaviour = { errorRate: 0, latency: normalLatency };

/**
 * Orders in the overload scenario, per replica: heavier requests (100 ms median), 8 workers and
 * 8 waiting places, so the pair holds the 32 requests every proxy is configured to send it.
 */
export const overloadWorkers = { concurrent: 8, queue: 8, latency: { medianMs: 100, sigma: 0.25 } } as const;

/** Requests per second both orders replicas together can serve with overloadWorkers. */
export function ordersCapacity(): number {
  const { medianMs, sigma } = overloadWorkers.latency;
  const meanMs = medianMs * Math.exp((sigma * sigma) / 2);
  return (2 * overloadWorkers.concurrent * 1000) / meanMs;
}

function endpoints(orders: { a?: readonly Window[]; b?: readonly Window[]; base?: Behaviour }): EndpointPlan[] {
  const base = orders.base ?? healthy;
  return [
    { name: 'orders-a', service: 'orders', base, windows: orders.a ?? [] },
    { name: 'orders-b', service: 'orders', base, windows: orders.b ?? [] },
    { name: 'catalog-a', service: 'catalog', base: healthy, windows: [] },
  ];
}

const none: readonly RateStep[] = [];

/**
 * The noisy neighbour: more half-sent requests than any system here keeps connections for in
 * all (4,096), so that only a limit per client keeps room for the others. New connections come
 * at a modest pace: the flood shares its core with the client of record, and what is measured
 * is what the held connections do, not how fast a core can open them.
 */
export const noisyFlood = { connections: 5000, newPerSecond: 1000 } as const;

/** Every scenario; `scale` shortens all times (1 for the full run). */
export function scenarios(scale: number): Scenario[] {
  const ms = (seconds: number): number => Math.round(seconds * 1000 * scale);
  const whole = (durationMs: number): Span => ({ fromMs: 0, toMs: durationMs });

  const transient = ms(15);
  const stall = ms(15);
  const outage = { fromMs: ms(5), toMs: ms(15) };
  const outageEnd = ms(25);
  const recovery: Window = { fromMs: outage.toMs, toMs: outage.toMs + ms(3), change: { errorRate: 0.1, latency: { medianMs: 50, sigma: 0.5 } }, fade: true };
  const down: Window = { ...outage, change: { down: true } };
  const overloadEnd = ms(20);
  const overloadFrom = ms(6);
  const capacity = ordersCapacity();
  const slowEnd = ms(20);
  const slowFrom = ms(6);
  const slow: Window = { fromMs: slowFrom, toMs: slowEnd, change: { latency: { medianMs: 400, sigma: 0.05 } } };
  const noisyEnd = ms(20);
  const noisy = { fromMs: ms(6), toMs: ms(16) };

  return [
    {
      name: 'transient',
      title: '30% transient 503s',
      fault: 'Both orders replicas answer 30% of requests with 503, at random, for the whole run. 200 req/s to orders.',
      durationMs: transient,
      endpoints: endpoints({ base: { ...healthy, errorRate: 0.3 } }),
      rates: { orders: [{ fromMs: 0, perSecond: 200 }], catalog: none },
      measured: whole(transient),
    },
    {
      name: 'stall',
      title: 'one replica stalls 2 s on 5% of calls',
      fault: 'orders-b holds 5% of its requests for 2 s before answering (200); orders-a is healthy. 200 req/s to orders.',
      durationMs: stall,
      endpoints: endpoints({ b: [{ fromMs: 0, toMs: stall, change: { stall: { share: 0.05, ms: 2000 } } }] }),
      rates: { orders: [{ fromMs: 0, perSecond: 200 }], catalog: none },
      measured: whole(stall),
    },
    {
      name: 'outage',
      title: `${(outage.toMs - outage.fromMs) / 1000} s full outage, then a slow recovery`,
      fault:
        `Both orders replicas stop answering from ${outage.fromMs / 1000} s to ${outage.toMs / 1000} s: connections are accepted, ` +
        'requests are read, nothing comes back (a hung process); at the end the held connections are cut. For 3 s after, ' +
        'orders recovers slowly: 10% of requests get 503 and the median latency is 50 ms, both fading back to normal. 200 req/s to orders.',
      durationMs: outageEnd,
      endpoints: endpoints({ a: [down, recovery], b: [down, recovery] }),
      rates: { orders: [{ fromMs: 0, perSecond: 200 }], catalog: none },
      measured: whole(outageEnd),
      outage,
    },
    {
      name: 'overload',
      title: 'overload at twice the capacity',
      fault:
        `Each orders replica serves ${overloadWorkers.concurrent} requests at once (${overloadWorkers.latency.medianMs} ms median), ` +
        `queues ${overloadWorkers.queue} more and refuses the rest with 503: ${Math.round(capacity)} req/s for the pair. ` +
        `Orders gets half that for ${overloadFrom / 1000} s, then twice that (${Math.round(2 * capacity)} req/s); ` +
        'catalog gets a steady 100 req/s throughout.',
      durationMs: overloadEnd,
      endpoints: endpoints({ base: { errorRate: 0, latency: overloadWorkers.latency, capacity: overloadWorkers } }),
      rates: {
        orders: [
          { fromMs: 0, perSecond: Math.round(capacity / 2) },
          { fromMs: overloadFrom, perSecond: Math.round(2 * capacity) },
        ],
        catalog: [{ fromMs: 0, perSecond: 100 }],
      },
      measured: { fromMs: overloadFrom, toMs: overloadEnd },
      neighbour: { baseline: { fromMs: ms(1), toMs: overloadFrom }, fault: { fromMs: overloadFrom, toMs: overloadEnd } },
    },
    {
      name: 'slow-neighbour',
      title: 'a slow dependency beside a healthy one',
      fault:
        `From ${slowFrom / 1000} s on, every orders request takes 400 ms (80× normal, still inside every system's 500 ms ` +
        'per-attempt limit). Catalog stays healthy. 200 req/s to orders, 100 req/s to catalog.',
      durationMs: slowEnd,
      endpoints: endpoints({ a: [slow], b: [slow] }),
      rates: { orders: [{ fromMs: 0, perSecond: 200 }], catalog: [{ fromMs: 0, perSecond: 100 }] },
      measured: { fromMs: slowFrom, toMs: slowEnd },
      neighbour: { baseline: { fromMs: ms(1), toMs: slowFrom }, fault: { fromMs: slowFrom, toMs: slowEnd } },
    },
    {
      name: 'noisy-neighbour',
      title: 'a noisy neighbour flooding half-sent requests',
      fault:
        `From ${noisy.fromMs / 1000} s to ${noisy.toMs / 1000} s, a second client on another address (127.0.0.2) keeps ` +
        `${noisyFlood.connections.toLocaleString('en-US')} connections to the system open, each with the start of a request ` +
        `head and nothing more, and replaces each one the system closes (at most ${noisyFlood.newPerSecond.toLocaleString('en-US')} ` +
        'new connections a second). The upstream stays healthy. The client of record sends 200 req/s to orders throughout, ' +
        'on the connections it opened before the flood.',
      durationMs: noisyEnd,
      endpoints: endpoints({}),
      rates: { orders: [{ fromMs: 0, perSecond: 200 }], catalog: none },
      measured: noisy,
      neighbour: { service: 'orders', baseline: { fromMs: ms(1), toMs: noisy.fromMs }, fault: noisy },
      flood: { ...noisy, ...noisyFlood },
      notes: [
        'How each system meets the flood, by its settings:',
        '- **nginx** counts a connection in `limit_conn` only once its request head has been read (its documentation says ' +
          'so), so half-sent heads are never counted: it keeps the flood’s connections until `client_header_timeout` (5 s) ' +
          'closes them, up to `worker_connections` (4,096), and while they fill it every new connection, from any client, is ' +
          'closed at once. The client of record keeps going on the connections it already had.',
        '- **HAProxy** counts every connection from an address in its stick table as it accepts it and refuses the 257th ' +
          'at once; `timeout http-request` (5 s) answers the 256 it holds with `408`.',
        '- **Breakwater** counts connections per address as it accepts them (`maxConnectionsPerClient: 256`) and closes the ' +
          '257th before reading a byte; `headersTimeout` (5 s) answers the 256 it holds with `408 request_timeout`. Each ' +
          'refused connection still costs its single Node.js thread an accept and a close, beside the client of record’s requests.',
      ].join('\n'),
    },
  ];
}

export const scenarioNames: readonly ScenarioName[] = ['transient', 'stall', 'outage', 'overload', 'slow-neighbour', 'noisy-neighbour'];
