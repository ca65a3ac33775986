// One misbehaving client must not take the listener from the others: half-sent request heads,
// connections that never send a byte and idle keep-alive connections are closed on time,
// a client past its own connection limit is refused at once, and the process's descriptors
// stay bounded. Breakwater runs as its own process so its descriptors can be counted apart
// from the flood's. The floods come from other loopback addresses (127.0.0.2...), so the
// listener sees them as other clients than the test's own requests from 127.0.0.1.

import { readdirSync } from 'node:fs';
import { Pool, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lifetimes, startFlood, type FloodConnection } from '../support/flood.ts';
import { spawnBreakwater, type BreakwaterProcess } from '../support/process.ts';
import { startUpstream, type UpstreamServer } from '../support/upstream-server.ts';

const headersTimeoutMs = 500;
const idleTimeoutMs = 500;
const perClient = 40;
const maxConnections = 200;
const edgeMaxConnections = 100;
/** What a loaded 2-core machine may add to a timeout before the close is seen. */
const marginMs = 1500;
/** Connections to the upstream, at most. */
const upstreamConnections = 8;
/**
 * Descriptors a Breakwater process holds besides its client connections: listeners, its
 * upstream connections, stdio, epoll...
 */
const processFds = 40 + upstreamConnections;

let upstream: UpstreamServer;
let proxy: BreakwaterProcess;

beforeAll(async () => {
  upstream = await startUpstream();
  proxy = await spawnBreakwater(`
listeners:
  - {name: outbound, address: 127.0.0.1:0}
  - name: inbound
    address: 127.0.0.1:0
    maxConnections: ${maxConnections}
    maxConnectionsPerClient: ${perClient}
  - name: edge
    address: 127.0.0.1:0
    maxConnections: ${edgeMaxConnections}
telemetry: {address: 127.0.0.1:0}
admin: {address: 127.0.0.1:0}
limits: {headersTimeout: ${headersTimeoutMs}ms, idleTimeout: ${idleTimeoutMs}ms}
upstreams:
  app: {endpoints: ["${upstream.origin}"], maxConnections: ${upstreamConnections}}
routes:
  - {name: app, listener: inbound, match: {pathPrefix: /}, upstream: app, timeout: 5s}
  - {name: edge, listener: edge, match: {pathPrefix: /}, upstream: app, timeout: 5s}
`);
});

afterAll(async () => {
  proxy?.kill();
  await proxy?.exited;
  await upstream?.close();
});

function openDescriptors(): number {
  return readdirSync(`/proc/${proxy.pid}/fd`).length;
}

/** Samples the proxy's open descriptors every few milliseconds until stopped; returns the most seen. */
function watchDescriptors(): () => number {
  let most = openDescriptors();
  const timer = setInterval(() => {
    most = Math.max(most, openDescriptors());
  }, 20);
  return () => {
    clearInterval(timer);
    return Math.max(most, openDescriptors());
  };
}

/** Requests from 127.0.0.1, one after another, until `until` settles; the status and time of each. */
async function serveMeanwhile(origin: string, until: Promise<unknown>): Promise<{ status: number; ms: number }[]> {
  let over = false;
  void until.finally(() => (over = true));
  const pool = new Pool(origin, { connections: 2 });
  const results: { status: number; ms: number }[] = [];
  try {
    // Bounded by the flood: it ends within its own duration and give-up time.
    while (!over) {
      const started = performance.now();
      try {
        const response = await pool.request({ method: 'GET', path: `/ok/${results.length}`, signal: AbortSignal.timeout(5000) });
        await response.body.dump();
        results.push({ status: response.statusCode, ms: performance.now() - started });
      } catch {
        results.push({ status: 0, ms: performance.now() - started });
      }
    }
  } finally {
    await pool.destroy();
  }
  return results;
}

