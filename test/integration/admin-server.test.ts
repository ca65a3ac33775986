import { connect } from 'node:net';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { startAdminServer, type AdminSource, type CircuitMode } from '../../src/admin/server.ts';
import type { RunningServer } from '../../src/telemetry/http-server.ts';

const running: RunningServer[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});

const effectiveConfig = {
  listeners: [{ name: 'outbound', address: { host: '127.0.0.1', port: 15001 } }],
  upstreams: new Map([['payments', { endpoints: ['http://payments:8080'], connectTimeoutMs: 250 }]]),
};
const routeRows = [{ name: 'charge', listener: 'outbound', upstream: 'payments', timeoutMs: 2000 }];
const bulkheadRows = [{ upstream: 'payments', inFlight: 3, queued: 1, maxConcurrent: 50, maxQueued: 20 }];
const reloadRows = [{ time: '2026-11-24T10:00:00.000Z', result: 'failure', problems: ['breakwater.yaml:3:12 routes[0](charge).timeout: must be a duration'] }];

/** Breakers as the registry shows them: one shared by an upstream, one of a route. */
function circuitRows(): { name: string; upstream: string; state: string; mode: CircuitMode }[] {
  return [
    { name: 'payments', upstream: 'payments', state: 'open', mode: 'auto' },
    { name: 'route:charge', upstream: 'payments', state: 'closed', mode: 'auto' },
  ];
}

interface Started {
  base: string;
  server: RunningServer;
  reloads: () => number;
  circuitChanges: [string, CircuitMode][];
}

async function start(overrides: Partial<AdminSource> = {}): Promise<Started> {
  let reloads = 0;
  const circuits = circuitRows();
  const circuitChanges: [string, CircuitMode][] = [];
  const server = await startAdminServer({
    address: { host: '127.0.0.1', port: 0 },
    admin: {
      config: () => effectiveConfig,
      routes: () => routeRows,
      circuits: () => circuits,
      endpoints: () => [],
      stores: () => [{ name: 'default', kind: 'memory', reachable: true }],
      bulkheads: () => bulkheadRows,
      reloads: () => reloadRows,
      setCircuit: (name, state) => {
        const circuit = circuits.find((row) => row.name === name);
        if (circuit === undefined) return false;
        circuitChanges.push([name, state]);
        circuit.mode = state;
        circuit.state = state === 'auto' ? 'closed' : state;
        return true;
      },
      reload: async () => {
        reloads++;
        return { ok: true, changed: true };
      },
      ...overrides,
    },
  });
  running.push(server);
  return { base: `http://127.0.0.1:${server.port}`, server, reloads: () => reloads, circuitChanges };
}

function postJson(url: string, body: string, contentType = 'application/json'): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': contentType }, body });
}

