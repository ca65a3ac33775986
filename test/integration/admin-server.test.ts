import { afterEach, describe, expect, it } from 'vitest';
import { startAdminServer, type AdminSource } from '../../src/admin/server.ts';
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

async function start(overrides: Partial<AdminSource> = {}): Promise<{ base: string; server: RunningServer; reloads: () => number }> {
  let reloads = 0;
  const server = await startAdminServer({
    address: { host: '127.0.0.1', port: 0 },
    admin: {
      config: () => effectiveConfig,
      routes: () => routeRows,
      reload: async () => {
        reloads++;
        return { ok: true };
      },
      ...overrides,
    },
  });
  running.push(server);
  return { base: `http://127.0.0.1:${server.port}`, server, reloads: () => reloads };
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

  it('answers 400 with the problems when the reload is refused', async () => {
    const problems = ['config/breakwater.yaml:12:5 routes[0].timeout: expected a duration like 250ms or 2s'];
    const { base } = await start({ reload: async () => ({ ok: false, problems }) });

    const response = await fetch(`${base}/reload`, { method: 'POST', body: '{}' });

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

    for (const path of ['/', '/metrics', '/config/extra', '/circuits']) {
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
});
