// The dead-letter endpoints of the admin server: list, show, replay (one or in bulk, paced),
// delete and purge. Dead letters live in the stores of the routes that keep them; a Redis store
// shares them between replicas, so any replica lists and replays every replica's.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseDuration } from '../config/units.ts';
import type { PolicyEvents } from '../exchange/events.ts';
import { DEAD_LETTER_STREAM, asDeadLetterMeta } from '../policies/dead-letter/capture.ts';
import type { DeadLetterKeeper } from '../policies/dead-letter/keeper.ts';
import { replayEntry, replayRoute, type ReplayReport, type ReplayTarget } from '../policies/dead-letter/replayer.ts';
import type { Clock } from '../runtime/clock.ts';
import type { RunningState } from '../stack/state.ts';
import { MAX_LOG_PAGE, MAX_LOG_TRIM, isLogId } from '../stores/log.ts';
import type { LogEntry, LogQuery, LogStore } from '../stores/store.ts';

export interface DeadLetterEndpointDeps {
  readonly keeper: DeadLetterKeeper;
  readonly state: () => RunningState;
  readonly clock: Clock;
  readonly events: PolicyEvents;
}

/** Handles the requests under /dead-letters. */
export interface DeadLetterEndpoints {
  /** Whether `url` is one of these endpoints' paths. */
  owns(url: string | undefined): boolean;
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
}

const prefix = '/dead-letters';
const DEFAULT_PAGE = 100;
const DEFAULT_RATE_PER_SECOND = 10;
const MAX_RATE_PER_SECOND = 1000;
const maxBodyBytes = 4096;

/** A reply with a status: what a request was wrong about. */
class Refused extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/**
 * A time a caller gives: an RFC 3339 date-time (`2030-01-02T03:04:05Z`), or a duration meaning
 * that long ago (`90m`, `2h`, `7d`). Wall-clock milliseconds; undefined when it is neither.
 */
export function parseTime(text: string, wallNow: number): number | undefined {
  const trimmed = text.trim();
  try {
    return wallNow - parseDuration(trimmed);
  } catch {
    // Not a duration: a date-time, with a zone so that it means one instant.
  }
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/i.test(trimmed)) return undefined;
  const ms = Date.parse(trimmed);
  return Number.isNaN(ms) ? undefined : ms;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** A dead letter as listings show it. */
function summary(entry: LogEntry): Record<string, unknown> {
  const meta = asDeadLetterMeta(entry.meta);
  if (meta === undefined) return { id: entry.id, time: iso(entry.time), route: entry.partition, reason: entry.tags.reason ?? null, unreadable: true };
  const last = meta.replays.at(-1);
  return {
    id: entry.id,
    time: iso(entry.time),
    route: meta.route,
    upstream: meta.upstream,
    method: meta.method,
    url: meta.url,
    reason: meta.reason,
    status: meta.status,
    attempts: meta.attempts,
    requestId: meta.requestId,
    traceId: meta.traceId,
    bodyBytes: meta.bodyBytes,
    truncated: meta.truncated,
    replayCount: meta.replayCount,
    lastReplay: last === undefined ? null : { ...last, at: iso(last.at) },
  };
}

/** A dead letter as `GET /dead-letters/ID` shows it: with its headers, history and body (base64). */
function detail(entry: LogEntry): Record<string, unknown> {
  const meta = asDeadLetterMeta(entry.meta);
  if (meta === undefined) return summary(entry);
  const headers: [string, string][] = [];
  for (let i = 0; i < meta.headers.length; i += 2) headers.push([meta.headers[i]!, meta.headers[i + 1]!]);
  return {
    ...summary(entry),
    listener: meta.listener,
    headers,
    replays: meta.replays.map((replay) => ({ ...replay, at: iso(replay.at) })),
    body: entry.body === undefined ? null : entry.body.toString('base64'),
  };
}

