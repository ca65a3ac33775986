import { createServer } from 'node:http';

// The demo service behind the shipped example config: it says what it received, so a new
// user can see what Breakwater adds on the way.
//   any path               200 with what reached it, as JSON: the method, the path, and the
//                          headers Breakwater adds (x-breakwater-attempt as "attempt",
//                          x-request-id, x-forwarded-for, x-request-timeout-ms as "deadlineMs")
//   GET /slow?ms=3000      the same, after the given delay (try it against a route timeout)
//   GET /status/503        the same, with that status
//   POST /charges          201 with a new charge id each time it is reached (ch_1, ch_2, ...),
//                          so a replay from Breakwater's idempotency store shows as a repeated id

export function startDemoUpstream(port: number, host = '127.0.0.1'): Promise<() => Promise<void>> {
  let charges = 0;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://demo');
    if (req.method === 'POST' && url.pathname === '/charges') {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        charges += 1;
        const body = JSON.stringify(
          {
            service: 'demo',
            charge: `ch_${charges}`,
            received: Buffer.concat(chunks).toString(),
            idempotencyKey: req.headers['idempotency-key'],
          },
          null,
          2,
        );
        res.writeHead(201, { 'content-type': 'application/json' });
        res.end(`${body}\n`);
      });
      return;
    }
    const status = /^\/status\/(\d{3})$/.exec(url.pathname);
    const delayMs = url.pathname === '/slow' ? Number(url.searchParams.get('ms') ?? '3000') : 0;
    setTimeout(() => {
      const body = JSON.stringify(
        {
          service: 'demo',
          method: req.method,
          path: url.pathname,
          attempt: req.headers['x-breakwater-attempt'],
          requestId: req.headers['x-request-id'],
          forwardedFor: req.headers['x-forwarded-for'],
          deadlineMs: req.headers['x-request-timeout-ms'],
        },
        null,
        2,
      );
      res.writeHead(status === null ? 200 : Number(status[1]), { 'content-type': 'application/json' });
      res.end(`${body}\n`);
    }, delayMs);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () =>
      resolve(() => new Promise((done) => {
        server.closeAllConnections();
        server.close(() => done());
      })),
    );
  });
}