describe('admin server', () => {
  it('serves the effective config as JSON, tables kept in Maps included', async () => {
    const { base } = await start();

    const response = await fetch(`${base}/config`);

    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(await response.json()).toEqual({
      listeners: effectiveConfig.listeners,
      upstreams: { payments: { endpoints: ['http://payments:8080'], connectTimeoutMs: 250 } },
    });
  });

  it('serves the route table as JSON', async () => {
    const { base } = await start();

    const response = await fetch(`${base}/routes`);

    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(await response.json()).toEqual(routeRows);
  });

  it('reloads on POST /reload and reports success', async () => {
    const { base, reloads } = await start();

    const response = await fetch(`${base}/reload`, { method: 'POST' });

    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(await response.json()).toEqual({ result: 'success' });
    expect(reloads()).toBe(1);
  });

  it('answers "unchanged" when the file is the config already running', async () => {
    const { base } = await start({ reload: async () => ({ ok: true, changed: false }) });

    const response = await fetch(`${base}/reload`, { method: 'POST' });

    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ result: 'unchanged' });
  });

  it('answers 400 with the problems when the reload is refused', async () => {
    const problems = ['config/breakwater.yaml:12:5 routes[0].timeout: expected a duration like 250ms or 2s'];
    const { base } = await start({ reload: async () => ({ ok: false, problems }) });

    const response = await fetch(`${base}/reload`, { method: 'POST' });

    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ result: 'failure', problems });
  });

  it('answers 500 with a JSON error when the source fails', async () => {
    const { base } = await start({
      reload: () => Promise.reject(new Error('config file unreadable')),
      routes: () => {
        throw new Error('route table missing');
      },
    });

    const reload = await fetch(`${base}/reload`, { method: 'POST' });
    const routes = await fetch(`${base}/routes`);

    expect(reload.status).toBe(500);
    expect(reload.headers.get('content-type')).toBe('application/json');
    expect(JSON.stringify(await reload.json())).toContain('config file unreadable');
    expect(routes.status).toBe(500);
    expect(JSON.stringify(await routes.json())).toContain('route table missing');
  });

  it('answers 404 in JSON for unknown paths', async () => {
    const { base } = await start();

    for (const path of ['/index.html', '/page/', '/page/missing.js', '/metrics', '/config/extra', '/circuit']) {
      const response = await fetch(`${base}${path}`);
      expect(response.status, path).toBe(404);
      expect(response.headers.get('content-type')).toBe('application/json');
      expect(await response.json()).toHaveProperty('error.message');
    }
  });

  it('answers 405 in JSON with Allow for the wrong method, and does not reload on GET', async () => {
    const { base, reloads } = await start();

    const getReload = await fetch(`${base}/reload`);
    const postConfig = await fetch(`${base}/config`, { method: 'POST' });

    expect(getReload.status).toBe(405);
    expect(getReload.headers.get('allow')).toBe('POST');
    expect(getReload.headers.get('content-type')).toBe('application/json');
    expect(await getReload.json()).toHaveProperty('error.message');
    expect(postConfig.status).toBe(405);
    expect(postConfig.headers.get('allow')).toBe('GET, HEAD');
    expect(reloads()).toBe(0);
  });

  it('serves the admin page at / with its script and style, and lets no other site frame or extend it', async () => {
    const { base } = await start();

    const page = await fetch(`${base}/`);
    const script = await fetch(`${base}/page/app.js`);
    const style = await fetch(`${base}/page/style.css`);

    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const html = await page.text();
    expect(html).toContain('<title>Breakwater admin</title>');
    expect(html).toContain('<script type="module" src="/page/app.js"></script>');
    expect(html).toContain('<link rel="stylesheet" href="/page/style.css">');
    // Its own origin only: scripts, styles and requests; never framed by another page.
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'; script-src 'self'; style-src 'self'");
    expect(page.headers.get('content-security-policy')).toContain("connect-src 'self'");
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('cache-control')).toBe('no-store');
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(await script.text()).toContain("post(`/circuits/${encodeURIComponent(name)}`, { state: mode })");
    expect(style.status).toBe(200);
    expect(style.headers.get('content-type')).toBe('text/css; charset=utf-8');
    expect((await fetch(`${base}/`, { method: 'HEAD' })).status).toBe(200);
  });

  it('serves bulkhead occupancy and the last reloads as JSON', async () => {
    const { base } = await start();

    const bulkheads = await fetch(`${base}/bulkheads`);
    const reloads = await fetch(`${base}/reloads`);

    expect(bulkheads.headers.get('content-type')).toBe('application/json');
    expect(await bulkheads.json()).toEqual(bulkheadRows);
    expect(reloads.headers.get('content-type')).toBe('application/json');
    expect(await reloads.json()).toEqual(reloadRows);
  });

  it('serves every circuit breaker as JSON', async () => {
    const { base } = await start();

    const response = await fetch(`${base}/circuits`);

    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(await response.json()).toEqual(circuitRows());
  });

  it('forces a breaker open on POST /circuits/NAME and answers with its new row', async () => {
    const { base, circuitChanges } = await start();

    const response = await postJson(`${base}/circuits/payments`, '{"state": "forced-open"}');

    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(await response.json()).toEqual({ name: 'payments', upstream: 'payments', state: 'forced-open', mode: 'forced-open' });
    expect(circuitChanges).toEqual([['payments', 'forced-open']]);
    expect(await (await fetch(`${base}/circuits`)).json()).toContainEqual({ name: 'payments', upstream: 'payments', state: 'forced-open', mode: 'forced-open' });
  });

  it('accepts every state, a JSON content type with parameters, and a percent-encoded route breaker name', async () => {
    const { base, circuitChanges } = await start();

    const answers = [
      await postJson(`${base}/circuits/route%3Acharge`, '{"state":"disabled"}', 'Application/JSON; charset=utf-8'),
      await postJson(`${base}/circuits/route:charge`, '{"state":"auto"}'),
      await postJson(`${base}/circuits/payments?verbose=1`, '{"state":"forced-open"}'),
    ];

    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200]);
    expect(circuitChanges).toEqual([
      ['route:charge', 'disabled'],
      ['route:charge', 'auto'],
      ['payments', 'forced-open'],
    ]);
  });

  it('still confirms the change when the source has no row to show for it', async () => {
    const { base } = await start({ circuits: () => ({ unexpected: 'shape' }), setCircuit: () => true });

    const response = await postJson(`${base}/circuits/payments`, '{"state": "disabled"}');

    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ name: 'payments', mode: 'disabled' });
  });

  it('answers 404 for a breaker that does not exist, and changes nothing', async () => {
    const { base, circuitChanges } = await start();

    for (const path of ['/circuits/inventory', '/circuits/', '/circuits/payments/extra', '/circuits/%E0%A4%A']) {
      const response = await postJson(`${base}${path}`, '{"state": "forced-open"}');
      expect(response.status, path).toBe(404);
      expect(await response.json()).toHaveProperty('error.message');
    }
    expect(circuitChanges).toEqual([]);
  });

  it('answers 400 for a body that is not {"state": S} with a known S', async () => {
    const { base, circuitChanges } = await start();
    const bodies = ['', 'forced-open', '"forced-open"', 'null', '{}', '{"state": "open"}', '{"state": 1}', `{"state": "auto", "pad": "${'x'.repeat(2_000)}"}`];

    for (const body of bodies) {
      const response = await postJson(`${base}/circuits/payments`, body);
      expect(response.status, body).toBe(400);
      expect(JSON.stringify(await response.json())).toContain('forced-open, disabled, auto');
    }
    expect(circuitChanges).toEqual([]);
  });

  it('answers 415 unless the body is declared as application/json', async () => {
    const { base, circuitChanges } = await start();

    const asForm = await postJson(`${base}/circuits/payments`, 'state=forced-open', 'application/x-www-form-urlencoded');
    const asText = await fetch(`${base}/circuits/payments`, { method: 'POST', body: '{"state": "forced-open"}' });
    // Bytes go out with no content type at all.
    const undeclared = await fetch(`${base}/circuits/payments`, { method: 'POST', body: new TextEncoder().encode('{"state": "forced-open"}') });

    expect(asForm.status).toBe(415);
    expect(asText.status).toBe(415);
    expect(undeclared.status).toBe(415);
    expect(await asText.json()).toHaveProperty('error.message');
    expect(circuitChanges).toEqual([]);
  });

  it('answers 405 with Allow: POST for other methods on /circuits/NAME', async () => {
    const { base } = await start();

    const response = await fetch(`${base}/circuits/payments`);

    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('POST');
    expect((await fetch(`${base}/circuits`, { method: 'POST' })).status).toBe(405);
  });

  it('binds exactly the configured address', async () => {
    const { server } = await start();

    // Listening on 127.0.0.1 only: the same port on another loopback address is not served.
    await expect(fetch(`http://127.0.0.2:${server.port}/config`)).rejects.toThrow();
  });

  it('closes promptly with an idle keep-alive connection open', async () => {
    const { base, server } = await start();
    expect((await fetch(`${base}/routes`)).status).toBe(200);

    await server.close();
    running.splice(running.indexOf(server), 1);

    await expect(fetch(`${base}/routes`)).rejects.toThrow();
  });

  it('closes promptly with a connection open that has sent no request yet, as a browser opens ahead of time', async () => {
    const { server } = await start();
    const socket = connect(server.port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    const closed = new Promise((resolve) => socket.once('close', resolve));

    await server.close();
    running.splice(running.indexOf(server), 1);

    await closed;
    // Without closing such connections, the server would wait for their headers timeout (a minute).
  }, 10_000);

  describe('refusing what a web page could send', () => {
    /** A state-changing request with the headers a browser would add. */
    async function send(url: string, method: string, headers: Record<string, string>, body?: string) {
      const response = await request(url, { method: method as 'POST', headers, body });
      return { status: response.statusCode, body: (await response.body.json()) as { error?: { message: string } } };
    }

    it.each([
      ['POST /reload', 'POST', '/reload', undefined],
      ['POST /circuits/NAME', 'POST', '/circuits/payments', '{"state": "forced-open"}'],
    ])('refuses %s from another origin with 403 and changes nothing', async (_name, method, path, body) => {
      const { base, server, reloads, circuitChanges } = await start();
      const json: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };

      const foreign = await send(`${base}${path}`, method, { origin: 'http://evil.example', ...json }, body);
      // DNS rebinding: a page's own name made to point at the loopback address looks same-origin.
      const rebound = await send(`${base}${path}`, method, { origin: `http://evil.example:${server.port}`, host: `evil.example:${server.port}`, ...json }, body);

      expect(foreign.status).toBe(403);
      expect(foreign.body.error?.message).toContain('http://evil.example');
      expect(rebound.status).toBe(403);
      expect(reloads()).toBe(0);
      expect(circuitChanges).toEqual([]);
    });

    it("accepts the admin server's own origin, by address or localhost, and requests with no Origin", async () => {
      const { base, server, reloads } = await start();

      expect((await send(`${base}/reload`, 'POST', { origin: base })).status).toBe(200);
      expect((await send(`${base}/reload`, 'POST', { origin: `http://localhost:${server.port}`, host: `localhost:${server.port}` })).status).toBe(200);
      // curl and scripts send no Origin.
      expect((await send(`${base}/reload`, 'POST', {})).status).toBe(200);
      expect(reloads()).toBe(3);
    });

    // Every path, known or not, and every method that changes state: the guard stands before
    // the endpoints, so one added later (dead-letter replay, say) is covered without a change.
    const everyChangingRequest: [method: string, path: string][] = [
      ['POST', '/reload'],
      ['POST', '/circuits/payments'],
      ['POST', '/'],
      ['POST', '/page/app.js'],
      ['POST', '/dead-letters/1234/replay'],
      ['POST', '/dead-letters/replay'],
      ['DELETE', '/dead-letters/1234'],
      ['PUT', '/config'],
      ['PATCH', '/circuits/payments'],
      ['DELETE', '/circuits/payments'],
    ];

    it.each(everyChangingRequest)('refuses %s %s from another origin with 403', async (method, path) => {
      const { base, reloads, circuitChanges } = await start();

      const answer = await send(`${base}${path}`, method, { origin: 'http://evil.example', 'content-type': 'application/json' }, '{"state": "forced-open"}');

      expect(answer.status).toBe(403);
      expect(answer.body.error?.message).toContain('http://evil.example');
      expect(reloads()).toBe(0);
      expect(circuitChanges).toEqual([]);
    });

    it.each(everyChangingRequest)('refuses %s %s with a body that is not JSON with 415', async (method, path) => {
      const { base, reloads, circuitChanges } = await start();

      const form = await send(`${base}${path}`, method, { 'content-type': 'application/x-www-form-urlencoded' }, 'state=forced-open');
      const plain = await send(`${base}${path}`, method, { 'content-type': 'text/plain' }, '{"state": "forced-open"}');

      expect(form.status).toBe(415);
      expect(plain.status).toBe(415);
      expect(form.body.error?.message).toBe('a request body must be application/json');
      expect(reloads()).toBe(0);
      expect(circuitChanges).toEqual([]);
    });

    it("accepts what the admin page sends: a JSON body from the admin server's own origin", async () => {
      const { base, circuitChanges } = await start();

      const answer = await send(`${base}/circuits/payments`, 'POST', { origin: base, 'content-type': 'application/json' }, '{"state":"forced-open"}');

      expect(answer.status).toBe(200);
      expect(circuitChanges).toEqual([['payments', 'forced-open']]);
    });

    it('refuses a body that is not JSON with 415 on every state-changing endpoint', async () => {
      const { base, reloads, circuitChanges } = await start();

      const reload = await send(`${base}/reload`, 'POST', { 'content-type': 'text/plain' }, 'please');
      const circuit = await send(`${base}/circuits/payments`, 'POST', { 'content-type': 'application/x-www-form-urlencoded' }, 'state=forced-open');

      expect(reload.status).toBe(415);
      expect(circuit.status).toBe(415);
      expect(reloads()).toBe(0);
      expect(circuitChanges).toEqual([]);
    });
  });
});
