// The service's health reaching kubelet through the telemetry port: /app-health/NAME/KIND
// calls the service over loopback and answers with what it found, while Breakwater's own
// /readyz keeps describing Breakwater alone.

import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startBreakwater, type RunningBreakwater } from '../support/breakwater.ts';
import { startUpstream, type UpstreamServer } from '../support/upstream-server.ts';

const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function service(status = 200): Promise<UpstreamServer & { setStatus(next: number): void }> {
  let current = status;
  const upstream = await startUpstream((_req, res) => {
    res.writeHead(current, { 'content-type': 'text/plain' });
    res.end(current < 400 ? 'fine\n' : 'not yet\n');
  });
  cleanups.push(() => upstream.close());
  return Object.assign(upstream, { setStatus: (next: number) => void (current = next) });
}

/** A port nothing listens on: bound by the system, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function breakwaterProbing(probes: string): Promise<RunningBreakwater> {
  const running = await startBreakwater(`
listeners:
  - {name: outbound, address: 127.0.0.1:0}
  - {name: inbound, address: 127.0.0.1:0}
admin: {address: 127.0.0.1:0}
telemetry:
  address: 127.0.0.1:0
  appProbes:
${probes}
`);
  cleanups.push(() => running.stop());
  return running;
}

describe('app probes on the telemetry port', () => {
  it("passes the service's status through, and fails while the service is down as /readyz stays 200", async () => {
    const app = await service(200);
    const bw = await breakwaterProbing(`    app:
      readyz: {port: ${app.port}, path: /ready?full=1}
      livez: {port: ${app.port}, path: /live}`);

    const ready = await fetch(`${bw.telemetryUrl}/app-health/app/readyz`);
    expect(ready.status).toBe(200);
    expect(app.requests.at(-1)?.url).toBe('/ready?full=1');
    expect((await fetch(`${bw.telemetryUrl}/app-health/app/livez`)).status).toBe(200);
    expect(app.requests.at(-1)?.url).toBe('/live');

    // The service says it is not ready: kubelet sees its status.
    app.setStatus(503);
    expect((await fetch(`${bw.telemetryUrl}/app-health/app/readyz`)).status).toBe(503);
    app.setStatus(500);
    expect((await fetch(`${bw.telemetryUrl}/app-health/app/readyz`)).status).toBe(500);

    // The service is gone: the app probe fails, Breakwater's own readiness does not.
    await app.close();
    const down = await fetch(`${bw.telemetryUrl}/app-health/app/readyz`);
    expect(down.status).toBe(503);
    expect(await down.text()).toMatch(/connection refused/);
    expect((await fetch(`${bw.telemetryUrl}/readyz`)).status).toBe(200);
  });

  it('passes kubelet\'s User-Agent on, so the service can tell probes from traffic', async () => {
    const app = await service(200);
    const bw = await breakwaterProbing(`    app: {startupz: {port: ${app.port}}}`);

    await fetch(`${bw.telemetryUrl}/app-health/app/startupz`, { headers: { 'user-agent': 'kube-probe/1.31' } });

    expect(app.requests.at(-1)).toMatchObject({ url: '/', headers: { 'user-agent': 'kube-probe/1.31' } });
  });

  it('answers 503 at the probe timeout when the service hangs, while the rest of the telemetry port keeps answering', async () => {
    let held = 0;
    const hanging: Server = createServer(() => {
      held += 1; // never answers
    });
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => {
      hanging.closeAllConnections();
      await new Promise<void>((resolve) => hanging.close(() => resolve()));
    });
    const port = (hanging.address() as AddressInfo).port;
    const bw = await breakwaterProbing(`    app: {readyz: {port: ${port}, timeout: 400ms}}`);

    const started = performance.now();
    const probes = Array.from({ length: 5 }, () => fetch(`${bw.telemetryUrl}/app-health/app/readyz`));
    // While the probes wait on the service, Breakwater's own endpoints answer.
    const readyz = await fetch(`${bw.telemetryUrl}/readyz`);
    const readyzAfter = performance.now() - started;
    const metrics = await fetch(`${bw.telemetryUrl}/metrics`);
    const answers = await Promise.all(probes);
    const probeAfter = performance.now() - started;

    expect(readyz.status).toBe(200);
    expect(metrics.status).toBe(200);
    expect(readyzAfter).toBeLessThan(probeAfter);
    for (const answer of answers) {
      expect(answer.status).toBe(503);
      expect(await answer.text()).toMatch(/no answer within 400 ms/);
    }
    expect(probeAfter).toBeGreaterThanOrEqual(400);
    // Five probes at once made one call: a slow service does not get a pile of connections.
    expect(held).toBe(1);
  });

  it('answers 404 for a probe that is not configured and 405 for other methods', async () => {
    const port = await closedPort();
    const bw = await breakwaterProbing(`    app: {readyz: {port: ${port}}}`);

    expect((await fetch(`${bw.telemetryUrl}/app-health/app/livez`)).status).toBe(404);
    expect((await fetch(`${bw.telemetryUrl}/app-health/other/readyz`)).status).toBe(404);
    expect((await fetch(`${bw.telemetryUrl}/app-health/app/readyz/extra`)).status).toBe(404);
    expect((await fetch(`${bw.telemetryUrl}/app-health/app/readyz`, { method: 'POST' })).status).toBe(405);
  });

  it('follows a config reload: a probe added to the file is served without a restart', async () => {
    const app = await service(200);
    const bw = await breakwaterProbing(`    app: {readyz: {port: ${app.port}}}`);
    expect((await fetch(`${bw.telemetryUrl}/app-health/app/livez`)).status).toBe(404);

    await writeFile(
      bw.configPath,
      `
listeners:
  - {name: outbound, address: 127.0.0.1:0}
  - {name: inbound, address: 127.0.0.1:0}
admin: {address: 127.0.0.1:0}
telemetry:
  address: 127.0.0.1:0
  appProbes:
    app: {readyz: {port: ${app.port}}, livez: {port: ${app.port}, path: /live}}
`,
    );
    expect(await bw.breakwater.reload()).toMatchObject({ ok: true });

    expect((await fetch(`${bw.telemetryUrl}/app-health/app/livez`)).status).toBe(200);
    expect(app.requests.at(-1)?.url).toBe('/live');
  });
});
