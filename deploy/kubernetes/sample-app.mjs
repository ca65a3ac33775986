// The example's service, beside Breakwater in each pod. It shows both directions of traffic:
//   inbound   other pods -> Service :80 -> Breakwater :15006 -> this service on 127.0.0.1:8080
//   outbound  GET /call -> GET CALL_URL -> HTTP_PROXY, Breakwater :15001 -> the other service
//
//   GET /hello   200, says which pod answered
//   GET /call    calls CALL_URL (default: this example's own Service, /hello) and reports what
//                came back, with the headers Breakwater added on the way
//   GET /ready   readiness: 503 until the service has started, and while it stops
//   GET /live    liveness
//
// It listens on loopback only, so kubelet probes it through Breakwater's telemetry port
// (/app-health/app/readyz and /livez). Node.js's http client sends calls through HTTP_PROXY
// only with NODE_USE_ENV_PROXY=1, which deployment.yaml sets. The built-in fetch() is not used:
// under that setting it tunnels http:// calls through CONNECT, which Breakwater does not proxy.

import { createServer, get } from 'node:http';
import { hostname } from 'node:os';

const port = Number(process.env.PORT ?? 8080);
const callUrl = process.env.CALL_URL ?? 'http://example-breakwater/hello';
let ready = false;

function reply(res, status, body) {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function call() {
  return new Promise((resolve) => {
    const request = get(callUrl, { timeout: 5000 }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => (body += chunk));
      response.on('end', () =>
        resolve({
          called: callUrl,
          status: response.statusCode,
          // Set by Breakwater: proof that the call went through the sidecar.
          attempts: response.headers['x-breakwater-attempts'] ?? null,
          reason: response.headers['x-breakwater-reason'] ?? null,
          body,
        }),
      );
    });
    request.on('timeout', () => request.destroy(new Error('no answer within 5 s')));
    request.on('error', (error) => resolve({ called: callUrl, error: String(error) }));
  });
}

const server = createServer((req, res) => {
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  if (path === '/ready') return reply(res, ready ? 200 : 503, { ready });
  if (path === '/live') return reply(res, 200, { live: true });
  if (path === '/hello') return reply(res, 200, { hello: 'from the sample app', pod: hostname() });
  if (path === '/call') return void call().then((result) => reply(res, 'error' in result ? 502 : 200, result));
  return reply(res, 404, { error: `no ${path} here: try /hello or /call` });
});

server.listen(port, '127.0.0.1', () => {
  ready = true;
  console.log(JSON.stringify({ msg: 'listening', address: `127.0.0.1:${server.address().port}`, calls: callUrl }));
});

process.on('SIGTERM', () => {
  ready = false;
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});
