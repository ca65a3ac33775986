import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnBreakwater, type BreakwaterProcess } from '../support/process.ts';
import { startUpstream, type UpstreamServer } from '../support/upstream-server.ts';

describe('the access log of a running process', () => {
  let upstream: UpstreamServer;
  let proxy: BreakwaterProcess;

  beforeAll(async () => {
    upstream = await startUpstream();
    proxy = await spawnBreakwater(`
listeners: [{name: outbound, address: 127.0.0.1:0}]
telemetry: {address: 127.0.0.1:0}
admin: {address: 127.0.0.1:0}
upstreams:
  app: {endpoints: ["${upstream.origin}"]}
routes:
  - {name: app, match: {pathPrefix: /}, upstream: app}
`);
  });

  afterAll(async () => {
    await proxy.kill();
    await upstream.close();
  });

  it('reaches stdout soon even when the proxy is quiet, though lines are written in batches', async () => {
    await (await request(`${proxy.url()}/quiet`, { headers: { 'x-request-id': 'one-quiet-request' } })).body.dump();
    await expect
      .poll(() => proxy.lines.find((line) => line.requestId === 'one-quiet-request'), { timeout: 5000 })
      .toMatchObject({ msg: 'request', route: 'app', status: 200, path: '/quiet' });
  });

  it('writes every line before the process exits on SIGTERM', async () => {
    for (let i = 0; i < 20; i++) {
      await (await request(`${proxy.url()}/burst`, { headers: { 'x-request-id': `burst-${i}` } })).body.dump();
    }
    proxy.child.kill('SIGTERM');
    expect(await proxy.exited).toEqual({ code: 0, signal: null });
    // The pipe may still hold the last lines when the exit is reported.
    await expect.poll(() => proxy.lines.filter((line) => String(line.requestId).startsWith('burst-'))).toHaveLength(20);
  });
});
