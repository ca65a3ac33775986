// The admin page in a real browser, against a running Breakwater on the shipped example config:
// what an operator sees, and what the buttons do. The screenshot in docs/img/admin.png comes from
// here: `npm run docs:screenshot` writes it.

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, type Browser } from '../support/browser.ts';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../support/breakwater.ts';
import { echo, startUpstream, type UpstreamServer } from '../support/upstream-server.ts';

const root = new URL('../../', import.meta.url).pathname;

/** The example config `npm start` runs, on free ports, in front of a test upstream, its state in `stateDir`. */
async function exampleConfig(origin: string, stateDir: string): Promise<string> {
  const text = await readFile(join(root, 'config/breakwater.yaml'), 'utf8');
  return text
    .replace(/\b(127\.0\.0\.1|0\.0\.0\.0):(15001|15006|15020|15000)\b/g, '127.0.0.1:0')
    .replaceAll('http://127.0.0.1:18080', origin)
    .replace(/path: "\$\{TMPDIR:-\/tmp\}\/breakwater\/state\.db"/, `path: "${stateDir}/state.db"`);
}

let upstream: UpstreamServer;
let sidecar: RunningBreakwater;
let stateDir: string | undefined;
let browser: Browser;
let page: Page;
/** Every URL the page asked for: all must be the admin server's own. */
const requested: string[] = [];
const pageErrors: string[] = [];
/** Requests the upstream holds until the test lets them go. */
const held: (() => void)[] = [];

beforeAll(async () => {
  // As the demo service: /status/NNN answers NNN; /hold answers when the test says so.
  upstream = await startUpstream((req, res, body) => {
    const status = /^\/status\/(\d{3})$/.exec(req.url ?? '');
    if (status !== null) res.writeHead(Number(status[1])).end();
    else if (req.url === '/hold') held.push(() => echo(req, res, body));
    else echo(req, res, body);
  });
  stateDir = await mkdtemp(join(tmpdir(), 'admin-page-state-'));
  sidecar = await startBreakwater(await exampleConfig(upstream.origin, stateDir));
  browser = await launchBrowser();
  page = await browser.context.newPage();
  page.on('request', (request) => requested.push(request.url()));
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('console', (message) => {
    // The page asks once for the optional APIs this server may lack; Chromium logs their 404.
    const probe = /\/(endpoints|dead-letters)(\?|$)/.test(message.location().url) && message.text().includes('404');
    if (message.type() === 'error' && !probe) pageErrors.push(`${message.text()} (${message.location().url})`);
  });
  // Refreshed four times a second rather than every two, to keep the test short.
  await page.goto(`${sidecar.adminUrl}/?refresh=0.25`);
});

afterAll(async () => {
  for (const release of held.splice(0)) release();
  await browser?.close();
  await sidecar?.stop();
  await upstream?.close();
  if (stateDir !== undefined) await rm(stateDir, { recursive: true, force: true });
});

/** The row of a section's table whose first cell is `name`. */
function row(section: string, name: string, on: Page = page) {
  return on.locator(`#${section} tbody tr`).filter({ has: on.locator('td:first-child', { hasText: new RegExp(`^${name}$`) }) });
}

async function circuits(): Promise<{ name: string; state: string; mode: string }[]> {
  return (await (await fetch(`${sidecar.adminUrl}/circuits`)).json()) as { name: string; state: string; mode: string }[];
}

