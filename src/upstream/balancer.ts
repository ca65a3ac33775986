import type { LoadBalancing } from '../config/types.ts';
import type { Clock } from '../runtime/clock.ts';
import type { Random } from '../runtime/random.ts';
import { peakEwmaCost, type PeakEwma } from './ewma.ts';

/** What round-robin and least-request need to know of an endpoint. */
export interface Loaded {
  /** Requests sent to this endpoint and not yet finished. */
  readonly inFlight: number;
}

/** What every balancer needs to know of an endpoint. */
export interface Balanced extends Loaded {
  /** Its latency estimate, for peak-EWMA. */
  readonly latency: PeakEwma;
}

/**
 * Picks an endpoint for the next attempt. Endpoints in `avoid` (those a retry or hedge of the
 * same request already tried) are passed over while others remain, as Envoy's previous_hosts
 * predicate does: a second attempt on the endpoint that just failed is the least likely to do
 * better.
 */
export type Pick<E extends Loaded> = (endpoints: readonly E[], avoid?: readonly E[]) => E;

/** The endpoints an attempt may go to: the ones not yet tried, or all when every one was. */
export function eligible<E>(endpoints: readonly E[], avoid: readonly E[] | undefined): readonly E[] {
  if (avoid === undefined || avoid.length === 0) return endpoints;
  const fresh = endpoints.filter((endpoint) => !avoid.includes(endpoint));
  return fresh.length === 0 ? endpoints : fresh;
}

/** Cycles through the endpoints in order, passing over the ones to avoid. */
export function roundRobin<E extends Loaded>(): Pick<E> {
  let next = 0;
  return (endpoints, avoid) => {
    const count = endpoints.length;
    const fresh = eligible(endpoints, avoid);
    for (let step = 0; step < count; step++) {
      const index = (next + step) % count;
      const endpoint = endpoints[index]!;
      if (fresh !== endpoints && !fresh.includes(endpoint)) continue;
      next = (index + 1) % count;
      return endpoint;
    }
    return endpoints[0]!;
  };
}

/**
 * Power of two choices: two distinct endpoints at random, the one with fewer requests in
 * flight wins (Envoy's and Linkerd's least-request). Ties go to the first draw.
 */
export function leastRequest<E extends Loaded>(random: Random): Pick<E> {
  return (all, avoid) => {
    const endpoints = eligible(all, avoid);
    if (endpoints.length === 1) return endpoints[0]!;
    const [a, b] = twoAtRandom(endpoints, random);
    return b.inFlight < a.inFlight ? b : a;
  };
}

/** Two distinct endpoints drawn at random from at least two. */
function twoAtRandom<E>(endpoints: readonly E[], random: Random): [E, E] {
  const count = endpoints.length;
  const first = Math.floor(random() * count);
  const second = (first + 1 + Math.floor(random() * (count - 1))) % count;
  return [endpoints[first]!, endpoints[second]!];
}

/**
 * Power of two choices by peak EWMA (Linkerd's default balancer): two distinct endpoints at
 * random, the one with the lower latency estimate × (requests in flight + 1) wins, so traffic
 * moves away from an endpoint as soon as it answers slowly, and comes back as its estimate
 * fades. Ties go to the first draw.
 */
export function peakEwma<E extends Balanced>(random: Random, clock: Clock): Pick<E> {
  return (all, avoid) => {
    const endpoints = eligible(all, avoid);
    if (endpoints.length === 1) return endpoints[0]!;
    const [a, b] = twoAtRandom(endpoints, random);
    const now = clock.now();
    return peakEwmaCost(b.latency, b.inFlight, now) < peakEwmaCost(a.latency, a.inFlight, now) ? b : a;
  };
}

export function createBalancer<E extends Balanced>(kind: LoadBalancing, random: Random, clock: Clock): Pick<E> {
  switch (kind) {
    case 'round-robin':
      return roundRobin<E>();
    case 'least-request':
      return leastRequest<E>(random);
    case 'peak-ewma':
      return peakEwma<E>(random, clock);
    default: {
      const unknown: never = kind;
      throw new Error(`unknown load balancing ${String(unknown)}`);
    }
  }
}
