// Dead letters over real sockets: an outage is captured with every body byte for byte, the
// caller's answers are those it would get without dead letters, the upstream comes back and a
// bulk replay delivers each request exactly once in the order it was kept, a restart between
// capture and replay loses nothing (sqlite), a replay stops by itself on an open breaker, and
// the admin API and metrics show it all.

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../support/breakwater.ts';
import { waitFor } from '../support/redis-server.ts';
import { startUpstream, type UpstreamServer } from '../support/upstream-server.ts';

let dir: string;
let upstream: UpstreamServer;
/** While true, the upstream answers 503 to everything. */
let down = true;
const running: RunningBreakwater[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'breakwater-dead-letters-'));
  upstream = await startUpstream((req, res, body) => {
    if (down) {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('down for maintenance');
      return;
    }
    res.writeHead(201, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ received: body.length }));
  });
});

afterAll(async () => {
  await upstream?.close();
  await rm(dir, { recursive: true, force: true });
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((bw) => bw.stop()));
  down = true;
});

let dbSeq = 0;

/** A config with a route that keeps dead letters in sqlite, one that does not, and one behind a touchy breaker. */
function config(db = join(dir, `state-${++dbSeq}.db`)): string {
  const retry = '{maxAttempts: 2, retryOn: [connect-failure, reset, 503], backoff: {type: none}}';
  return `${ephemeralAddresses}
upstreams:
  notifier: {endpoints: ['${upstream.origin}']}
  nowhere: {endpoints: ['http://127.0.0.1:9'], connectTimeout: 200ms}
stores:
  local: {type: sqlite, path: '${db}'}
routes:
  - name: notify
    match: {host: notify}
    upstream: notifier
    timeout: 5s
    retry: ${retry}
    deadLetter: {store: local, maxBodyBytes: 64KiB}
  - name: plain
    match: {host: plain}
    upstream: notifier
    timeout: 5s
    retry: ${retry}
  - name: notify-nowhere
    match: {host: notify-nowhere}
    upstream: nowhere
    timeout: 5s
    deadLetter: {store: local}
  - name: plain-nowhere
    match: {host: plain-nowhere}
    upstream: nowhere
    timeout: 5s
  - name: guarded
    match: {host: guarded}
    upstream: notifier
    timeout: 5s
    circuitBreaker: {minRequests: 2, failureRate: 0.5, openFor: 1m}
    deadLetter: {store: local}
`;
}

async function start(yaml = config()): Promise<RunningBreakwater> {
  const bw = await startBreakwater(yaml);
  running.push(bw);
  return bw;
}

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

async function send(bw: RunningBreakwater, host: string, path: string, body: Buffer | null, headers: Record<string, string> = {}): Promise<Answer> {
  const response = await request(`${bw.url()}${path}`, {
    method: body === null ? 'GET' : 'POST',
    headers: { host, 'content-type': 'application/octet-stream', ...headers },
    ...(body === null ? {} : { body }),
  });
  return { status: response.statusCode, headers: response.headers, body: await response.body.text() };
}

async function admin<T>(bw: RunningBreakwater, path: string, init: RequestInit = {}): Promise<{ status: number; body: T }> {
  const response = await fetch(`${bw.adminUrl}${path}`, init);
  return { status: response.status, body: (await response.json()) as T };
}

interface Listed {
  id: string;
  route: string;
  url: string;
  reason: string;
  status: number;
  bodyBytes: number | null;
  truncated: boolean;
  replayCount: number;
}

async function listAll(bw: RunningBreakwater, route: string): Promise<Listed[]> {
  const entries: Listed[] = [];
  let after: string | null = null;
  do {
    const page: { body: { entries: Listed[]; next: string | null } } = await admin(bw, `/dead-letters?route=${route}&limit=7&order=oldest${after === null ? '' : `&after=${after}`}`);
    entries.push(...page.body.entries);
    after = page.body.next;
  } while (after !== null);
  return entries;
}

async function bulkReplay(bw: RunningBreakwater, body: Record<string, unknown>): Promise<{ status: number; lines: Record<string, unknown>[] }> {
  const response = await fetch(`${bw.adminUrl}/dead-letters/replay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, lines: text.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as Record<string, unknown>) };
}

async function metric(bw: RunningBreakwater, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const text = await (await fetch(`${bw.telemetryUrl}/metrics`)).text();
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name}{`) && wanted.every((label) => candidate.includes(label)));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** Bodies of every byte value, different for each request, not valid UTF-8. */
const bodies = (n: number): Buffer[] => Array.from({ length: n }, (_, i) => Buffer.concat([Buffer.from([0xff, 0xfe, i]), randomBytes(1000 + i * 37)]));

