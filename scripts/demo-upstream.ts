import { createServer } from 'node:http';

// The demo service behind the shipped example config: it says what it received, so a new
// user can see what Breakwater adds and removes on the way.
//   GET /anything          200 with a JSON echo of the request
//   GET /slow?ms=3000      answers after the given delay (try it against a route timeout)
//   GET /status/503        answers with that status

export function startDemoUpstream(port: number, host = '127.0.0.1'): Promise<() => Promise<void>> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://demo');
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
