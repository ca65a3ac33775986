// A 1 GiB upload that fails, through a route that keeps dead letters, in a process of its own:
// the dead letter is kept without the body, marked truncated, and the proxy's memory stays flat
// while the body streams through it to the upstream.

import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generated, peakRssDuring } from '../support/large-bodies.ts';
import { residentBytes, spawnBreakwater, type BreakwaterProcess } from '../support/process.ts';
import { waitFor } from '../support/redis-server.ts';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
// The same bound as a plain upload's (streaming.test.ts): a proxy that kept the body would
// grow by its size, one that copies at most maxBodyBytes by that and its buffers' slack.
const maxGrowth = 128 * MiB;

describe('a failed 1 GiB upload through a route that keeps dead letters', () => {
  let upstream: Server;
  let proxy: BreakwaterProcess;
  let dir: string;
  let received = 0;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'breakwater-dlq-upload-'));
    // Reads the whole upload, then fails it.
    upstream = createServer((req, res) => {
      let bytes = 0;
      req.on('data', (data: Buffer) => (bytes += data.length));
      req.on('end', () => {
        received = bytes;
        res.writeHead(503);
        res.end('failed after reading it all');
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const port = (upstream.address() as AddressInfo).port;
    proxy = await spawnBreakwater(`
listeners: [{name: outbound, address: 127.0.0.1:0}]
telemetry: {address: 127.0.0.1:0}
admin: {address: 127.0.0.1:0}
upstreams:
  bulk: {endpoints: ["http://127.0.0.1:${port}"]}
stores:
  local: {type: sqlite, path: "${join(dir, 'state.db')}"}
routes:
  - {name: bulk, match: {pathPrefix: /}, upstream: bulk, timeout: 2m, deadLetter: {store: local, maxBodyBytes: 1MiB}}
`);
  });

  afterAll(async () => {
    await proxy?.kill();
    await new Promise((resolve) => upstream?.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  it('is kept truncated, without its body, with the proxy RSS staying flat', async () => {
    const baseline = await residentBytes(proxy.pid);
    // Chunked: the proxy learns the size only as the body streams.
    const upload = new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${proxy.url()}/upload`, { method: 'POST', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      generated(GiB).pipe(req);
    });

    const peak = await peakRssDuring(proxy.pid, upload);

    expect(await upload).toBe(503);
    expect(received).toBe(GiB);
    expect(peak - baseline).toBeLessThan(maxGrowth);
    const admin = `http://127.0.0.1:${proxy.ports.admin}`;
    let entries: { id: string; truncated: boolean; bodyBytes: number | null; reason: string }[] = [];
    await waitFor('the dead letter', async () => {
      entries = ((await (await fetch(`${admin}/dead-letters`)).json()) as { entries: typeof entries }).entries;
      return entries.length === 1;
    });
    expect(entries[0]).toMatchObject({ reason: '503', truncated: true, bodyBytes: GiB });
    expect(((await (await fetch(`${admin}/dead-letters/${entries[0]!.id}`)).json()) as { body: unknown }).body).toBeNull();
    // It cannot be sent again: its body is gone.
    const replay = (await (await fetch(`${admin}/dead-letters/${entries[0]!.id}/replay`, { method: 'POST' })).json()) as { result: string };
    expect(replay.result).toBe('skipped');
    console.log(`dead-letter upload: 1 GiB, proxy RSS ${Math.round(baseline / MiB)} MiB before, peak ${Math.round(peak / MiB)} MiB`);
  }, 180_000);
});