describe('dead letters over real sockets', () => {
  it('captures an outage byte for byte, and a bulk replay delivers each request once, in the order kept', async () => {
    const bw = await start();
    const sent = bodies(20);

    // The outage: every request fails after its retry, and is kept.
    for (let i = 0; i < sent.length; i++) {
      const answer = await send(bw, 'notify', `/send/${i}?n=${i}`, sent[i]!, { 'idempotency-key-not': 'x', authorization: 'Bearer secret' });
      expect(answer.status).toBe(503);
      expect(answer.body).toBe('down for maintenance');
    }
    await waitFor('20 dead letters', async () => (await listAll(bw, 'notify')).length === 20);
    const kept = await listAll(bw, 'notify');

    expect(kept.map((entry) => entry.url)).toEqual(sent.map((_, i) => `/send/${i}?n=${i}`));
    for (const [i, entry] of kept.entries()) {
      expect(entry).toMatchObject({ route: 'notify', reason: '503', status: 503, bodyBytes: sent[i]!.length, truncated: false, replayCount: 0 });
      const shown = await admin<{ body: string; headers: [string, string][]; attempts: number }>(bw, `/dead-letters/${entry.id}`);
      expect(Buffer.from(shown.body.body, 'base64').equals(sent[i]!)).toBe(true);
      // A POST without a key is not retried on a 503: the upstream may have acted on it.
      expect(shown.body.attempts).toBe(1);
      expect(shown.body.headers.map(([name]) => name.toLowerCase())).not.toContain('authorization');
    }
    expect(await metric(bw, 'breakwater_dead_letters_total', { route: 'notify', reason: '503' })).toBe(20);
    expect(await metric(bw, 'breakwater_dead_letter_entries', { route: 'notify' })).toBe(20);
    expect(await metric(bw, 'breakwater_dead_letter_oldest_age_seconds', { route: 'notify' })).toBeGreaterThanOrEqual(0);

    // The upstream is fixed; every dead letter goes again, each exactly once.
    down = false;
    const before = upstream.requests.length;
    const replay = await bulkReplay(bw, { route: 'notify', ratePerSecond: 500 });

    expect(replay.status).toBe(200);
    expect(replay.lines.at(-1)).toEqual({ summary: { stopped: 'done', message: 'every matching dead letter was replayed', replayed: 20, succeeded: 20, failed: 0, skipped: 0 } });
    const delivered = upstream.requests.slice(before);
    expect(delivered).toHaveLength(20);
    expect(delivered.map((seen) => seen.url)).toEqual(sent.map((_, i) => `/send/${i}?n=${i}`));
    for (const [i, seen] of delivered.entries()) {
      expect(seen.body.equals(sent[i]!)).toBe(true);
      expect(seen.headers['x-breakwater-replay']).toBe(kept[i]!.id);
      expect(seen.headers['idempotency-key']).toBe(kept[i]!.id);
      expect(seen.headers.authorization).toBeUndefined();
    }
    expect(await listAll(bw, 'notify')).toEqual([]);
    expect(await metric(bw, 'breakwater_dead_letter_replays_total', { route: 'notify', result: 'success' })).toBe(20);
    expect(await metric(bw, 'breakwater_dead_letter_entries', { route: 'notify' })).toBe(0);
  });

  it('gives the caller the same answer with dead letters as without', async () => {
    const bw = await start();
    const strip = (answer: Answer, route: string) => ({
      status: answer.status,
      reason: answer.headers['x-breakwater-reason'],
      attempts: answer.headers['x-breakwater-attempts'],
      body: answer.body.replaceAll(route, 'ROUTE').replace(/"requestId":"[^"]*"/, ''),
    });

    // An upstream 5xx after retries, and no connection at all.
    for (const [kept, plain] of [
      ['notify', 'plain'],
      ['notify-nowhere', 'plain-nowhere'],
    ] as const) {
      const body = randomBytes(5000);
      expect(strip(await send(bw, kept, '/x', body), kept)).toEqual(strip(await send(bw, plain, '/x', body), plain));
    }
    down = false;
    expect(strip(await send(bw, 'notify', '/x', randomBytes(10)), 'notify')).toEqual(strip(await send(bw, 'plain', '/x', randomBytes(10)), 'plain'));
    await waitFor('the two dead letters', async () => (await listAll(bw, 'notify')).length + (await listAll(bw, 'notify-nowhere')).length === 2);
    expect((await listAll(bw, 'notify-nowhere'))[0]).toMatchObject({ reason: 'upstream_unavailable', status: 503 });
  });

  it('keeps dead letters across a restart, and replays them after it', async () => {
    const db = join(dir, 'restart.db');
    const first = await start(config(db));
    const sent = bodies(5);
    for (const [i, body] of sent.entries()) await send(first, 'notify', `/r/${i}`, body);
    await waitFor('5 dead letters', async () => (await listAll(first, 'notify')).length === 5);
    const ids = (await listAll(first, 'notify')).map((entry) => entry.id);
    await first.stop();
    running.splice(running.indexOf(first), 1);

    // A new process on the same file.
    const second = await start(config(db));
    const kept = await listAll(second, 'notify');
    expect(kept.map((entry) => entry.id)).toEqual(ids);
    for (const [i, entry] of kept.entries()) {
      const shown = await admin<{ body: string }>(second, `/dead-letters/${entry.id}`);
      expect(Buffer.from(shown.body.body, 'base64').equals(sent[i]!)).toBe(true);
    }

    down = false;
    const before = upstream.requests.length;
    const replay = await bulkReplay(second, { route: 'notify', ratePerSecond: 100 });
    expect(replay.lines.at(-1)).toMatchObject({ summary: { stopped: 'done', succeeded: 5 } });
    expect(upstream.requests.slice(before).map((seen) => seen.url)).toEqual(sent.map((_, i) => `/r/${i}`));
  });

  it('replays one dead letter, keeps the history of a failed replay, and deletes and purges', async () => {
    const bw = await start();
    for (let i = 0; i < 3; i++) await send(bw, 'notify', `/one/${i}`, Buffer.from(`body ${i}`));
    await waitFor('3 dead letters', async () => (await listAll(bw, 'notify')).length === 3);
    const [a, b, c] = await listAll(bw, 'notify');

    // Still down: the replay fails, and the dead letter stays with the attempt in its history.
    // It carries its id as its idempotency key, so the route's retry may send it twice.
    const failed = await admin<Record<string, unknown>>(bw, `/dead-letters/${a!.id}/replay`, { method: 'POST' });
    expect(failed).toEqual({ status: 200, body: { id: a!.id, result: 'failure', status: 503, attempts: 2 } });
    const shown = await admin<{ replayCount: number; replays: { result: string; status: number; at: string }[] }>(bw, `/dead-letters/${a!.id}`);
    expect(shown.body.replayCount).toBe(1);
    expect(shown.body.replays).toEqual([{ at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), result: 'failure', status: 503, attempts: 2 }]);

    down = false;
    expect((await admin(bw, `/dead-letters/${a!.id}/replay`, { method: 'POST' })).body).toMatchObject({ result: 'success', status: 201 });
    expect((await admin(bw, `/dead-letters/${a!.id}`)).status).toBe(404);

    expect(await admin(bw, `/dead-letters/${b!.id}`, { method: 'DELETE' })).toEqual({ status: 200, body: { deleted: b!.id } });
    expect((await admin(bw, `/dead-letters/${b!.id}`, { method: 'DELETE' })).status).toBe(404);
    expect(await admin(bw, '/dead-letters?route=notify', { method: 'DELETE' })).toEqual({ status: 200, body: { route: 'notify', deleted: 1 } });
    expect((await admin(bw, `/dead-letters/${c!.id}`)).status).toBe(404);
  });

  it('stops a bulk replay by itself when the route\'s breaker opens, and says so', async () => {
    const bw = await start();
    for (let i = 0; i < 6; i++) await send(bw, 'guarded', `/g/${i}`, Buffer.from(`g ${i}`));
    await waitFor('6 dead letters', async () => (await listAll(bw, 'guarded')).length === 6);

    const replay = await bulkReplay(bw, { route: 'guarded', ratePerSecond: 1000 });

    const summary = replay.lines.at(-1)!.summary as Record<string, unknown>;
    expect(summary).toMatchObject({ stopped: 'circuit-open', succeeded: 0 });
    expect(summary.message).toMatch(/circuit breaker is open/);
    expect((replay.lines.at(-2) as { reason?: string }).reason).toBe('circuit_open');
    expect(await listAll(bw, 'guarded')).toHaveLength(6);
  });

  it('refuses what the admin API cannot do, with reasons', async () => {
    const bw = await start();

    expect(await admin(bw, '/dead-letters?route=plain')).toEqual({ status: 404, body: { error: { message: 'route "plain" keeps no dead letters in the running config' } } });
    expect((await admin(bw, '/dead-letters/NOTANID')).status).toBe(404);
    expect((await admin(bw, '/dead-letters?limit=0')).status).toBe(400);
    expect((await admin(bw, '/dead-letters?since=yesterday')).body).toEqual({ error: { message: expect.stringMatching(/since must be a date-time/) } });
    expect((await bulkReplay(bw, { reason: 'timeout' })).status).toBe(400);
    expect((await bulkReplay(bw, { route: 'notify', ratePerSecond: 0 })).status).toBe(400);
    expect((await bulkReplay(bw, { route: 'notify', speed: 3 })).lines).toEqual([{ error: { message: expect.stringMatching(/unknown field speed/) } }]);
    expect((await admin(bw, '/dead-letters', { method: 'DELETE' })).status).toBe(400);
    // A web page may not drive replays.
    expect((await admin(bw, '/dead-letters/replay', { method: 'POST', headers: { origin: 'http://evil.example', 'content-type': 'application/json' }, body: '{"route":"notify"}' })).status).toBe(403);
  });
});

describe('a config where no route keeps dead letters', () => {
  it('says so at GET /dead-letters', async () => {
    const bw = await startBreakwater(`${ephemeralAddresses}
upstreams: {notifier: {endpoints: ['http://127.0.0.1:9']}}
routes: [{name: plain, upstream: notifier}]
`);
    running.push(bw);

    expect(await admin(bw, '/dead-letters')).toEqual({ status: 404, body: { error: { message: 'no route keeps dead letters in the running config' } } });
  });
});
