import { connect } from 'node:net';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnBreakwater, type BreakwaterProcess } from '../support/process.ts';
import { startUpstream, type UpstreamServer } from '../support/upstream-server.ts';

function connectionRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

describe('SIGTERM drain', () => {
  let upstream: UpstreamServer | undefined;
  let proxy: BreakwaterProcess | undefined;

  afterEach(async () => {
    await proxy?.kill();
    await upstream?.close();
  });

  it('finishes the request in flight, turns unready at once, refuses new connections and exits 0', async () => {
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    upstream = await startUpstream((_req, res) => {
      void held.then(() => res.end('finished'));
    });
    proxy = await spawnBreakwater(`
listeners: [{name: outbound, address: 127.0.0.1:0}]
telemetry: {address: 127.0.0.1:0}
admin: {address: 127.0.0.1:0}
shutdown: {drainTimeout: 20s}
upstreams:
  app: {endpoints: ["${upstream.origin}"]}
routes:
  - {name: app, match: {pathPrefix: /}, upstream: app}
`);
    const telemetry = `http://127.0.0.1:${proxy.ports.telemetry}`;
    expect((await request(`${telemetry}/readyz`)).statusCode).toBe(200);

    // A request reaches the upstream, which holds its answer.
    const slow = request(`${proxy.url()}/slow`);
    await expect.poll(() => upstream!.requests.length).toBe(1);

    proxy.child.kill('SIGTERM');

    // Readiness drops while the request is still in flight.
    await expect.poll(async () => (await request(`${telemetry}/readyz`)).statusCode).toBe(503);
    // The listener no longer accepts connections.
    await expect.poll(() => connectionRefused(proxy!.ports.listeners.outbound!)).toBe(true);

    release();
    const response = await slow;
    expect(response.statusCode).toBe(200);
    expect(response.headers.connection).toBe('close');
    expect(await response.body.text()).toBe('finished');
    expect(await proxy.exited).toEqual({ code: 0, signal: null });
  });

  it('cuts requests still running at the drain timeout and exits 0', async () => {
    upstream = await startUpstream(() => undefined);
    proxy = await spawnBreakwater(`
listeners: [{name: outbound, address: 127.0.0.1:0}]
telemetry: {address: 127.0.0.1:0}
admin: {address: 127.0.0.1:0}
shutdown: {drainTimeout: 200ms}
upstreams:
  app: {endpoints: ["${upstream.origin}"]}
routes:
  - {name: app, match: {pathPrefix: /}, upstream: app, timeout: 1m}
`);
    const stuck = request(`${proxy.url()}/stuck`).then(
      () => 'answered',
      () => 'cut',
    );
    await expect.poll(() => upstream!.requests.length).toBe(1);
    proxy.child.kill('SIGTERM');
    expect(await proxy.exited).toEqual({ code: 0, signal: null });
    expect(await stuck).toBe('cut');
  });
});
