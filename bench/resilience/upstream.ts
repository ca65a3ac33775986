// The fault-injecting upstream of the resilience benchmark: one HTTP listener per endpoint of
// the plan on 127.0.0.1, each answering as its plan says at the moment a request arrives
// (503s, log-normal latency with rare stalls, limited workers, down windows, slow recovery).
//
//   node bench/resilience/upstream.ts --plan plan.json --lifetime 120
//
// Prints one JSON line {"ready": {"endpoints": {name: port}, "control": port}} once listening.
// The control port takes `POST /start?at=EPOCH_MS` (time zero of the plan) and answers
// `GET /records` with every request received. It exits by itself after --lifetime seconds.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import type { Arrival, EndpointPlan, UpstreamPlan, UpstreamRecords } from './plan.ts';
import { seededRandom } from '../../src/runtime/random.ts';
import { behaviourAt, downUntil, logNormal } from './plan.ts';

const { values } = parseArgs({ options: { plan: { type: 'string' }, lifetime: { type: 'string', default: '300' } } });
if (values.plan === undefined) throw new Error('--plan FILE is required');
const plan = JSON.parse(readFileSync(values.plan, 'utf8')) as UpstreamPlan;
const lifetimeMs = Number(values.lifetime) * 1000;

const epochNow = (): number => performance.timeOrigin + performance.now();
/** Time zero; until the client sets it, requests are warm-up, answered 200 at the normal latency and not recorded. */
let startAt: number | undefined;
const sinceStart = (): number => epochNow() - (startAt ?? epochNow() + 1);

const arrivals: Arrival[] = [];
const healthChecks: Record<string, number> = {};
const timers = new Set<NodeJS.Timeout>();

function later(ms: number, run: () => void): () => void {
  const timer = setTimeout(() => {
    timers.delete(timer);
    run();
  }, Math.max(0, ms));
  timers.add(timer);
  return () => {
    clearTimeout(timer);
    timers.delete(timer);
  };
}

function reply(res: ServerResponse, endpoint: EndpointPlan, status: number): void {
  if (res.destroyed || res.headersSent) return;
  const body = status === 200 ? `{"ok":true,"from":"${endpoint.name}"}` : `{"error":"unavailable","from":"${endpoint.name}"}`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-served-by': endpoint.name });
  res.end(body);
}

/** Holds a request unanswered until the down window ends, then cuts its connection. */
function hold(req: IncomingMessage, res: ServerResponse, untilT: number): void {
  const cancel = later(untilT - sinceStart(), () => req.socket.destroy());
  res.once('close', cancel);
}

interface Work {
  readonly res: ServerResponse;
  readonly arrival: { status: number; leftAfterMs?: number };
  readonly serviceMs: number;
  readonly status: number;
}

function createEndpoint(endpoint: EndpointPlan, index: number, random: () => number, warmUpRandom: () => number) {
  let busy = 0;
  const waiting: Work[] = [];

  const serve = (work: Work): void => {
    busy += 1;
    later(work.serviceMs, () => {
      busy -= 1;
      // the work is done whether or not the caller is still there, as in a real server
      work.arrival.status = work.status;
      reply(work.res, endpoint, work.status);
      const next = waiting.shift();
      if (next !== undefined) serve(next);
    });
  };

  return (req: IncomingMessage, res: ServerResponse): void => {
    req.resume();
    const t = sinceStart();
    const path = req.url ?? '/';
    if (path === '/health') {
      healthChecks[endpoint.name] = (healthChecks[endpoint.name] ?? 0) + 1;
      const until = downUntil(endpoint, t);
      if (until !== undefined) hold(req, res, until);
      else reply(res, endpoint, 200);
      return;
    }
    if (startAt === undefined) {
      // Warm-up before time zero: the plan has not begun, and the endpoint answers at its normal
      // latency, so that a proxy that learns from latencies starts from what is normal. The
      // draws are the warm-up's own: the measured run's are the same whatever the warm-up did.
      later(logNormal(warmUpRandom, endpoint.base.latency.medianMs, endpoint.base.latency.sigma), () => reply(res, endpoint, 200));
      return;
    }
    const arrival: { t: number; endpoint: number; status: number; stalled?: true; leftAfterMs?: number } = { t: Math.round(t * 10) / 10, endpoint: index, status: 0 };
    arrivals.push(arrival);
    const until = downUntil(endpoint, t);
    if (until !== undefined) {
      hold(req, res, until);
      return;
    }
    // The caller closing before the answer: a per-try timeout, a hedge's loser, a caller gone.
    res.once('close', () => {
      if (!res.writableFinished) arrival.leftAfterMs = Math.round((sinceStart() - t) * 10) / 10;
    });
    const behaviour = behaviourAt(endpoint, t);
    const stalled = behaviour.stall !== undefined && random() < behaviour.stall.share;
    if (stalled) arrival.stalled = true;
    const serviceMs = logNormal(random, behaviour.latency.medianMs, behaviour.latency.sigma) + (stalled ? (behaviour.stall?.ms ?? 0) : 0);
    const status = random() < behaviour.errorRate ? 503 : 200;
    const work: Work = { res, arrival, serviceMs, status };
    const capacity = behaviour.capacity;
    if (capacity === undefined || busy < capacity.concurrent) serve(work);
    else if (waiting.length < capacity.queue) waiting.push(work);
    else {
      // every worker busy and the queue full: refused at once, as an overloaded server does
      arrival.status = 503;
      reply(res, endpoint, 503);
    }
  };
}

async function listen(server: http.Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return (server.address() as AddressInfo).port;
}

function configure(server: http.Server): http.Server {
  // Longer than every proxy's idle pool timeout, so proxies never reuse a connection the
  // upstream is closing; no server-side request timeouts, the plan decides every delay.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 0;
  server.requestTimeout = 0;
  return server;
}

const servers: http.Server[] = [];
const ports: Record<string, number> = {};
for (const [index, endpoint] of plan.endpoints.entries()) {
  const server = configure(http.createServer(createEndpoint(endpoint, index, seededRandom(plan.seed + index * 7919), seededRandom(plan.seed - index * 7919 - 1))));
  servers.push(server);
  ports[endpoint.name] = await listen(server);
}

const control = configure(
  http.createServer((req, res) => {
    req.resume();
    const url = new URL(req.url ?? '/', 'http://control');
    if (req.method === 'POST' && url.pathname === '/start') {
      const at = Number(url.searchParams.get('at'));
      if (!Number.isFinite(at)) {
        res.writeHead(400).end('at must be epoch milliseconds');
        return;
      }
      startAt = at;
      res.writeHead(204).end();
      return;
    }
    if (req.method === 'GET' && url.pathname === '/records') {
      const records: UpstreamRecords = { arrivals, healthChecks };
      const body = JSON.stringify(records);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
      return;
    }
    res.writeHead(404).end();
  }),
);
servers.push(control);
const controlPort = await listen(control);

const shutDown = (): void => {
  for (const timer of timers) clearTimeout(timer);
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
  process.exit(0);
};
setTimeout(shutDown, lifetimeMs).unref();
process.on('SIGTERM', shutDown);
process.on('SIGINT', shutDown);

process.stdout.write(`${JSON.stringify({ ready: { endpoints: ports, control: controlPort } })}\n`);