function writeJson(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBodyBytes) throw new Refused(413, `the body must be at most ${maxBodyBytes} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Refused(400, 'the body is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Refused(400, 'the body must be a JSON object');
  return parsed as Record<string, unknown>;
}

export function deadLetterEndpoints(deps: DeadLetterEndpointDeps): DeadLetterEndpoints {
  const { keeper, clock, events } = deps;
  /** Routes with a bulk replay running: one at a time per route, so no entry is sent twice at once. */
  const bulkRunning = new Set<string>();

  const time = (name: string, value: string | null | undefined): number | undefined => {
    if (value === undefined || value === null || value === '') return undefined;
    const parsed = parseTime(value, clock.wallNow());
    if (parsed === undefined) throw new Refused(400, `${name} must be a date-time such as 2030-01-02T03:04:05Z, or a duration ago such as 2h or 7d; got "${value}"`);
    return parsed;
  };
  const positiveInteger = (name: string, value: unknown, max?: number): number | undefined => {
    if (value === undefined || value === null || value === '') return undefined;
    const number = typeof value === 'string' ? Number(value) : value;
    if (typeof number !== 'number' || !Number.isSafeInteger(number) || number < 1 || (max !== undefined && number > max)) {
      throw new Refused(400, `${name} must be an integer from 1${max === undefined ? '' : ` to ${max}`}; got ${JSON.stringify(value)}`);
    }
    return number;
  };
  const keptRoute = (name: string): { log: LogStore } => {
    const route = keeper.route(name);
    if (route === undefined) throw new Refused(404, `route "${name}" keeps no dead letters in the running config`);
    return route;
  };

  /** The entry with that id, and the log holding it, in any store a route keeps dead letters in. */
  async function find(id: string): Promise<{ entry: LogEntry; log: LogStore } | undefined> {
    if (!isLogId(id)) return undefined;
    for (const log of keeper.logs().keys()) {
      const entry = await log.get(DEAD_LETTER_STREAM, id);
      if (entry !== undefined) return { entry, log };
    }
    return undefined;
  }

  /** What a replay of the route needs, from the running config. */
  function target(route: string, log: LogStore): ReplayTarget {
    const state = deps.state();
    const config = state.config.routes.find((candidate) => candidate.name === route);
    const active = state.routes.find((candidate) => candidate.name === route);
    if (config?.deadLetter === undefined || active === undefined) {
      throw new Refused(409, `route "${route}" does not keep dead letters in the running config, so its dead letters cannot be replayed through it; delete them, or restore the route`);
    }
    return {
      route,
      listener: config.listener,
      upstream: config.upstream,
      timeoutMs: config.timeoutMs,
      config: config.deadLetter,
      log,
      handler: active.handler,
      keyHeader: config.idempotency?.header,
    };
  }

  async function list(url: URL): Promise<unknown> {
    const params = url.searchParams;
    const route = params.get('route') ?? undefined;
    const limit = positiveInteger('limit', params.get('limit'), MAX_LOG_PAGE) ?? DEFAULT_PAGE;
    const after = params.get('after') ?? undefined;
    if (after !== undefined && !isLogId(after)) throw new Refused(400, `after must be the next of a previous page; got "${after}"`);
    const order = params.get('order') ?? 'newest';
    if (order !== 'newest' && order !== 'oldest') throw new Refused(400, `order must be newest or oldest; got "${order}"`);
    const reason = params.get('reason') ?? undefined;
    const since = time('since', params.get('since'));
    const until = time('until', params.get('until'));
    const query: LogQuery = {
      limit,
      order,
      ...(route === undefined ? {} : { partition: route }),
      ...(reason === undefined ? {} : { tags: { reason } }),
      ...(since === undefined ? {} : { since }),
      ...(until === undefined ? {} : { until }),
      ...(after === undefined ? {} : { after }),
    };
    // A config where no route keeps dead letters has none to list: said, rather than an empty list.
    if (route === undefined && keeper.routes.length === 0) throw new Refused(404, 'no route keeps dead letters in the running config');
    const logs = route === undefined ? [...keeper.logs().keys()] : [keptRoute(route).log];
    const pages = await Promise.all(logs.map((log) => log.list(DEAD_LETTER_STREAM, query)));
    // Ids sort in the order entries were kept, in every store: merge the stores' pages by id.
    const newest = order === 'newest';
    const merged = pages.flatMap((page) => page.entries).sort((a, b) => (a.id < b.id ? (newest ? 1 : -1) : a.id > b.id ? (newest ? -1 : 1) : 0));
    const entries = merged.slice(0, limit);
    // A store may have more past its own page; the next page starts after the last one shown.
    const more = merged.length > limit || pages.some((page) => page.next !== undefined);
    const last = entries.at(-1);
    const next = more ? (last?.id ?? pages.find((page) => page.next !== undefined)?.next ?? null) : null;
    return { entries: entries.map(summary), next };
  }

  async function replayOne(id: string): Promise<ReplayReport> {
    const found = await find(id);
    if (found === undefined) throw new Refused(404, `no dead letter ${id}`);
    const meta = asDeadLetterMeta(found.entry.meta);
    const route = meta?.route ?? found.entry.partition;
    return replayEntry(target(route, found.log), found.entry, { clock, events });
  }

  async function replayBulk(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJson(req);
    const known = new Set(['route', 'reason', 'since', 'until', 'limit', 'ratePerSecond']);
    const unknown = Object.keys(body).filter((key) => !known.has(key));
    if (unknown.length > 0) throw new Refused(400, `unknown field${unknown.length === 1 ? '' : 's'} ${unknown.join(', ')}; the body takes ${[...known].join(', ')}`);
    const route = body.route;
    if (typeof route !== 'string' || route === '') throw new Refused(400, 'route is required: the route whose dead letters to replay');
    const reason = body.reason;
    if (reason !== undefined && typeof reason !== 'string') throw new Refused(400, 'reason must be a string');
    const asText = (name: string, value: unknown): string | undefined => {
      if (value === undefined || value === null) return undefined;
      if (typeof value !== 'string') throw new Refused(400, `${name} must be a string: a date-time, or a duration ago`);
      return value;
    };
    const since = time('since', asText('since', body.since));
    const until = time('until', asText('until', body.until));
    const limit = positiveInteger('limit', body.limit);
    const rate = body.ratePerSecond ?? DEFAULT_RATE_PER_SECOND;
    if (typeof rate !== 'number' || !(rate > 0) || rate > MAX_RATE_PER_SECOND) throw new Refused(400, `ratePerSecond must be a number above 0 and at most ${MAX_RATE_PER_SECOND}`);
    const replayTarget = target(route, keptRoute(route).log);
    if (bulkRunning.has(route)) throw new Refused(409, `a bulk replay of route "${route}" is already running`);

    bulkRunning.add(route);
    const controller = new AbortController();
    // The replay lasts as long as its request: a client that leaves (Ctrl-C) stops it.
    res.once('close', () => controller.abort());
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    try {
      const replays = replayRoute(replayTarget, { reason, since, until, limit, ratePerSecond: rate }, { clock, events }, controller.signal);
      for (;;) {
        const step = await replays.next();
        if (step.done === true) {
          res.end(`${JSON.stringify({ summary: step.value })}\n`);
          break;
        }
        res.write(`${JSON.stringify(step.value)}\n`);
      }
    } finally {
      bulkRunning.delete(route);
    }
  }

  async function purge(url: URL): Promise<unknown> {
    const route = url.searchParams.get('route');
    if (route === null || route === '') throw new Refused(400, 'a purge needs route=: the route whose dead letters to delete');
    const before = time('before', url.searchParams.get('before'));
    const { log } = keptRoute(route);
    let deleted = 0;
    // The store deletes a bounded batch per call; a short batch was the last.
    for (;;) {
      const batch = await log.trim(DEAD_LETTER_STREAM, route, before === undefined ? {} : { before });
      deleted += batch;
      if (batch < MAX_LOG_TRIM) break;
    }
    return { route, deleted };
  }

  async function route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const method = req.method ?? 'GET';
    const path = url.pathname;
    if (path === prefix) {
      if (method === 'GET' || method === 'HEAD') return writeJson(res, 200, await list(url));
      if (method === 'DELETE') return writeJson(res, 200, await purge(url));
      res.setHeader('allow', 'GET, HEAD, DELETE');
      return writeJson(res, 405, { error: { message: `${method} not allowed; use GET, or DELETE with route=` } });
    }
    if (path === `${prefix}/replay`) {
      if (method === 'POST') return replayBulk(req, res);
      res.setHeader('allow', 'POST');
      return writeJson(res, 405, { error: { message: `${method} not allowed; use POST` } });
    }
    const rest = path.slice(prefix.length + 1).split('/');
    const id = decodeURIComponent(rest[0] ?? '');
    if (rest.length === 2 && rest[1] === 'replay') {
      if (method !== 'POST') {
        res.setHeader('allow', 'POST');
        return writeJson(res, 405, { error: { message: `${method} not allowed; use POST` } });
      }
      return writeJson(res, 200, await replayOne(id));
    }
    if (rest.length !== 1 || id === '') return writeJson(res, 404, { error: { message: `no admin endpoint ${path}` } });
    if (method === 'GET' || method === 'HEAD') {
      const found = await find(id);
      if (found === undefined) throw new Refused(404, `no dead letter ${id}`);
      return writeJson(res, 200, detail(found.entry));
    }
    if (method === 'DELETE') {
      const found = await find(id);
      if (found === undefined || !(await found.log.remove(DEAD_LETTER_STREAM, id))) throw new Refused(404, `no dead letter ${id}`);
      return writeJson(res, 200, { deleted: id });
    }
    res.setHeader('allow', 'GET, HEAD, DELETE');
    return writeJson(res, 405, { error: { message: `${method} not allowed; use GET or DELETE` } });
  }

  return {
    owns(url) {
      const path = (url ?? '').split('?')[0]!;
      return path === prefix || path.startsWith(`${prefix}/`);
    },
    async handle(req, res) {
      const url = new URL(req.url ?? '/', 'http://admin');
      try {
        await route(req, res, url);
      } catch (error) {
        if (res.headersSent) {
          // A bulk replay already streaming: end its stream with what went wrong.
          res.end(`${JSON.stringify({ error: { message: (error as Error).message } })}\n`);
          return;
        }
        const status = error instanceof Refused ? error.status : (error as { name?: string }).name === 'StoreError' ? 503 : 500;
        writeJson(res, status, { error: { message: error instanceof Error ? error.message : String(error) } });
      }
    },
  };
}
