// `breakwater dlq`: the dead letters of a running Breakwater, through its admin API. A readable
// table by default, JSON with --json.

import { parseArgs } from 'node:util';
import type { CliIo } from './io.ts';

export const DLQ_USAGE = `  breakwater dlq list [--route R] [--reason X] [--since T] [--until T] [--limit N]
                                   list dead letters, newest first (every one unless --limit)
  breakwater dlq show ID           one dead letter with its headers, replays and body
  breakwater dlq replay ID...      send dead letters again through their route
  breakwater dlq replay --route R [--reason X] [--since T] [--until T] [--limit N] [--rate N]
                                   replay a route's dead letters, oldest first, N a second
                                   (default 10); stops when the route's breaker opens
  breakwater dlq delete ID...      delete dead letters
  breakwater dlq purge --route R [--before T]
                                   delete a route's dead letters (kept before T, or all)
      T is a date-time (2030-01-02T03:04:05Z) or a duration ago (90m, 2h, 7d)
      every dlq command takes --admin URL (default $BREAKWATER_ADMIN, else
      http://127.0.0.1:15000) and --json
`;

const DEFAULT_ADMIN = 'http://127.0.0.1:15000';
// `list` without --limit pages through everything, this many at a time.
const PAGE = 500;

/** A failure to show the user: a message, and exit code 1. */
class DlqError extends Error {}

interface Entry {
  readonly id: string;
  readonly time: string;
  readonly route: string;
  readonly method?: string;
  readonly url?: string;
  readonly reason: string | null;
  readonly status?: number;
  readonly attempts?: number;
  readonly bodyBytes?: number | null;
  readonly truncated?: boolean;
  readonly replayCount?: number;
  readonly [key: string]: unknown;
}

interface Report {
  readonly id: string;
  readonly result: 'success' | 'failure' | 'skipped';
  readonly status?: number;
  readonly reason?: string;
  readonly attempts?: number;
  readonly why?: string;
  readonly storeError?: string;
}

interface Summary {
  readonly stopped: string;
  readonly message: string;
  readonly replayed: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly skipped: number;
}

/** Runs `breakwater dlq ...`; returns the exit code. */
export async function dlq(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: {
      admin: { type: 'string' },
      json: { type: 'boolean', default: false },
      route: { type: 'string' },
      reason: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      before: { type: 'string' },
      limit: { type: 'string' },
      rate: { type: 'string' },
    },
    allowPositionals: true,
  });
  const [command, ...ids] = positionals;
  const admin = new Api((values.admin ?? io.env.BREAKWATER_ADMIN ?? DEFAULT_ADMIN).replace(/\/+$/, ''));
  const limit = values.limit === undefined ? undefined : positiveInteger('--limit', values.limit);
  const only = (allowed: readonly string[]): void => {
    for (const option of ['route', 'reason', 'since', 'until', 'before', 'limit', 'rate'] as const) {
      if (values[option] !== undefined && !allowed.includes(option)) throw usageError(`dlq ${command ?? ''} does not take --${option}`);
    }
  };
  try {
    switch (command) {
      case 'list':
        only(['route', 'reason', 'since', 'until', 'limit']);
        if (ids.length > 0) throw usageError('dlq list takes no ID; use dlq show ID');
        return await list(admin, io, values, limit);
      case 'show':
        only([]);
        if (ids.length !== 1) throw usageError('dlq show takes one ID');
        return await show(admin, io, ids[0]!, values.json);
      case 'replay':
        if (values.route !== undefined) {
          only(['route', 'reason', 'since', 'until', 'limit', 'rate']);
          if (ids.length > 0) throw usageError('dlq replay takes IDs or --route, not both');
          const rate = values.rate === undefined ? undefined : positiveNumber('--rate', values.rate);
          return await replayRoute(admin, io, { route: values.route, reason: values.reason, since: values.since, until: values.until, limit, ratePerSecond: rate }, values.json);
        }
        only([]);
        if (ids.length === 0) throw usageError('dlq replay needs IDs, or --route R');
        return await replayIds(admin, io, ids, values.json);
      case 'delete':
        only([]);
        if (ids.length === 0) throw usageError('dlq delete needs IDs');
        return await remove(admin, io, ids, values.json);
      case 'purge':
        only(['route', 'before']);
        if (values.route === undefined) throw usageError('dlq purge needs --route R');
        if (ids.length > 0) throw usageError('dlq purge takes no ID; use dlq delete ID');
        return await purge(admin, io, values.route, values.before, values.json);
      case undefined:
        throw usageError('dlq needs a command: list, show, replay, delete or purge');
      default:
        throw usageError(`unknown dlq command "${command}"`);
    }
  } catch (error) {
    if (!(error instanceof DlqError)) throw error;
    io.stderr(`breakwater: ${error.message}\n`);
    return 1;
  }
}

function usageError(message: string): Error {
  return Object.assign(new TypeError(message), { code: 'ERR_PARSE_ARGS_USAGE' });
}

