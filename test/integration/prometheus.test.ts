// A real Prometheus server (Debian's `prometheus` package) scrapes a running Breakwater every
// second under traffic, with the shipped alert rules loaded. What users will query, they can:
// a route's request rate, a breaker's state, the dashboard's panels, and the rules evaluate
// without error against real series.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../support/breakwater.ts';
import { startUpstream, type UpstreamServer } from '../support/upstream-server.ts';

const rulesFile = new URL('../../deploy/prometheus/breakwater-rules.yaml', import.meta.url).pathname;
const dashboardFile = new URL('../../deploy/grafana/breakwater-dashboard.json', import.meta.url).pathname;

/** The traffic loop stops by itself after this long, whatever happens to the test. */
const trafficLimitMs = 40_000;
const pauseBetweenRequestsMs = 20;
const routeTimeoutMs = 2000;
const poll = { timeout: 20_000, interval: 250 };

interface Sample {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}

interface RunningPrometheus {
  readonly process: ChildProcess;
  readonly url: string;
}

/** Starts Prometheus on 127.0.0.1 with an ephemeral port and resolves once it listens. */
function startPrometheus(dir: string): Promise<RunningPrometheus> {
  const child = spawn(
    'prometheus',
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, '--web.listen-address=127.0.0.1:0'],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  return new Promise((resolve, reject) => {
    const onOutput = (chunk: Buffer): void => {
      log += chunk.toString();
      // Prometheus logs the port it bound: msg="Listening on" address=127.0.0.1:PORT
      const port = /msg="Listening on" address=127\.0\.0\.1:(\d+)/.exec(log)?.[1];
      if (port !== undefined) resolve({ process: child, url: `http://127.0.0.1:${port}` });
    };
    child.stdout.on('data', onOutput);
    child.stderr.on('data', onOutput);
    child.on('error', (error) => reject(new Error(`prometheus could not start (${error.message}): run bash scripts/install-system-tools.sh test`)));
    child.on('exit', (code) => reject(new Error(`prometheus exited with ${code}:\n${log}`)));
  });
}

