// The soak's upstream: answers the soak client's routes, fails the orders it is told to fail,
// and takes /flaky down on a schedule, so that Breakwater's breaker on it opens and closes
// again, cycle after cycle.
import http from 'node:http';

export interface OutageSchedule {
  /** Milliseconds from one outage's start to the next. */
  periodMs: number;
  /** Milliseconds each outage lasts. */
  lengthMs: number;
}

export interface SoakUpstream {
  port: number;
  /** Whether /flaky is down at `now` (performance.now() milliseconds). */
  isDown(now: number): boolean;
  close(): Promise<void>;
}

/** The header the client sets on an order the upstream must fail, as a real outage would. */
export const failHeader = 'x-soak-fail';

const itemBody = JSON.stringify({ items: Array.from({ length: 16 }, (_, i) => ({ id: i, name: `item-${i}`, price: i * 100 })) });

export async function startSoakUpstream(schedule: OutageSchedule): Promise<SoakUpstream> {
  const startedAt = performance.now();
  const isDown = (now: number): boolean => (now - startedAt) % schedule.periodMs < schedule.lengthMs;
  let charges = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const path = req.url ?? '/';
      if (path.startsWith('/flaky')) {
        if (isDown(performance.now())) res.writeHead(503, { 'content-type': 'text/plain' }).end('down');
        else res.writeHead(200, { 'content-type': 'application/json' }).end('{"up":true}');
      } else if (path.startsWith('/charges')) {
        charges += 1;
        res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ charge: `ch_${charges}` }));
      } else if (path.startsWith('/orders')) {
        if (req.headers[failHeader] !== undefined) res.writeHead(503, { 'content-type': 'text/plain' }).end('order service down');
        else res.writeHead(201, { 'content-type': 'application/json' }).end(`{"order":${Buffer.concat(chunks).length}}`);
      } else {
        res.writeHead(200, { 'content-type': 'application/json' }).end(itemBody);
      }
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the soak upstream has no port');
  return {
    port: address.port,
    isDown,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