function positiveInteger(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) throw usageError(`${name} must be a positive integer, not "${text}"`);
  return value;
}

function positiveNumber(name: string, text: string): number {
  const value = Number(text);
  if (!(value > 0) || !Number.isFinite(value)) throw usageError(`${name} must be a number above 0, not "${text}"`);
  return value;
}

/** The admin API, with its failures turned into messages. */
class Api {
  readonly base: string;

  constructor(base: string) {
    this.base = base;
  }

  async request(method: string, path: string, body?: unknown): Promise<Response> {
    let response: Response;
    try {
      response = await fetch(`${this.base}${path}`, {
        method,
        ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new DlqError(`cannot reach the admin server at ${this.base}: ${cause?.code ?? cause?.message ?? (error as Error).message}`);
    }
    if (response.ok) return response;
    let message = `${method} ${path}: ${response.status} ${response.statusText}`;
    try {
      const parsed = (await response.json()) as { error?: { message?: string } };
      if (parsed.error?.message !== undefined) message = parsed.error.message;
    } catch {
      // Not JSON: the status says enough.
    }
    throw new DlqError(message);
  }

  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    return (await (await this.request(method, path, body)).json()) as T;
  }
}

function query(params: Record<string, string | number | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined) search.set(key, String(value));
  const text = search.toString();
  return text === '' ? '' : `?${text}`;
}

async function list(api: Api, io: CliIo, filters: { route?: string; reason?: string; since?: string; until?: string; json: boolean }, limit: number | undefined): Promise<number> {
  const entries: Entry[] = [];
  let after: string | undefined;
  for (;;) {
    const pageSize = limit === undefined ? PAGE : Math.min(PAGE, limit - entries.length);
    const page = await api.json<{ entries: Entry[]; next: string | null }>(
      'GET',
      `/dead-letters${query({ route: filters.route, reason: filters.reason, since: filters.since, until: filters.until, limit: pageSize, after })}`,
    );
    entries.push(...page.entries);
    if (page.next === null || (limit !== undefined && entries.length >= limit)) break;
    after = page.next;
  }
  if (filters.json) {
    io.stdout(`${JSON.stringify(entries, null, 2)}\n`);
    return 0;
  }
  if (entries.length === 0) {
    io.stdout('no dead letters\n');
    return 0;
  }
  const rows = entries.map((entry) => [
    entry.id,
    shortTime(entry.time),
    entry.route,
    entry.method ?? '',
    clip(entry.url ?? '', 40),
    entry.reason ?? '',
    entry.attempts === undefined ? '' : String(entry.attempts),
    bodyText(entry),
    entry.replayCount === undefined ? '' : String(entry.replayCount),
  ]);
  io.stdout(table(['ID', 'KEPT', 'ROUTE', 'METHOD', 'URL', 'REASON', 'ATTEMPTS', 'BODY', 'REPLAYS'], rows));
  io.stdout(`${entries.length} dead letter${entries.length === 1 ? '' : 's'}\n`);
  return 0;
}

async function show(api: Api, io: CliIo, id: string, json: boolean): Promise<number> {
  const entry = await api.json<Entry & { headers?: [string, string][]; replays?: Record<string, unknown>[]; body?: string | null }>('GET', `/dead-letters/${encodeURIComponent(id)}`);
  if (json) {
    io.stdout(`${JSON.stringify(entry, null, 2)}\n`);
    return 0;
  }
  const lines = [
    `id:         ${entry.id}`,
    `kept:       ${entry.time}`,
    `route:      ${entry.route} (upstream ${String(entry.upstream ?? '')})`,
    `request:    ${entry.method ?? ''} ${entry.url ?? ''}`,
    `failed:     ${entry.reason ?? ''} (status ${String(entry.status ?? '')}, after ${String(entry.attempts ?? '')} attempt${entry.attempts === 1 ? '' : 's'})`,
    `request id: ${String(entry.requestId ?? '')}${entry.traceId === null || entry.traceId === undefined ? '' : `   trace id: ${String(entry.traceId)}`}`,
    `body:       ${bodyText(entry)}`,
    'headers:',
    ...(entry.headers ?? []).map(([name, value]) => `  ${name}: ${value}`),
  ];
  const replays = entry.replays ?? [];
  lines.push(replays.length === 0 ? 'replays:    none' : `replays:    ${String(entry.replayCount ?? replays.length)}${replays.length < Number(entry.replayCount ?? 0) ? ` (the last ${replays.length})` : ''}`);
  for (const replay of replays) lines.push(`  ${String(replay.at)}  ${String(replay.result)}  ${String(replay.status)}${replay.reason === undefined ? '' : ` ${String(replay.reason)}`}`);
  io.stdout(`${lines.join('\n')}\n`);
  if (entry.body !== null && entry.body !== undefined) {
    const bytes = Buffer.from(entry.body, 'base64');
    const text = bytes.toString('utf8');
    // Text is shown as it is; anything else would garble the terminal.
    const printable = Buffer.from(text, 'utf8').equals(bytes) && ![...text].some(isControl);
    io.stdout(printable ? `\n${text}${text.endsWith('\n') ? '' : '\n'}` : `\n(${bytes.length} bytes of binary; --json shows them in base64)\n`);
  }
  return 0;
}

