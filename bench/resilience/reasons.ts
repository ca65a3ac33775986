// Why a peer can do better than Breakwater on a figure: the mechanism behind it, by scenario
// (or `any`), figure and system. The report prints the one that matches each figure a peer
// wins, beside the two measured values.
import type { ScenarioName } from './scenarios.ts';
import type { SystemName } from './systems.ts';

/** A figure the report compares the systems on. */
export type Figure = 'success' | 'p50' | 'p99' | 'p999' | 'amplification' | 'failFast' | 'recover' | 'neighbour';

type Reasons = Partial<Record<Figure, Partial<Record<Exclude<SystemName, 'breakwater'>, string>>>>;

const cheaperPath =
  'Its request path is compiled C with no per-request policy bookkeeping; Breakwater runs each request through its ' +
  'policy layers in Node.js, a few hundred microseconds more per request (see `npm run bench`), and more on a busy machine.';
const noHop = 'With no proxy there is no extra hop to pay for.';
const noRetries = 'With no proxy nothing retries: the upstream sees each request once, and the success rate shows the price.';
const immediateRetry = (who: string): string =>
  `${who} retries at once, as Breakwater does here. The slowest requests are the ones that needed four or five ` +
  'attempts, and each attempt through Breakwater costs a few hundred microseconds more than through a proxy in ' +
  'compiled C (see `npm run bench`), four or five times over.';
const hedgeCost =
  'Breakwater hedges the calls that have not answered by the p95 of recent answers: each hedge is one more request to ' +
  'the replicas, within its hedge budget (5% of the calls, plus 2 a second).';

const busierLoop = (who: string): string =>
  `Catalog's requests share the proxy's one thread with orders' extra work. ${who} spends a few microseconds on each ` +
  "refused or proxied request; Breakwater's single Node.js thread spends several times more (see the proxy CPU column), " +
  "so catalog's requests wait a little longer behind orders'.";
const nginxRefusing =
  'nginx answered most requests itself at once, with both replicas taken out of service (see its success rate), so few ' +
  'requests waited for anything.';
const outageStart =
  'The slowest requests are the ones in flight when the outage began. Breakwater retried them, 500 ms per attempt, ' +
  'until its breaker opened about a second and a half in;';