async function stopPrometheus(prometheus: RunningPrometheus): Promise<void> {
  const { process: child } = prometheus;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

describe('a real Prometheus scraping Breakwater', () => {
  let upstream: UpstreamServer;
  let proxy: RunningBreakwater;
  let prometheus: RunningPrometheus;
  let dir: string;
  let stopTraffic = false;
  let traffic: Promise<void>;
  let trafficStartedAt = 0;
  let requestsSent = 0;

  beforeAll(async () => {
    upstream = await startUpstream();
    proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  orders:
    endpoints: ["${upstream.origin}"]
    bulkhead: {maxConcurrent: 10}
    circuitBreaker: {minRequests: 20}
routes:
  - name: orders
    match: {pathPrefix: /orders}
    upstream: orders
    timeout: ${routeTimeoutMs}ms
    retry: {maxAttempts: 2}
`);

    dir = await mkdtemp(join(tmpdir(), 'breakwater-prometheus-'));
    const telemetry = new URL(proxy.telemetryUrl).host;
    await writeFile(
      join(dir, 'prometheus.yml'),
      `global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - ${rulesFile}
scrape_configs:
  - job_name: breakwater
    static_configs:
      - targets: ["${telemetry}"]
`,
    );
    prometheus = await startPrometheus(dir);

    // Steady traffic on route orders until the tests end, bounded in time.
    trafficStartedAt = Date.now();
    traffic = (async () => {
      while (!stopTraffic && Date.now() - trafficStartedAt < trafficLimitMs) {
        const response = await request(`${proxy.url()}/orders/${requestsSent}`);
        await response.body.dump();
        requestsSent += 1;
        await sleep(pauseBetweenRequestsMs);
      }
    })();
  });

  afterAll(async () => {
    stopTraffic = true;
    await traffic;
    if (prometheus !== undefined) await stopPrometheus(prometheus);
    await proxy?.stop();
    await upstream?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  async function query(expr: string): Promise<Sample[]> {
    const response = await request(`${prometheus.url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await response.body.json()) as { status: string; error?: string; data?: { result: Sample[] } };
    if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`);
    return body.data!.result;
  }

  /** The value of an expression that yields one series, or undefined while it yields none. */
  async function single(expr: string): Promise<number | undefined> {
    const result = await query(expr);
    if (result.length > 1) throw new Error(`${expr} yields ${result.length} series`);
    return result[0] === undefined ? undefined : Number(result[0].value[1]);
  }

  it('scrapes the telemetry port', async () => {
    await expect.poll(() => single('up{job="breakwater"}'), poll).toBe(1);
  });

  it('returns the request rate of a route, close to the rate sent', async () => {
    const series = 'breakwater_requests_total{job="breakwater", route="orders", code="200"}';
    // rate() divides by the whole window: wait until the series has a sample every second of it.
    await expect.poll(() => single(`count_over_time(${series}[5s])`), poll).toBeGreaterThanOrEqual(5);
    const rateQuery = `sum by (route) (rate(${series}[5s]))`;

    const measured = (await single(rateQuery))!;
    const sentPerSecond = requestsSent / ((Date.now() - trafficStartedAt) / 1000);
    // Prometheus extrapolates over the window and scrapes once a second; a factor of two covers both.
    expect(measured).toBeGreaterThan(sentPerSecond / 2);
    expect(measured).toBeLessThan(sentPerSecond * 2);
  });

  it('returns the deadline left when attempts start, close to the route timeout', async () => {
    const meanRemaining =
      'sum(rate(breakwater_upstream_attempt_deadline_remaining_seconds_sum{route="orders"}[5s])) / sum(rate(breakwater_upstream_attempt_deadline_remaining_seconds_count{route="orders"}[5s]))';
    await expect.poll(() => single(meanRemaining), poll).toBeGreaterThan(0);

    // A first attempt starts a fraction of a millisecond after the request arrives.
    const seconds = (await single(meanRemaining))!;
    expect(seconds).toBeGreaterThan((routeTimeoutMs - 100) / 1000);
    expect(seconds).toBeLessThanOrEqual(routeTimeoutMs / 1000);
  });

  it('returns the state of a breaker an operator forced open', async () => {
    const state = (name: string): Promise<number | undefined> =>
      single(`breakwater_circuit_breaker_state{job="breakwater", breaker="orders", state="${name}"}`);
    await expect.poll(() => state('closed'), poll).toBe(1);

    const response = await request(`${proxy.adminUrl}/circuits/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ state: 'forced-open' }),
    });
    await response.body.dump();
    expect(response.statusCode).toBe(200);

    await expect.poll(() => state('forced-open'), poll).toBe(1);
    expect(await state('closed')).toBe(0);
    // The calls it refuses show up as well.
    await expect
      .poll(() => single('sum(rate(breakwater_circuit_breaker_rejected_total{job="breakwater", breaker="orders"}[5s]))'), poll)
      .toBeGreaterThan(0);
  });

  it('runs every dashboard query, and the breaker panel shows the forced-open state', async () => {
    const dashboard = JSON.parse(await readFile(dashboardFile, 'utf8')) as {
      panels: { title: string; targets?: { expr: string }[] }[];
    };
    // Grafana's variables, as "All" and a short rate interval.
    const resolve = (expr: string): string => expr.replaceAll('$__rate_interval', '5s').replace(/\$(job|route|upstream)\b/g, '.*');
    for (const panel of dashboard.panels) {
      for (const target of panel.targets ?? []) {
        await expect(query(resolve(target.expr)), panel.title).resolves.toBeInstanceOf(Array);
      }
    }

    const breakerPanel = dashboard.panels.find((panel) => panel.title === 'Breaker state over time')!;
    // 3 is forced-open in the panel's value mapping.
    await expect.poll(() => single(resolve(breakerPanel.targets![0]!.expr)), poll).toBe(3);
  });

  it('evaluates every shipped alert rule without error', async () => {
    interface Rule {
      name: string;
      health: string;
      lastError?: string;
    }
    const rules = async (): Promise<Rule[]> => {
      const body = (await (await request(`${prometheus.url}/api/v1/rules`)).body.json()) as { data: { groups: { rules: Rule[] }[] } };
      return body.data.groups.flatMap((group) => group.rules);
    };
    const shipped = await readFile(rulesFile, 'utf8');
    const alertCount = [...shipped.matchAll(/^\s+- alert: /gm)].length;

    await expect.poll(async () => (await rules()).filter((rule) => rule.health === 'ok').length, poll).toBe(alertCount);
    expect((await rules()).filter((rule) => rule.lastError)).toEqual([]);
  });
});
