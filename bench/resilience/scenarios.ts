// The scenarios of the resilience benchmark, as data: what the upstream does when, and what
// the client sends. Every scenario has the same services: `orders` (the one that fails: two
// replicas, three in the tail-latency scenarios) and `catalog` (one replica, healthy
// throughout: the neighbour). Times scale with --quick, so a smoke run keeps every phase in
// proportion.
import type { Behaviour, EndpointPlan, RateStep, Window } from './plan.ts';
import type { SystemName } from './systems.ts';
import { fixedPerTry, systemNames } from './systems.ts';

export type ScenarioName = 'transient' | 'stall' | 'three-healthy' | 'slow-replica' | 'tail-at-scale' | 'latency-shift' | 'outage' | 'overload' | 'slow-neighbour' | 'noisy-neighbour';

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
  /** A second client flooding the system with half-sent requests from another address. */
  readonly flood?: { readonly fromMs: number; readonly toMs: number; readonly connections: number; readonly newPerSecond: number };
  /** The systems run; absent: the peers (no proxy, nginx, HAProxy, Breakwater). */
  readonly systems?: readonly SystemName[];
  /**
   * Show how the system cut attempts short: the healthy attempts it gave up on (the upstream
   * would have answered them normally) and how long it held the hung ones.
   */
  readonly cutAttempts?: true;
  /** Named stretches of the run whose cut figures the report also gives one by one. */
  readonly phases?: readonly { readonly name: string; readonly span: Span }[];
  /** What each system does against the scenario's fault, by its settings, printed under the tables. */
  readonly notes?: string;
  /** A chart of the run over time, written to `file` (under docs/), with `band` shaded and named. */
  readonly chart?: { readonly file: string; readonly band: Span; readonly bandLabel: string };
}