export const betterReasons: Partial<Record<ScenarioName | 'any', Reasons>> = {
  any: {
    p50: { direct: noHop, nginx: cheaperPath, haproxy: cheaperPath },
    amplification: {
      direct: noRetries,
      nginx: 'nginx had taken the replicas out of service and answered most requests itself without sending them.',
    },
  },
  transient: {
    success: {
      haproxy:
        'HAProxy makes as many attempts (five) and has no retry budget, so it never declines a retry; Breakwater ' +
        "grants retries up to half the requests plus 10 per second. At 30% errors a request needs 0.43 retries on average, so the budget rarely bites, and at 0.3⁵ = 0.24% of requests failing all five attempts, differences of a few requests are chance.",
    },
    p50: { nginx: nginxRefusing },
    p99: { direct: noRetries, nginx: nginxRefusing, haproxy: immediateRetry('HAProxy') },
    p999: { direct: noRetries, nginx: nginxRefusing, haproxy: immediateRetry('HAProxy') },
  },
  stall: {
    p99: {
      nginx:
        'nginx counts each 500 ms timeout against the replica (max_fails=5 within fail_timeout=3s) and takes the stalling ' +
        'replica out of rotation for 3 s at a time, so for those 3 s no request meets a stall. Breakwater keeps the ' +
        'replica, whose answers are as fast as the other’s when it answers, and hedges each call that has not answered by ' +
        'the p95 of recent answers on the other replica: a stalled call takes that delay plus an answer.',
    },
    p999: {
      nginx: 'nginx takes the stalling replica out of rotation after 5 timeouts (passive health), so fewer requests meet a stall.',
    },
    amplification: { direct: hedgeCost, nginx: hedgeCost, haproxy: hedgeCost },
  },
  'three-healthy': {
    amplification: { direct: hedgeCost, nginx: hedgeCost, haproxy: hedgeCost },
  },
  'slow-replica': {
    amplification: { direct: hedgeCost, nginx: hedgeCost, haproxy: hedgeCost },
  },
  'tail-at-scale': {
    amplification: { direct: hedgeCost, haproxy: hedgeCost },
  },
  outage: {
    success: {
      direct:
        'With no proxy, requests that found no free connection waited in the caller until the upstream came back and ' +
        'then succeeded, if within the caller’s 5 s; a proxy that fails fast turns them into quick failures instead.',
      nginx:
        'nginx let traffic back to the replicas sooner after the outage: once fail_timeout (3 s) has passed it tries a ' +
        'replica again with live requests, and a single success puts it back. Breakwater’s breaker probes after openFor ' +
        '(3 s) with three requests that must all succeed; during the slow recovery (10% 503s) one failed probe re-opens ' +
        'it for another 3 s.',
      haproxy:
        'HAProxy’s health checks probe every second whether or not traffic flows, and bring a replica back after 2 good ' +
        'checks; Breakwater’s breaker waits openFor (3 s) before probing with three live requests, which must all succeed.',
    },
    recover: {
      direct: 'With no proxy nothing holds traffic back: requests reach the upstream the moment it answers again.',
      nginx:
        'nginx tries a downed replica again with live requests once fail_timeout (3 s) has passed, and one success puts it ' +
        'back; Breakwater’s breaker needs three probes in a row to succeed after openFor (3 s), and during the slow ' +
        'recovery (10% 503s) one failed probe re-opens it for another 3 s.',
      haproxy:
        'HAProxy’s health checks probe every second whether or not traffic flows, and bring a replica back after 2 good ' +
        'checks; Breakwater’s breaker waits openFor (3 s) before probing with three live requests, which must all succeed.',
    },
    amplification: {
      direct:
        'With no proxy the caller’s 64 connections per replica were all held by the hung upstream, so few new requests ' +
        'reached it; nothing retried.',
    },
    p999: {
      nginx: `${outageStart} nginx gives a request at most one attempt per replica and took the replicas out of service after 5 timeouts each.`,
      haproxy: `${outageStart} HAProxy ended them sooner, with 503s of its own.`,
    },
  },
  overload: {
    success: {
      direct:
        'With no proxy the replicas’ own queues (8 places each) absorb bursts, and the caller’s 64 connections per replica ' +
        'never limit it; every proxy caps orders at 32 requests in flight and refuses the rest.',
      haproxy:
        'HAProxy lets a request wait up to 100 ms for a free slot (timeout queue) instead of refusing it at once, and at ' +
        'this load a slot frees every few milliseconds; Breakwater’s bulkhead is configured to refuse at once (maxQueued: 0).',
    },
    neighbour: {
      direct: 'With no proxy, catalog has a connection pool and a path of its own; nothing on the way is shared with orders.',
      nginx: busierLoop('nginx'),
      haproxy: busierLoop('HAProxy'),
    },
  },
  'slow-neighbour': {
    success: {
      direct:
        'With no proxy nothing caps orders: the caller keeps up to 64 connections to each replica, and the 80 slow calls ' +
        'in flight fit. Every proxy caps orders at 32 in flight (Breakwater’s bulkhead, nginx’s max_conns, HAProxy’s ' +
        'maxconn) and refuses the rest: the price of keeping catalog safe when all calls share the caller’s one pool ' +
        'to the proxy.',
      haproxy:
        'HAProxy lets a request wait up to 100 ms for a free slot (timeout queue) instead of refusing it at once, so a few ' +
        'more get a slot as slow calls finish; Breakwater’s bulkhead refuses at once (maxQueued: 0).',
    },
    neighbour: {
      direct: 'With no proxy, catalog has a connection pool and a path of its own; nothing on the way is shared with orders.',
      nginx: busierLoop('nginx'),
      haproxy: busierLoop('HAProxy'),
    },
  },
};