function reportLine(report: Report): string {
  switch (report.result) {
    case 'success':
      return `${report.id}  delivered  ${String(report.status)}${report.storeError === undefined ? '' : `  (not removed: ${report.storeError})`}`;
    case 'failure':
      return `${report.id}  failed     ${String(report.status)}${report.reason === undefined ? '' : ` ${report.reason}`}  (kept)${report.storeError === undefined ? '' : `  (history not saved: ${report.storeError})`}`;
    case 'skipped':
      return `${report.id}  skipped    ${report.why ?? ''}`;
    default:
      return JSON.stringify(report);
  }
}

async function replayIds(api: Api, io: CliIo, ids: readonly string[], json: boolean): Promise<number> {
  const reports: Report[] = [];
  let failed = false;
  for (const id of ids) {
    try {
      const report = await api.json<Report>('POST', `/dead-letters/${encodeURIComponent(id)}/replay`);
      reports.push(report);
      if (report.result !== 'success') failed = true;
      if (!json) io.stdout(`${reportLine(report)}\n`);
    } catch (error) {
      if (!(error instanceof DlqError)) throw error;
      failed = true;
      io.stderr(`breakwater: ${id}: ${error.message}\n`);
    }
  }
  if (json) io.stdout(`${JSON.stringify(reports, null, 2)}\n`);
  return failed ? 1 : 0;
}

async function replayRoute(
  api: Api,
  io: CliIo,
  body: { route: string; reason?: string | undefined; since?: string | undefined; until?: string | undefined; limit?: number | undefined; ratePerSecond?: number | undefined },
  json: boolean,
): Promise<number> {
  const response = await api.request('POST', '/dead-letters/replay', Object.fromEntries(Object.entries(body).filter(([, value]) => value !== undefined)));
  let summary: Summary | undefined;
  let pending = '';
  const decoder = new TextDecoder();
  const line = (text: string): void => {
    if (text.trim() === '') return;
    if (json) io.stdout(`${text}\n`);
    const parsed = JSON.parse(text) as Report | { summary: Summary } | { error: { message: string } };
    if ('summary' in parsed) summary = parsed.summary;
    else if ('error' in parsed) throw new DlqError(parsed.error.message);
    else if (!json) io.stdout(`${reportLine(parsed)}\n`);
  };
  for await (const chunk of response.body ?? []) {
    pending += decoder.decode(chunk as Uint8Array, { stream: true });
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const text of lines) line(text);
  }
  line(pending + decoder.decode());
  if (summary === undefined) throw new DlqError('the bulk replay ended without a summary: the admin server went away');
  if (!json) {
    io.stdout(`replayed ${summary.replayed}: ${summary.succeeded} delivered, ${summary.failed} failed, ${summary.skipped} skipped; ${summary.message}\n`);
  }
  return summary.failed === 0 && (summary.stopped === 'done' || summary.stopped === 'limit') ? 0 : 1;
}

async function remove(api: Api, io: CliIo, ids: readonly string[], json: boolean): Promise<number> {
  const deleted: string[] = [];
  let failed = false;
  for (const id of ids) {
    try {
      await api.json('DELETE', `/dead-letters/${encodeURIComponent(id)}`);
      deleted.push(id);
      if (!json) io.stdout(`deleted ${id}\n`);
    } catch (error) {
      if (!(error instanceof DlqError)) throw error;
      failed = true;
      io.stderr(`breakwater: ${id}: ${error.message}\n`);
    }
  }
  if (json) io.stdout(`${JSON.stringify({ deleted }, null, 2)}\n`);
  return failed ? 1 : 0;
}

async function purge(api: Api, io: CliIo, route: string, before: string | undefined, json: boolean): Promise<number> {
  const result = await api.json<{ route: string; deleted: number }>('DELETE', `/dead-letters${query({ route, before })}`);
  io.stdout(json ? `${JSON.stringify(result, null, 2)}\n` : `deleted ${result.deleted} dead letter${result.deleted === 1 ? '' : 's'} of route ${result.route}\n`);
  return 0;
}

/** A control character other than tab, line feed and carriage return. */
function isControl(char: string): boolean {
  const code = char.charCodeAt(0);
  return (code < 32 && char !== '\t' && char !== '\n' && char !== '\r') || code === 127;
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const format = (row: readonly string[]): string => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  ');
  return `${[header, ...rows].map(format).join('\n')}\n`;
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** `2030-01-02T03:04:05.678Z` as `2030-01-02 03:04:05Z`. */
function shortTime(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

function bodyText(entry: Entry): string {
  const bytes = entry.bodyBytes;
  if (entry.truncated === true) return bytes === null || bytes === undefined ? 'not kept (cut short)' : `not kept (${size(bytes)})`;
  if (bytes === 0 || bytes === undefined || bytes === null) return 'none';
  return size(bytes);
}
