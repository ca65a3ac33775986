// A route policy edited in a ConfigMap reaches a running Breakwater the way kubelet delivers
// it: a new timestamped folder, the `..data` symlink swapped by rename, the old folder removed.
// Under steady load, each edit takes effect within 5 seconds and no request fails.

import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configMapVolume, type ConfigMapVolume } from '../support/configmap.ts';
import { spawnBreakwater, type BreakwaterProcess } from '../support/process.ts';
import { startUpstream, type UpstreamServer } from '../support/upstream-server.ts';

const EFFECT_WITHIN_MS = 5000;
const EDITS = 6;

/** The catalog route, with or without a retry policy. */
function policy(upstream: UpstreamServer, retries: boolean): string {
  return `
listeners: [{name: outbound, address: 127.0.0.1:0}]
telemetry: {address: 127.0.0.1:0}
admin: {address: 127.0.0.1:0}
upstreams:
  catalog: {endpoints: ["${upstream.origin}"]}
routes:
  - name: catalog
    match: {host: catalog}
    upstream: catalog
    timeout: 5s
${retries ? '    retry: {maxAttempts: 3, retryOn: [503], backoff: {type: none}}' : ''}
`;
}

describe('a ConfigMap policy edit, delivered as kubelet does, under load', () => {
  let upstream: UpstreamServer;
  let volume: ConfigMapVolume;
  let proxy: BreakwaterProcess;

  beforeAll(async () => {
    // /flaky fails every first attempt, so whether the route retries shows in one request;
    // everything else answers after 5 ms, so that requests are in flight during each swap.
    upstream = await startUpstream((req, res) => {
      if (req.url === '/flaky' && req.headers['x-breakwater-attempt'] === '1') {
        res.statusCode = 503;
        res.end('first attempts fail');
        return;
      }
      setTimeout(() => res.end('ok'), 5);
    });
    volume = await configMapVolume(policy(upstream, false));
    proxy = await spawnBreakwater('', { configPath: volume.file });
  });

  afterAll(async () => {
    await proxy.kill();
    await volume.remove();
    await upstream.close();
  });

  /** What a single call to /flaky shows of the route's policy. */
  async function flakyCall(): Promise<{ status: number; attempts: string }> {
    const response = await request(`${proxy.url()}/flaky`, { headers: { host: 'catalog' } });
    await response.body.dump();
    return { status: response.statusCode, attempts: String(response.headers['x-breakwater-attempts']) };
  }

  it('applies each edit within 5 seconds without failing a request', async () => {
    // Without a retry policy the upstream's 503 is passed through after one attempt.
    expect(await flakyCall()).toEqual({ status: 503, attempts: '1' });

    // Steady load on the same route: four clients in a loop until the edits are done.
    const agent = new Agent({ connections: 4 });
    let stop = false;
    let sent = 0;
    const failures: string[] = [];
    const client = async () => {
      while (!stop && sent < 100_000) {
        sent += 1;
        try {
          const response = await request(`${proxy.url()}/items`, { headers: { host: 'catalog' }, dispatcher: agent });
          const text = await response.body.text();
          if (response.statusCode !== 200 || text !== 'ok') failures.push(`${response.statusCode} ${text}`);
        } catch (error) {
          failures.push(String(error));
        }
      }
    };
    const clients = [client(), client(), client(), client()];

    const tookMs: number[] = [];
    for (let edit = 1; edit <= EDITS; edit++) {
      const retries = edit % 2 === 1;
      const sentBefore = sent;
      const editedAt = performance.now();
      await volume.update(policy(upstream, retries));
      // With retries the first attempt's 503 is retried and the second attempt answers.
      const expected = retries ? { status: 200, attempts: '2' } : { status: 503, attempts: '1' };
      await expect.poll(flakyCall, { timeout: EFFECT_WITHIN_MS, interval: 25 }).toEqual(expected);
      tookMs.push(performance.now() - editedAt);
      // The load kept flowing through the swap.
      expect(sent).toBeGreaterThan(sentBefore);
    }

    stop = true;
    await Promise.all(clients);
    await agent.close();
    expect(failures).toEqual([]);
    expect(sent).toBeGreaterThan(EDITS * 10);
    for (const ms of tookMs) expect(ms).toBeLessThan(EFFECT_WITHIN_MS);

    // Each edit was one reload of the same process, logged and counted.
    expect(proxy.child.exitCode).toBeNull();
    expect(proxy.lines.filter((line) => line.msg === 'config reloaded')).toHaveLength(EDITS);
    const metrics = await (await request(`http://127.0.0.1:${proxy.ports.telemetry}/metrics`)).body.text();
    expect(metrics).toContain(`breakwater_config_reloads_total{result="success"} ${EDITS}`);
    expect(metrics).toContain('breakwater_config_reloads_total{result="failure"} 0');
  });
});