describe('the admin page', () => {
  it('shows the routes with their policies, the upstreams and their endpoints', async () => {
    await row('routes', 'demo-status').waitFor();

    const routes = await page.locator('#routes tbody td:first-child').allTextContents();
    expect(routes).toEqual(['demo-slow', 'demo-status', 'demo-charges', 'demo-orders', 'demo-chaos', 'demo', 'to-local-app']);
    expect(await row('routes', 'demo-status').locator('td').allTextContents()).toEqual([
      'demo-status',
      'outbound',
      'host demo, prefix /status, GET|HEAD',
      'demo',
      '2s',
      '3 attempts, 500ms each, on connect-failure, reset, timeout, 502, 503, 504',
      'upstream demo',
      'on circuit-open: static 200',
      '—',
      '—',
    ]);
    // Each endpoint with its state, from GET /endpoints.
    expect(await row('upstreams', 'demo').locator('td').nth(1).textContent()).toMatch(new RegExp(`^${upstream.origin} active · 0 in flight( · [0-9.]+ms)?$`));
    expect(await page.locator('#upstreams th').nth(1).textContent()).toBe('Endpoints');
  });

  it('loads nothing from anywhere but the admin server, and runs without errors', () => {
    expect(requested.length).toBeGreaterThan(0);
    expect(requested.filter((url) => !url.startsWith(`${sidecar.adminUrl}/`))).toEqual([]);
    expect(pageErrors).toEqual([]);
  });

  it('forces a breaker open with its button, and GET /circuits agrees', async () => {
    const demo = row('circuits', 'demo');
    await demo.locator('td.state', { hasText: /^closed$/ }).waitFor();

    // The operator forces the breaker open.
    await demo.getByRole('button', { name: 'Force open' }).click();

    await demo.locator('td.state', { hasText: /^forced-open$/ }).waitFor();
    expect(await page.getByRole('status').textContent()).toBe('Breaker demo is now forced-open (mode forced-open).');
    expect(await demo.getByRole('button', { name: 'Force open' }).getAttribute('aria-pressed')).toBe('true');
    expect(await circuits()).toContainEqual(expect.objectContaining({ name: 'demo', state: 'forced-open', mode: 'forced-open' }));

    // And hands it back to its own judgement.
    await demo.getByRole('button', { name: 'Auto' }).click();

    await demo.locator('td.state', { hasText: /^closed$/ }).waitFor();
    expect(await circuits()).toContainEqual(expect.objectContaining({ name: 'demo', state: 'closed', mode: 'auto' }));
  });

  it('follows changes made elsewhere without a reload: a breaker set by the API, a request in flight, a config reload', async () => {
    // Someone disables the breaker with curl.
    await fetch(`${sidecar.adminUrl}/circuits/demo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"state":"disabled"}' });
    await row('circuits', 'demo').locator('td.state', { hasText: /^disabled$/ }).waitFor();

    // A request waits on the upstream: the demo bulkhead shows it.
    const inFlight = request(`${sidecar.url()}/hold`, { headers: { host: 'demo' } });
    await row('bulkheads', 'demo').locator('td', { hasText: /^1 \/ 50$/ }).waitFor();

    // The config file changes and is reloaded, then a broken edit is refused.
    const config = await readFile(sidecar.configPath, 'utf8');
    await writeFile(sidecar.configPath, config.replace('timeout: 1s', 'timeout: 2s'));
    await fetch(`${sidecar.adminUrl}/reload`, { method: 'POST' });
    await writeFile(sidecar.configPath, config.replace('timeout: 1s', 'timeout: soon'));
    await fetch(`${sidecar.adminUrl}/reload`, { method: 'POST' });

    const reloads = page.locator('#reloads tbody tr');
    await reloads.nth(1).waitFor();
    expect(await reloads.locator('td:nth-child(2)').allTextContents()).toEqual(['failure', 'success']);
    expect(await reloads.first().locator('td').nth(2).textContent()).toContain('routes[0](demo-slow).timeout: must be a duration');
    // The reloaded route timeout is on the page too.
    await row('routes', 'demo-slow').locator('td', { hasText: /^2s$/ }).waitFor();

    held.shift()?.();
    expect((await inFlight).statusCode).toBe(200);
    await row('bulkheads', 'demo').locator('td', { hasText: /^0 \/ 50$/ }).waitFor();
    await fetch(`${sidecar.adminUrl}/circuits/demo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"state":"auto"}' });
  });

  it('marks an endpoint that outlier detection ejected', async () => {
    // A second Breakwater whose upstream has a healthy endpoint and one that resets every
    // connection it accepts.
    const resetting = await startUpstream((req) => req.socket.destroy());
    const broken = resetting.origin;
    const ejecting = await startBreakwater(`${ephemeralAddresses}
upstreams:
  payments:
    endpoints: ["${upstream.origin}", "${broken}"]
    outlierDetection: {consecutiveFailures: 1, baseEjectionTime: 5m}
routes:
  - name: pay
    match: {host: payments}
    upstream: payments
    timeout: 5s
    retry: {maxAttempts: 2, retryOn: [connect-failure, reset]}
`);
    const other = await browser.context.newPage();
    try {
      // Round robin sends one of the first two requests to the resetting endpoint: it is
      // ejected, and the retry lands on the healthy one.
      for (let i = 0; i < 2; i++) expect((await request(`${ejecting.url()}/`, { headers: { host: 'payments' } })).statusCode).toBe(200);
      await other.goto(`${ejecting.adminUrl}/?refresh=0.25`);

      const ejected = row('upstreams', 'payments', other).locator('li.ejected');
      await ejected.waitFor();
      expect(await ejected.textContent()).toMatch(new RegExp(`^${broken} ejected consecutive, until .+ · 0 in flight( · [0-9.]+ms)?$`));
      expect(await row('upstreams', 'payments', other).locator('li:not(.ejected)').textContent()).toMatch(new RegExp(`^${upstream.origin} active · 0 in flight`));
    } finally {
      await other.close();
      await ejecting.stop();
      await resetting.close();
    }
  });

  it('replays a dead letter from the page', async () => {
    const setCircuit = (state: string) =>
      fetch(`${sidecar.adminUrl}/circuits/demo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ state }) });
    const listed = async () => ((await (await fetch(`${sidecar.adminUrl}/dead-letters`)).json()) as { entries: { id: string }[] }).entries;
    // An outage, as the README tour makes one: the demo breaker forced open, and an order placed.
    await setCircuit('forced-open');
    const refused = await request(`${sidecar.url()}/orders`, { method: 'POST', headers: { host: 'demo' }, body: '{"sku":"tea"}' });
    await refused.body.dump();
    expect(refused.statusCode).toBe(503);
    await setCircuit('auto');

    // The page's "Dead letters" section shows it.
    const entry = page.locator('#dead-letters tbody tr').filter({ hasText: 'POST /orders' });
    await entry.waitFor();
    const [kept] = await listed();
    expect(await entry.locator('td').allTextContents()).toEqual([expect.any(String), 'demo-orders', 'POST /orders', 'circuit_open', '0', '', kept!.id, 'Replay']);

    // The upstream is back: replay it with its button.
    await entry.getByRole('button', { name: 'Replay' }).click();

    await page.getByRole('status', { name: '' }).filter({ hasText: `Dead letter ${kept!.id} replayed: success.` }).waitFor();
    await entry.waitFor({ state: 'detached' });
    expect(await listed()).toEqual([]);
    // The breaker starts afresh, so the counts the screenshot shows are its own requests'.
    await setCircuit('forced-open');
    await setCircuit('auto');
  });

  it('saves a screenshot', async () => {
    // Some traffic, so that the breaker and the reloads have something to show.
    for (let i = 0; i < 3; i++) await (await request(`${sidecar.url()}/status/503`, { headers: { host: 'demo' } })).body.dump();
    await row('circuits', 'demo').locator('td', { hasText: /^9$/ }).waitFor();

    // As an operator opens it.
    await page.goto(`${sidecar.adminUrl}/`);
    await row('circuits', 'demo').locator('td', { hasText: /^9$/ }).waitFor();
    const path = process.env.BREAKWATER_SCREENSHOT ?? join(tmpdir(), 'admin.png');
    const png = await page.screenshot({ path, fullPage: true });

    expect(png.subarray(1, 4).toString()).toBe('PNG');
    if (process.env.BREAKWATER_SCREENSHOT === undefined) await rm(path);
  });
});
