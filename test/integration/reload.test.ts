import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configMapVolume, type ConfigMapVolume } from '../support/configmap.ts';
import { spawnBreakwater, type BreakwaterProcess } from '../support/process.ts';
import { startUpstream, type UpstreamServer } from '../support/upstream-server.ts';

function configFor(upstream: UpstreamServer, timeout = '5s'): string {
  return `
listeners: [{name: outbound, address: 127.0.0.1:0}]
telemetry: {address: 127.0.0.1:0}
admin: {address: 127.0.0.1:0}
upstreams:
  app: {endpoints: ["${upstream.origin}"]}
routes:
  - {name: app, match: {pathPrefix: /}, upstream: app, timeout: ${timeout}}
`;
}

function answering(name: string, delayMs = 0) {
  return startUpstream((_req, res) => {
    setTimeout(() => res.end(name), delayMs);
  });
}

async function metric(proxy: BreakwaterProcess, name: string): Promise<number> {
  const text = await (await request(`http://127.0.0.1:${proxy.ports.telemetry}/metrics`)).body.text();
  const line = text.split('\n').find((candidate) => candidate.startsWith(name));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('hot reload', () => {
  let blue: UpstreamServer;
  let green: UpstreamServer;
  let volume: ConfigMapVolume;
  let proxy: BreakwaterProcess;

  beforeAll(async () => {
    blue = await answering('blue');
    green = await answering('green');
    volume = await configMapVolume(configFor(blue));
    proxy = await spawnBreakwater('', { configPath: volume.file });
  });

  afterAll(async () => {
    await proxy.kill();
    await volume.remove();
    await Promise.all([blue.close(), green.close()]);
  });

  async function answer(): Promise<string> {
    return (await request(`${proxy.url()}/`)).body.text();
  }

  it('follows a ConfigMap update, a file write, SIGHUP and POST /reload, 20 times under steady load, failing no request', async () => {
    // Steady load: four clients in a loop until the reloads are done (bounded by a request cap).
    const agent = new Agent({ connections: 4 });
    let stop = false;
    let sent = 0;
    const failures: string[] = [];
    const client = async () => {
      while (!stop && sent < 200_000) {
        sent += 1;
        try {
          const response = await request(`${proxy.url()}/load`, { dispatcher: agent });
          const text = await response.body.text();
          if (response.statusCode !== 200 || (text !== 'blue' && text !== 'green')) failures.push(`${response.statusCode} ${text}`);
        } catch (error) {
          failures.push(String(error));
        }
      }
    };
    const clients = [client(), client(), client(), client()];

    const triggers = ['configmap', 'file-write', 'sighup', 'admin'] as const;
    for (let i = 0; i < 20; i++) {
      const target = i % 2 === 0 ? green : blue;
      const name = target === green ? 'green' : 'blue';
      const trigger = triggers[i % triggers.length]!;
      const content = configFor(target);
      if (trigger === 'configmap') {
        await volume.update(content);
      } else {
        // Written straight into the current data folder: an in-place edit of the file.
        await writeFile(volume.file, content);
        if (trigger === 'sighup') proxy.child.kill('SIGHUP');
        if (trigger === 'admin') {
          const response = await request(`http://127.0.0.1:${proxy.ports.admin}/reload`, { method: 'POST' });
          expect(response.statusCode).toBe(200);
          await response.body.dump();
        }
      }
      await expect.poll(answer, { timeout: 15_000, interval: 20 }).toBe(name);
    }

    stop = true;
    await Promise.all(clients);
    await agent.close();
    expect(sent).toBeGreaterThan(100);
    expect(failures).toEqual([]);
    expect(await metric(proxy, 'breakwater_config_reloads_total{result="success"}')).toBeGreaterThanOrEqual(20);
  });

  it('finishes a request in flight on the config it started with', async () => {
    const slowBlue = await answering('slow-blue', 500);
    try {
      await volume.update(configFor(slowBlue));
      await expect.poll(answer, { timeout: 5000, interval: 20 }).toBe('slow-blue');
      const inFlight = request(`${proxy.url()}/`).then((response) => response.body.text());
      await expect.poll(() => slowBlue.requests.length).toBeGreaterThanOrEqual(2);
      await volume.update(configFor(green));
      await expect.poll(answer, { timeout: 5000, interval: 20 }).toBe('green');
      expect(await inFlight).toBe('slow-blue');
    } finally {
      await slowBlue.close();
    }
  });

  it('keeps the running config when the new file is invalid, and counts the failure', async () => {
    await volume.update(configFor(blue));
    await expect.poll(answer, { timeout: 5000, interval: 20 }).toBe('blue');
    const failuresBefore = await metric(proxy, 'breakwater_config_reloads_total{result="failure"}');

    await volume.update('routes: [ {name: broken, upstream: ');
    await expect
      .poll(() => metric(proxy, 'breakwater_config_reloads_total{result="failure"}'), { timeout: 5000 })
      .toBe(failuresBefore + 1);
    expect(await answer()).toBe('blue');
    const logged = proxy.lines.find((line) => line.msg === 'config reload failed; keeping the running config');
    expect(logged).toBeDefined();
    expect(String((logged!.problems as string[])[0])).toMatch(/breakwater\.yaml:\d+:\d+/);

    const response = await request(`http://127.0.0.1:${proxy.ports.admin}/reload`, { method: 'POST' });
    expect(response.statusCode).toBe(400);
    expect(await response.body.json()).toMatchObject({ result: 'failure' });
  });
});

describe('reloads of a plain file: warnings, unchanged files, restart-only addresses', () => {
  let upstream: UpstreamServer;
  let proxy: BreakwaterProcess;
  let file: string;

  beforeAll(async () => {
    upstream = await answering('app');
    const dir = await mkdtemp(join(tmpdir(), 'breakwater-reload-'));
    file = join(dir, 'breakwater.yaml');
    await writeFile(file, configFor(upstream));
    proxy = await spawnBreakwater('', { configPath: file });
  });

  afterAll(async () => {
    proxy.kill();
    await upstream.close();
    await rm(dirname(file), { recursive: true, force: true });
  });

  const admin = (path: string, init?: { method: string }) => request(`http://127.0.0.1:${proxy.ports.admin}${path}`, init);

  async function effectiveConfig(): Promise<Record<string, unknown>> {
    return (await (await admin('/config')).body.json()) as Record<string, unknown>;
  }

  it('answers POST /reload on an unchanged file with "unchanged", logs it and counts it', async () => {
    const before = await metric(proxy, 'breakwater_config_reloads_total{result="unchanged"}');
    const successes = await metric(proxy, 'breakwater_config_reloads_total{result="success"}');

    const response = await admin('/reload', { method: 'POST' });

    expect(response.statusCode).toBe(200);
    expect(await response.body.json()).toEqual({ result: 'unchanged' });
    expect(await metric(proxy, 'breakwater_config_reloads_total{result="unchanged"}')).toBe(before + 1);
    expect(await metric(proxy, 'breakwater_config_reloads_total{result="success"}')).toBe(successes);
    expect(proxy.lines.filter((line) => line.msg === 'config unchanged')).toEqual([
      expect.objectContaining({ level: 30, config: file }),
    ]);
  });

  it('logs and counts a SIGHUP on an unchanged file', async () => {
    const before = await metric(proxy, 'breakwater_config_reloads_total{result="unchanged"}');
    const logged = proxy.lines.filter((line) => line.msg === 'config unchanged').length;

    proxy.child.kill('SIGHUP');

    await expect.poll(() => metric(proxy, 'breakwater_config_reloads_total{result="unchanged"}'), { timeout: 5000 }).toBe(before + 1);
    expect(proxy.lines.filter((line) => line.msg === 'config unchanged')).toHaveLength(logged + 1);
  });

  it('shows the telemetry and admin addresses in force in /config, and the configured ones as pending a restart', async () => {
    const running = await effectiveConfig();
    expect(running.telemetry).toEqual({ address: { host: '127.0.0.1', port: 0 } });
    expect(running.admin).toEqual({ address: { host: '127.0.0.1', port: 0 } });
    expect(running).not.toHaveProperty('pendingRestart');

    const moved = configFor(upstream, '4s')
      .replace('telemetry: {address: 127.0.0.1:0}', 'telemetry: {address: 127.0.0.1:15920}')
      .replace('admin: {address: 127.0.0.1:0}', 'admin: {address: 127.0.0.1:15900}');
    // The file watcher applies it (a POST /reload here would race with it).
    await writeFile(file, moved);
    const routeTimeout = async () => ((await effectiveConfig()).routes as { timeoutMs: number }[])[0]!.timeoutMs;
    await expect.poll(routeTimeout, { timeout: 5000 }).toBe(4000);

    // The reload is in force, but the servers still run where they started.
    const after = await effectiveConfig();
    expect(after.telemetry).toEqual({ address: { host: '127.0.0.1', port: 0 } });
    expect(after.admin).toEqual({ address: { host: '127.0.0.1', port: 0 } });
    expect(after.pendingRestart).toEqual({
      telemetry: { address: { host: '127.0.0.1', port: 15920 } },
      admin: { address: { host: '127.0.0.1', port: 15900 } },
    });
    const warned = proxy.lines.filter((line) => line.level === 40 && typeof line.msg === 'string' && line.msg.endsWith('changes at the next start'));
    expect(warned.map((line) => line.msg)).toEqual(['the telemetry address changes at the next start', 'the admin address changes at the next start']);

    // Back to the addresses in force: nothing is pending any more, and nothing is warned.
    await writeFile(file, configFor(upstream, '3s'));
    await expect.poll(routeTimeout, { timeout: 5000 }).toBe(3000);
    const restored = await effectiveConfig();
    expect(restored).not.toHaveProperty('pendingRestart');
    expect(proxy.lines.filter((line) => typeof line.msg === 'string' && line.msg.endsWith('changes at the next start'))).toHaveLength(2);
  });

  it('logs the warnings of a new config at warn level, and applies it', async () => {
    await writeFile(file, `${configFor(upstream, '2s')}  - {name: never, match: {pathPrefix: /never}, upstream: app}\n`);

    await expect.poll(() => proxy.lines.find((line) => line.msg === 'config warnings'), { timeout: 5000 }).toMatchObject({
      level: 40,
      config: file,
      warnings: [
        `${file}:9:5 routes[1](never): warning: never used: routes[0](app) comes first on listener outbound and matches every request this route matches (the first matching route wins)`,
      ],
    });
    await expect.poll(async () => (await effectiveConfig()).routes, { timeout: 5000 }).toHaveLength(2);
  });
});
