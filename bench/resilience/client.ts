// The fixed-rate client of the resilience benchmark: open loop, so a slow answer never delays
// the next request (requests go out on their schedule whatever happens to earlier ones), with
// a bounded pool of connections per origin, as a calling service's HTTP client has.
//
//   node bench/resilience/client.ts --plan client.json --out outcomes.json
//
// Once it has warmed up its connections, it picks time zero a moment ahead and tells the
// upstreams' control ports, so all count from the same instant. Every request's scheduled
// start, latency, status and who answered go to --out as JSON. Bounded: the schedule is
// finite, each request ends at the plan's timeout at the latest, and the process exits by
// itself once the last one could have.
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import type { ClientPlan, ClientReport, Outcome } from './plan.ts';
import { schedule } from './plan.ts';

const { values } = parseArgs({ options: { plan: { type: 'string' }, out: { type: 'string' } } });
if (values.plan === undefined || values.out === undefined) throw new Error('--plan FILE and --out FILE are required');
const plan = JSON.parse(readFileSync(values.plan, 'utf8')) as ClientPlan;
const outFile = values.out;

const epochNow = (): number => performance.timeOrigin + performance.now();
/** Time zero, once warmed up: far enough ahead for the upstreams to hear of it first. */
let startAt = Number.POSITIVE_INFINITY;
const sinceStart = (): number => epochNow() - startAt;

const pools = new Map<string, Pool>();
function poolFor(origin: string): Pool {
  let pool = pools.get(origin);
  if (pool === undefined) {
    pool = new Pool(origin, { connections: plan.connectionsPerOrigin, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: 0, bodyTimeout: 0 });
    pools.set(origin, pool);
  }
  return pool;
}

interface Due {
  readonly t: number;
  readonly route: number;
}

const due: Due[] = plan.routes
  .flatMap((route, index) => schedule(route.rates, plan.durationMs).map((t) => ({ t, route: index })))
  .sort((a, b) => a.t - b.t);
const sent = plan.routes.map(() => 0);
const outcomes: Outcome[] = [];
const lags: number[] = [];
let inFlight = 0;

function errorReason(error: unknown): string {
  if (error instanceof Error) {
    if (error.name === 'TimeoutError' || error.name === 'AbortError') return 'client-timeout';
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' ? code : error.name;
  }
  return 'error';
}

async function send(item: Due): Promise<void> {
  const route = plan.routes[item.route];
  if (route === undefined) return;
  const count = sent[item.route] ?? 0;
  sent[item.route] = count + 1;
  // several origins (no proxy in front): the caller spreads its calls over them in turn
  const origin = route.origins[count % route.origins.length] as string;
  const record = (status: number, by: string, reason: string, attempts = -1): void => {
    const latencyMs = Math.round((sinceStart() - item.t) * 100) / 100;
    outcomes.push({ service: route.service, t: Math.round(item.t * 10) / 10, latencyMs, status, by, reason, attempts });
  };
  const lateMs = sinceStart() - item.t;
  lags.push(lateMs);
  const remainingMs = plan.timeoutMs - lateMs;
  inFlight += 1;
  try {
    const response = await poolFor(origin).request({
      method: 'GET',
      path: `/${route.service}/${count}`,
      signal: AbortSignal.timeout(Math.max(1, Math.ceil(remainingMs))),
    });
    await response.body.dump({ limit: 1 << 20 });
    const servedBy = response.headers['x-served-by'];
    const reason = response.headers['x-breakwater-reason'];
    const attempts = response.headers['x-breakwater-attempts'];
    record(
      response.statusCode,
      typeof servedBy === 'string' ? servedBy : 'proxy',
      typeof reason === 'string' ? reason : '',
      typeof attempts === 'string' ? Number(attempts) : -1,
    );
  } catch (error) {
    record(0, 'none', errorReason(error));
  } finally {
    inFlight -= 1;
  }
}

let next = 0;
const pending: Promise<void>[] = [];
/** Sends everything that is due, then sleeps until the next request is. */
function tick(): void {
  const now = sinceStart();
  while (next < due.length && (due[next] as Due).t <= now) {
    pending.push(send(due[next] as Due));
    next += 1;
  }
  const upcoming = due[next];
  if (upcoming !== undefined) setTimeout(tick, Math.max(0, upcoming.t - sinceStart()));
  else void finish();
}

function writeReport(): void {
  const sorted = [...lags].sort((a, b) => a - b);
  const sendLag = { p99: sorted[Math.max(0, Math.ceil(sorted.length * 0.99) - 1)] ?? 0, max: sorted[sorted.length - 1] ?? 0 };
  const report: ClientReport = { startAt, outcomes, stillInFlight: inFlight, sendLag };
  writeFileSync(outFile, JSON.stringify(report));
}

async function finish(): Promise<void> {
  await Promise.allSettled(pending);
  writeReport();
  await Promise.allSettled([...pools.values()].map((pool) => pool.destroy()));
  process.exit(0);
}

// Whatever happens, the client is gone shortly after its last request could have ended.
setTimeout(() => {
  writeReport();
  process.exit(3);
}, plan.durationMs + plan.timeoutMs + 20_000).unref();

/**
 * Opens a few connections per origin before time zero, as a running service has them open:
 * the first measured requests do not pay for connecting. The upstream answers these at once
 * and does not count them.
 */
async function warmUp(): Promise<void> {
  const requests = plan.routes.flatMap((route) =>
    route.origins.flatMap((origin) =>
      Array.from({ length: Math.min(8, plan.connectionsPerOrigin) }, async (_, i) => {
        const response = await poolFor(origin).request({ method: 'GET', path: `/${route.service}/warm-up-${i}`, signal: AbortSignal.timeout(5000) });
        await response.body.dump();
      }),
    ),
  );
  await Promise.all(requests);
}

await warmUp();
// Far enough ahead for every control (the upstreams and, in one scenario, the flood) to hear of
// it on a busy machine; they are told at once rather than one after another.
startAt = Math.round(epochNow() + 500);
await Promise.all(
  plan.controls.map(async (control) => {
    const told = await fetch(`${control}/start?at=${startAt}`, { method: 'POST', signal: AbortSignal.timeout(5000) });
    if (told.status !== 204) throw new Error(`the upstream at ${control} refused time zero: ${told.status}`);
  }),
);
if (sinceStart() > 0) throw new Error(`telling the upstreams took too long: ${Math.round(sinceStart())} ms past time zero`);
setTimeout(tick, Math.max(0, -sinceStart()));