async function metric(name: string, labels: string): Promise<number> {
  const text = await (await request(`http://127.0.0.1:${proxy.ports.telemetry}/metrics`)).body.text();
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name}{${labels}}`));
  if (line === undefined) throw new Error(`no series ${name}{${labels}}`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** Connections the server kept open for a while: not refused on arrival. */
const held = (connections: readonly FloodConnection[]): FloodConnection[] =>
  connections.filter((c) => c.received !== '' || (c.closedAt !== undefined && c.closedAt - c.openedAt >= headersTimeoutMs / 2));

describe('clients flooding a listener past their own connection limit', () => {
  it('keeps answering another client, closes the flood on time and refuses the excess at once', async () => {
    const port = proxy.ports.listeners.inbound!;
    const flood = { port, concurrent: 2 * perClient, total: 1500, durationMs: 1500, giveUpMs: 5000, paceMs: 20 };
    const stopWatching = watchDescriptors();

    // Three clients at once, each holding more connections than it may: half-sent heads,
    // connections that never send a byte, and idle keep-alive connections.
    const halfHeads = startFlood({ ...flood, localAddress: '127.0.0.2', kind: 'half-head' });
    const silent = startFlood({ ...flood, localAddress: '127.0.0.3', kind: 'silent' });
    const idle = startFlood({ ...flood, localAddress: '127.0.0.4', kind: 'idle' });
    const floods = Promise.all([halfHeads.done, silent.done, idle.done]);
    const served = await serveMeanwhile(`http://127.0.0.1:${port}`, floods);
    const [halfHeadConnections, silentConnections, idleConnections] = await floods;
    const mostDescriptors = stopWatching();

    // The other client's requests all succeeded, at the latency of an unloaded proxy give or take a busy machine.
    expect(served.length).toBeGreaterThan(10);
    expect(served.filter((r) => r.status !== 200)).toEqual([]);
    expect(Math.max(...served.map((r) => r.ms))).toBeLessThan(marginMs);

    for (const connections of [halfHeadConnections, silentConnections, idleConnections]) {
      // The server closed every connection of the flood itself, none later than its timeout allows.
      expect(connections.filter((c) => c.closedAt === undefined)).toEqual([]);
      expect(Math.max(...lifetimes(connections))).toBeLessThan(headersTimeoutMs + idleTimeoutMs + marginMs);
      // Past its limit, a client's connections were closed at once, without a byte of answer.
      expect(held(connections).length).toBeLessThan(connections.length);
    }
    // A half-sent head the listener kept is answered 408 before its connection is closed (one
    // refused at once gets no byte, however late a busy machine closes it); a silent
    // connection gets no answer.
    const answered = halfHeadConnections.filter((c) => c.received !== '');
    expect(answered.length).toBeGreaterThan(0);
    for (const connection of answered) {
      expect(connection.received).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n[^]*x-breakwater-reason: request_timeout\r\n/);
    }
    expect(silentConnections.filter((c) => c.received !== '')).toEqual([]);
    // An idle keep-alive connection got its answer, then was closed after idleTimeout.
    for (const connection of held(idleConnections)) expect(connection.received).toMatch(/^HTTP\/1\.1 200 OK\r\n/);

    // The three floods together could hold at most three clients' worth of connections.
    expect(mostDescriptors).toBeLessThan(3 * perClient + processFds);
    expect(mostDescriptors).toBeLessThan(maxConnections + processFds);
    expect(await metric('breakwater_connections_rejected_total', 'listener="inbound",reason="per_client"')).toBeGreaterThan(0);
    expect(await metric('breakwater_connections_rejected_total', 'listener="inbound",reason="headers_timeout"')).toBeGreaterThan(0);
    expect(await metric('breakwater_connections_rejected_total', 'listener="inbound",reason="max_connections"')).toBe(0);
    // Once the flood is over, no connection of its is left open.
    await expect.poll(() => metric('breakwater_connections', 'listener="inbound"'), { timeout: 5000 }).toBe(0);
  });
});

describe('a flood past the listener’s maxConnections', () => {
  it('holds no more connections than the limit, refuses the rest unread, and serves again once the flood is closed', async () => {
    const port = proxy.ports.listeners.edge!;
    const stopWatching = watchDescriptors();

    const flood = startFlood({
      port,
      localAddress: '127.0.0.5',
      kind: 'half-head',
      concurrent: 2 * edgeMaxConnections,
      total: 2000,
      durationMs: 1000,
      giveUpMs: 5000,
      paceMs: 20,
    });
    await expect.poll(() => metric('breakwater_connections', 'listener="edge"')).toBe(edgeMaxConnections);
    const connections = await flood.done;
    const mostDescriptors = stopWatching();

    expect(mostDescriptors).toBeLessThan(edgeMaxConnections + processFds);
    expect(connections.filter((c) => c.closedAt === undefined)).toEqual([]);
    expect(Math.max(...lifetimes(connections))).toBeLessThan(headersTimeoutMs + marginMs);
    const refused = connections.filter((c) => !held(connections).includes(c));
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.filter((c) => c.received !== '')).toEqual([]);
    expect(await metric('breakwater_connections_rejected_total', 'listener="edge",reason="max_connections"')).toBeGreaterThan(0);

    // The flood's connections are gone, so a new client is served again.
    const response = await request(`http://127.0.0.1:${port}/after`);
    await response.body.dump();
    expect(response.statusCode).toBe(200);
  });
});
