// The admin server (default 127.0.0.1:15000): operators inspect and steer the running
// sidecar here. It binds exactly the configured address; the config layer keeps it on
// loopback unless the user chose otherwise. Every answer is JSON.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Address } from '../config/types.ts';
import { listen, lookupRoute, type RouteTable, type RunningServer } from '../telemetry/http-server.ts';

export interface AdminSource {
  /** The effective config, secrets already redacted. */
  config(): unknown;
  /** The route table as rows. */
  routes(): unknown;
  reload(): Promise<{ ok: true } | { ok: false; problems: string[] }>;
}

export interface AdminServerOptions {
  readonly address: Address;
  readonly admin: AdminSource;
}

interface JsonReply {
  readonly status: number;
  readonly body: unknown;
}

type AdminHandler = (req: IncomingMessage) => Promise<JsonReply> | JsonReply;

export function startAdminServer(opts: AdminServerOptions): Promise<RunningServer> {
  const { admin } = opts;
  const routes: RouteTable<AdminHandler> = new Map([
    ['/config', { GET: () => ({ status: 200, body: admin.config() }) }],
    ['/routes', { GET: () => ({ status: 200, body: admin.routes() }) }],
    [
      '/reload',
      {
        POST: async () => {
          const result = await admin.reload();
          return result.ok
            ? { status: 200, body: { result: 'success' } }
            : { status: 400, body: { result: 'failure', problems: result.problems } };
        },
      },
    ],
  ]);

  const server = createServer((req, res) => {
    const route = lookupRoute(routes, req);
    switch (route.kind) {
      case 'not-found':
        return write(res, 404, toJson({ error: { message: `no admin endpoint ${req.url ?? ''}` } }));
      case 'wrong-method':
        res.setHeader('allow', route.allow);
        return write(res, 405, toJson({ error: { message: `${req.method ?? ''} not allowed; use ${route.allow}` } }));
      case 'found':
        return void answer(req, res, route.handler);
      default:
        return route satisfies never;
    }
  });
  return listen(server, opts.address);
}

async function answer(req: IncomingMessage, res: ServerResponse, handler: AdminHandler): Promise<void> {
  let status: number;
  let body: string;
  try {
    const reply = await handler(req);
    status = reply.status;
    body = toJson(reply.body);
  } catch (error) {
    status = 500;
    body = toJson({ error: { message: String(error) } });
  }
  write(res, status, body);
}

function write(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function toJson(value: unknown): string {
  return `${JSON.stringify(value, mapsAsObjects)}\n`;
}

/** The effective config keeps some tables in Maps (upstreams), which JSON would print as {}. */
function mapsAsObjects(_key: string, value: unknown): unknown {
  return value instanceof Map ? Object.fromEntries(value) : value;
}
