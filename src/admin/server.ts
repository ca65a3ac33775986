// The admin server (default 127.0.0.1:15000): operators inspect and steer the running
// sidecar here. It binds exactly the configured address; the config layer keeps it on
// loopback unless the user chose otherwise. Every answer is JSON, except the admin page at
// GET / and its assets.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from '../runtime/node-http.ts';
import type { Address } from '../config/types.ts';
import { listen, lookupRoute, type Method, type RouteLookup, type RouteTable, type RunningServer } from '../telemetry/http-server.ts';
import type { DeadLetterEndpoints } from './dead-letters.ts';
import { refusal } from './guard.ts';
import { loadPage, pageHeaders, type PageFile } from './page.ts';

export interface AdminSource {
  /** The effective config, secrets already redacted. */
  config(): unknown;
  /** The route table as rows. */
  routes(): unknown;
  /** Every circuit breaker as rows, each with its `name`. */
  circuits(): unknown;
  /** Every upstream's endpoints: state (active, ejected with reason and until when, draining), in flight, latency EWMA. */
  endpoints(): unknown;
  /** Every state store: its kind, whether it is reachable, and its last error. */
  stores(): unknown;
  /** Every upstream's bulkhead: requests in flight and queued, and its limits. */
  bulkheads(): unknown;
  /** The last config reloads, newest first, with their time and result. */
  reloads(): unknown;
  /** Sets a breaker's manual mode; false when no breaker has that name. */
  setCircuit(name: string, state: CircuitMode): boolean;
  /** `changed: false` when the file is the config already running. */
  reload(): Promise<{ ok: true; changed: boolean } | { ok: false; problems: string[] }>;
}

/** The states an operator may set on a breaker (Resilience4j's FORCED_OPEN and DISABLED). */
export type CircuitMode = 'forced-open' | 'disabled' | 'auto';

const circuitModes: readonly string[] = ['forced-open', 'disabled', 'auto'] satisfies readonly CircuitMode[];

const circuitPrefix = '/circuits/';

/** A POST body larger than this is not a {"state": ...} object. */
const maxCircuitBodyBytes = 1024;

export interface AdminServerOptions {
  readonly address: Address;
  readonly admin: AdminSource;
  /** /dead-letters and below (src/admin/dead-letters.ts); absent, those paths are not found. */
  readonly deadLetters?: DeadLetterEndpoints;
}

interface JsonReply {
  readonly status: number;
  readonly body: unknown;
}

/** A file of the admin page. */
interface FileReply {
  readonly status: 200;
  readonly file: PageFile;
}

type AdminHandler = (req: IncomingMessage) => Promise<JsonReply | FileReply> | JsonReply | FileReply;

export async function startAdminServer(opts: AdminServerOptions): Promise<RunningServer> {
  const { admin } = opts;
  const page = await loadPage();
  const routes: RouteTable<AdminHandler> = new Map<string, Partial<Record<Method, AdminHandler>>>([
    ...[...page].map(([path, file]) => [path, { GET: serveFile(file) }] as const),
    ['/config', { GET: () => ({ status: 200, body: admin.config() }) }],
    ['/routes', { GET: () => ({ status: 200, body: admin.routes() }) }],
    ['/circuits', { GET: () => ({ status: 200, body: admin.circuits() }) }],
    ['/endpoints', { GET: () => ({ status: 200, body: admin.endpoints() }) }],
    ['/stores', { GET: () => ({ status: 200, body: admin.stores() }) }],
    ['/bulkheads', { GET: () => ({ status: 200, body: admin.bulkheads() }) }],
    ['/reloads', { GET: () => ({ status: 200, body: admin.reloads() }) }],
    [
      '/reload',
      {
        POST: async () => {
          const result = await admin.reload();
          if (!result.ok) return { status: 400, body: { result: 'failure', problems: result.problems } };
          return { status: 200, body: { result: result.changed ? 'success' : 'unchanged' } };
        },
      },
    ],
  ]);

  const setCircuit: AdminHandler = async (req) => {
    const name = circuitName(req.url);
    const state = parseCircuitState(await readBody(req, maxCircuitBodyBytes));
    if (state === undefined) {
      return { status: 400, body: { error: { message: `the body must be {"state": S} with S one of ${circuitModes.join(', ')}` } } };
    }
    if (name === undefined || !admin.setCircuit(name, state)) {
      return { status: 404, body: { error: { message: `no circuit breaker named ${name ?? req.url ?? ''}` } } };
    }
    return { status: 200, body: rowNamed(admin.circuits(), name) ?? { name, mode: state } };
  };

  // /circuits/NAME is matched by its prefix; every other endpoint by its exact path.
  const lookup = (req: IncomingMessage): RouteLookup<AdminHandler> => {
    if (req.url?.startsWith(circuitPrefix) !== true) return lookupRoute(routes, req);
    return req.method === 'POST' ? { kind: 'found', handler: setCircuit } : { kind: 'wrong-method', allow: 'POST' };
  };

  const server = createServer((req, res) => {
    const refused = refusal(req.method, req.headers);
    if (refused !== undefined) {
      // The body is not read: close the connection rather than drain it.
      res.shouldKeepAlive = false;
      req.resume();
      return write(res, refused.status, toJson({ error: { message: refused.message } }));
    }
    if (opts.deadLetters?.owns(req.url) === true) return void opts.deadLetters.handle(req, res);
    const route = lookup(req);
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

function serveFile(file: PageFile): AdminHandler {
  return () => ({ status: 200, file });
}

async function answer(req: IncomingMessage, res: ServerResponse, handler: AdminHandler): Promise<void> {
  let status: number;
  let body: string;
  try {
    const reply = await handler(req);
    if ('file' in reply) {
      res.writeHead(200, { ...pageHeaders, 'content-type': reply.file.type, 'content-length': reply.file.body.length });
      res.end(reply.file.body);
      return;
    }
    status = reply.status;
    body = toJson(reply.body);
  } catch (error) {
    status = 500;
    body = toJson({ error: { message: String(error) } });
  }
  write(res, status, body);
}

/** The NAME of /circuits/NAME, percent-decoded; undefined when it is not one path segment. */
function circuitName(url: string | undefined): string | undefined {
  const path = (url ?? '').split('?')[0]!;
  const segment = path.slice(circuitPrefix.length);
  if (segment === '' || segment.includes('/')) return undefined;
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/** The request body as text, or undefined when it is longer than `limit` bytes. */
async function readBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= limit) chunks.push(chunk);
  }
  return size > limit ? undefined : Buffer.concat(chunks).toString('utf8');
}

function parseCircuitState(body: string | undefined): CircuitMode | undefined {
  if (body === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  const state = typeof parsed === 'object' && parsed !== null ? (parsed as { state?: unknown }).state : undefined;
  return typeof state === 'string' && circuitModes.includes(state) ? (state as CircuitMode) : undefined;
}

/** The row of one breaker among circuits(): the rows are the source's, this only finds one by name. */
function rowNamed(rows: unknown, name: string): unknown {
  return Array.isArray(rows) ? rows.find((row: unknown) => typeof row === 'object' && row !== null && (row as { name?: unknown }).name === name) : undefined;
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