/** The systems a scenario runs. */
export function systemsOf(scenario: Scenario): readonly SystemName[] {
  return scenario.systems ?? systemNames;
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

/** Three orders replicas, each with its own behaviour, and catalog. */
function threeReplicas(a: Behaviour, b: Behaviour, c: Behaviour, windows: readonly Window[] = []): EndpointPlan[] {
  return [
    { name: 'orders-a', service: 'orders', base: a, windows },
    { name: 'orders-b', service: 'orders', base: b, windows },
    { name: 'orders-c', service: 'orders', base: c, windows },
    { name: 'catalog-a', service: 'catalog', base: healthy, windows: [] },
  ];
}

/** The slow replica of the slow-replica scenario: ten times the normal median. */
export const slowReplicaLatency = { medianMs: normalLatency.medianMs * 10, sigma: normalLatency.sigma } as const;

/** "The Tail at Scale": on every replica, this share of calls stalls this long. */
export const tailStall = { share: 0.01, ms: 500 } as const;

/** The latency-shift scenario: the service time moves from `from` to `to` and back; a few calls hang. */
export const latencyShift = {
  from: { medianMs: 10, sigma: 0.5 },
  to: { medianMs: 100, sigma: 0.5 },
  hang: { share: 0.01, ms: 5000 },
} as const;

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
  const threeEnd = ms(15);
  const tailEnd = ms(30);
  // the last phase outlasts the adaptive per-try timeout's 10 s window, so that its return to
  // the short limit shows
  const shiftEnd = ms(40);
  const shifted = { fromMs: ms(10), toMs: ms(20) };
  const shiftBase: Behaviour = { errorRate: 0, latency: latencyShift.from, stall: latencyShift.hang };

  return [
    {
      name: 'transient',
      title: '30% transient 503s',
      fault: 'Both orders replicas answer 30% of requests with 503, at random, for the whole run. 200 req/s to orders.',
      durationMs: transient,
      endpoints: endpoints({ base: { ...healthy, errorRate: 0.3 } }),
      rates: { orders: [{ fromMs: 0, perSecond: 200 }], catalog: none },
      measured: whole(transient),
      notes: [
        'How each system retries, by its settings:',
        '- **nginx** counts each 503 against the replica and takes both out of rotation (see its settings above).',
        '- **HAProxy** retries at once on the other replica, up to four times.',
        '- **Breakwater** retries at once too, on the replica the request has not tried first, up to four times, within a ' +
          'retry budget of half the calls.',
      ].join('\n'),
    },
    {
      name: 'stall',
      title: 'one replica stalls 2 s on 5% of calls',
      fault: 'orders-b holds 5% of its requests for 2 s before answering (200); orders-a is healthy. 200 req/s to orders.',
      durationMs: stall,
      endpoints: endpoints({ b: [{ fromMs: 0, toMs: stall, change: { stall: { share: 0.05, ms: 2000 } } }] }),
      rates: { orders: [{ fromMs: 0, perSecond: 200 }], catalog: none },
      measured: whole(stall),
      notes: [
        'How each system meets the stalls, by its settings:',
        '- **nginx** counts each 500 ms read timeout against orders-b and, at five within 3 s, takes it out of rotation for 3 s.',
        '- **HAProxy** waits out its 500 ms server timeout, then retries on orders-a; ten errors in a row would mark orders-b ' +
          'down, and stalls that are 5% of its calls rarely make ten in a row.',
        '- **Breakwater** sends a second attempt to orders-a when a call has not answered by the p95 of the last 10 s of ' +
          'answers, takes the first answer and cancels the other. orders-b answers most calls as fast as orders-a, so neither ' +
          'outlier detection nor peak-EWMA has reason to avoid it.',
      ].join('\n'),
    },
    {
      name: 'three-healthy',
      title: 'three healthy replicas',
      fault: 'No fault: three orders replicas answer in 5 ms (median). The reference for the next scenario. 200 req/s to orders.',
      durationMs: threeEnd,
      endpoints: threeReplicas(healthy, healthy, healthy),
      rates: { orders: [{ fromMs: 0, perSecond: 200 }], catalog: none },
      measured: whole(threeEnd),
      notes:
        'What each system costs over three healthy replicas. Breakwater hedges even here: a call that has not answered by the ' +
        'p95 of recent answers gets a second attempt, which shows in its amplification.',
    },
    {
      name: 'slow-replica',
      title: 'one replica of three is ten times slower',
      fault:
        `orders-c answers in ${slowReplicaLatency.medianMs} ms (median) for the whole run, ten times its siblings' ` +
        `${normalLatency.medianMs} ms, without an error. 200 req/s to orders.`,
      durationMs: threeEnd,
      endpoints: threeReplicas(healthy, healthy, { ...healthy, latency: slowReplicaLatency }),
      rates: { orders: [{ fromMs: 0, perSecond: 200 }], catalog: none },
      measured: whole(threeEnd),
      notes: [
        'How each system meets the slow replica, by its settings:',
        '- **nginx** (`least_conn`) and **HAProxy** (`leastconn`) send a call to the replica with the fewest calls open. ' +
          'orders-c holds each call ten times longer, so it has more open and gets fewer calls, but at this rate all three ' +
          'are often idle and it keeps a large share. Their passive checks count errors and timeouts; orders-c has neither.',
        '- **Breakwater** (`peak-ewma`) compares two replicas drawn at random by latency estimate × calls open. orders-c’s ' +
          'estimate jumps at its first slow answer, so it loses nearly every draw; the estimate fades without answers, so ' +
          'orders-c is tried again now and then, and a call that goes there is hedged on another replica at the p95 of ' +
          'recent answers. Outlier detection takes orders-c out when it has answered 20 calls within 5 s with a median three ' +
          'times the others’.',
      ].join('\n'),
    },
    {
      name: 'tail-at-scale',
      title: 'the tail at scale: rare stalls on every replica',
      fault:
        `On each of three orders replicas, ${tailStall.share * 100}% of calls stall ${tailStall.ms} ms before answering ` +
        '(200), at random; the others answer in 5 ms (median). 300 req/s to orders.',
      durationMs: tailEnd,
      endpoints: threeReplicas(...([1, 2, 3].map(() => ({ ...healthy, stall: tailStall })) as [Behaviour, Behaviour, Behaviour])),
      rates: { orders: [{ fromMs: 0, perSecond: 300 }], catalog: none },
      measured: whole(tailEnd),
      systems: [...systemNames, 'breakwater-no-hedge', 'breakwater-fixed-loose'],
      notes: [
        'Every replica stalls as often as the others: there is no bad replica for a health check or outlier detection to ' +
          'find, and a stalled call is only shortened by not waiting for it. By each system’s settings:',
        '- **nginx**’s 500 ms read timeout fires just before a stalled call answers: it retries on another replica and ' +
          'counts a failure; five within 3 s take a replica out for 3 s, and with all three out it answers 502 itself ' +
          '("no live upstreams").',
        '- **HAProxy**’s 500 ms server timeout fires as nginx’s does, and it retries on another replica.',
        '- **Breakwater** sends a second attempt to another replica when a call has not answered by the p95 of the last ' +
          '10 s of answers, within a budget of 5% of the calls (plus 2 a second), and takes the first answer. An attempt ' +
          'a hedge outran counts in that window as at least as slow as it ran, so the p95 does not drift down.',
        '- **Breakwater, no hedging** keeps the adaptive per-try timeout (3 × the p99.9 of recent successful attempts): ' +
          'it gives up on a stalled attempt once it has run that long and retries it on another replica, a tail defence ' +
          'of its own, slower than a hedge.',
        `- **Breakwater, fixed ${fixedPerTry.looseMs / 1000} s per-try timeout** has neither hedging nor the adaptive ` +
          'timeout: it waits for a stalled call, as a proxy with no tail defence does. The hedging target is judged against it.',
      ].join('\n'),
    },
    {
      name: 'latency-shift',
      title: 'the latency shifts from 10 ms to 100 ms and back',
      fault:
        `Both orders replicas answer in ${latencyShift.from.medianMs} ms (median), then in ${latencyShift.to.medianMs} ms ` +
        `from ${shifted.fromMs / 1000} s to ${shifted.toMs / 1000} s, then in ${latencyShift.from.medianMs} ms again: slower, ` +
        `not failing. Throughout, ${latencyShift.hang.share * 100}% of calls hang (no answer for ${latencyShift.hang.ms / 1000} s). ` +
        '150 req/s to orders. Breakwater with its adaptive per-try timeout, beside the same file with a fixed one.',
      durationMs: shiftEnd,
      endpoints: endpoints({ base: shiftBase, a: [{ ...shifted, change: { latency: latencyShift.to } }], b: [{ ...shifted, change: { latency: latencyShift.to } }] }),
      // below the 200 req/s of the others: at 100 ms a call, 200 req/s would keep about as
      // many calls in flight as Breakwater's bulkhead allows, and its refusals would blur what
      // the per-try timeouts do
      rates: { orders: [{ fromMs: 0, perSecond: 150 }], catalog: none },
      measured: whole(shiftEnd),
      systems: ['breakwater', 'breakwater-no-hedge', 'breakwater-fixed-tight', 'breakwater-fixed-loose'],
      cutAttempts: true,
      phases: [
        { name: `${latencyShift.from.medianMs} ms`, span: { fromMs: 0, toMs: shifted.fromMs } },
        { name: `${latencyShift.to.medianMs} ms`, span: shifted },
        { name: `${latencyShift.from.medianMs} ms again`, span: { fromMs: shifted.toMs, toMs: shiftEnd } },
      ],
      notes: [
        'How each per-try timeout meets the shift:',
        `- **Fixed ${fixedPerTry.tightMs} ms**: in the ${latencyShift.to.medianMs} ms phase about half the answers take longer ` +
          'than the limit. Each attempt it cuts is retried, and counted as a failure by the breaker, which opens: calls are ' +
          'then refused without reaching orders.',
        `- **Fixed ${fixedPerTry.looseMs / 1000} s**: no healthy answer is cut, and every hung call is held the full second ` +
          'before its retry.',
        '- **Adaptive** (3 × the p99.9 of the last 10 s of answers, at most 1 s, and 1 s until 1,000 answers are known): ' +
          `a little over 100 ms in the ${latencyShift.from.medianMs} ms phases; in the ${latencyShift.to.medianMs} ms phase it ` +
          `reaches its 1 s ceiling, as the fixed ${fixedPerTry.looseMs / 1000} s. At the shift it cuts the slowest answers ` +
          'until the window has seen slower ones: each answer that comes under the old limit raises it, and at a tenfold ' +
          'shift most do. After the shift back it keeps the higher limit until the slow answers have left the window.',
        '- **Breakwater** with its hedge block as well: a hung call also gets a second attempt at the p95 of recent answers, ' +
          'so it is given up sooner; the hedges’ losers count among the healthy attempts cut.',
      ].join('\n'),
      chart: { file: 'img/resilience-latency-shift.svg', band: shifted, bandLabel: `${latencyShift.to.medianMs} ms median` },
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

export const scenarioNames: readonly ScenarioName[] = [
  'transient',
  'stall',
  'three-healthy',
  'slow-replica',
  'tail-at-scale',
  'latency-shift',
  'outage',
  'overload',
  'slow-neighbour',
  'noisy-neighbour',
];
