import type { LoadBalancing } from '../config/types.ts';
import type { Random } from '../runtime/random.ts';

/** What a balancer needs to know of an endpoint. */
export interface Balanced {
  /** Requests sent to this endpoint and not yet finished. */
  readonly inFlight: number;
}

/**
 * Picks an endpoint for the next attempt. Endpoints in `avoid` (those a retry or hedge of the
 * same request already tried) are passed over while others remain, as Envoy's previous_hosts
 * predicate does: a second attempt on the endpoint that just failed is the least likely to do
 * better.
 */
export type Pick<E extends Balanced> = (endpoints: readonly E[], avoid?: readonly E[]) => E;

/** The endpoints an attempt may go to: the ones not yet tried, or all when every one was. */
export function eligible<E>(endpoints: readonly E[], avoid: readonly E[] | undefined): readonly E[] {
  if (avoid === undefined || avoid.length === 0) return endpoints;
  const fresh = endpoints.filter((endpoint) => !avoid.includes(endpoint));
  return fresh.length === 0 ? endpoints : fresh;
}

/** Cycles through the endpoints in order, passing over the ones to avoid. */
export function roundRobin<E extends Balanced>(): Pick<E> {
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
export function leastRequest<E extends Balanced>(random: Random): Pick<E> {
  return (all, avoid) => {
    const endpoints = eligible(all, avoid);
    const count = endpoints.length;
    if (count === 1) return endpoints[0]!;
    const first = Math.floor(random() * count);
    const second = (first + 1 + Math.floor(random() * (count - 1))) % count;
    const a = endpoints[first]!;
    const b = endpoints[second]!;
    return b.inFlight < a.inFlight ? b : a;
  };
}

export function createBalancer<E extends Balanced>(kind: LoadBalancing, random: Random): Pick<E> {
  switch (kind) {
    case 'round-robin':
      return roundRobin<E>();
    case 'least-request':
      return leastRequest<E>(random);
    default: {
      const unknown: never = kind;
      throw new Error(`unknown load balancing ${String(unknown)}`);
    }
  }
}
