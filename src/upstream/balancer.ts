import type { LoadBalancing } from '../config/types.ts';
import type { Random } from '../runtime/random.ts';

/** What a balancer needs to know of an endpoint. */
export interface Balanced {
  /** Requests sent to this endpoint and not yet finished. */
  readonly inFlight: number;
}

export type Pick<E extends Balanced> = (endpoints: readonly E[]) => E;

/** Cycles through the endpoints in order. */
export function roundRobin<E extends Balanced>(): Pick<E> {
  let next = 0;
  return (endpoints) => {
    const endpoint = endpoints[next % endpoints.length]!;
    next = (next + 1) % endpoints.length;
    return endpoint;
  };
}

/**
 * Power of two choices: two distinct endpoints at random, the one with fewer requests in
 * flight wins (Envoy's and Linkerd's least-request). Ties go to the first draw.
 */
export function leastRequest<E extends Balanced>(random: Random): Pick<E> {
  return (endpoints) => {
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
