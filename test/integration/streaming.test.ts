import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generated, peakRssDuring } from '../support/large-bodies.ts';
import { residentBytes, spawnBreakwater, type BreakwaterProcess } from '../support/process.ts';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
// A proxy that held the body would grow by the body's size; a streaming one only by what
// its buffers and the garbage collector's slack take, which does not depend on the body size.
const maxGrowth = 128 * MiB;

describe('streaming bodies through the proxy', () => {
  let upstream: Server;
  let proxy: BreakwaterProcess;
  let uploadedBytes = 0;

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      if (req.url === '/download') {
        res.writeHead(200, { 'content-length': String(GiB) });
        generated(GiB).pipe(res);
        return;
      }
      let bytes = 0;
      req.on('data', (data: Buffer) => (bytes += data.length));
      req.on('end', () => {
        uploadedBytes = bytes;
        res.end(String(bytes));
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
routes:
  - {name: bulk, match: {pathPrefix: /}, upstream: bulk, timeout: 2m}
`);
  });

  afterAll(async () => {
    await proxy.kill();
    await new Promise((resolve) => upstream.close(resolve));
  });

  it('uploads 1 GiB with the proxy RSS staying flat', async () => {
    const baseline = await residentBytes(proxy.pid);
    const upload = new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${proxy.url()}/upload`, { method: 'POST', headers: { 'content-length': String(GiB) } }, (res) => {
        let text = '';
        res.on('data', (data: Buffer) => (text += data.toString()));
        res.on('end', () => resolve(Number(text)));
      });
      req.on('error', reject);
      generated(GiB).pipe(req);
    });
    const peak = await peakRssDuring(proxy.pid, upload);
    expect(await upload).toBe(GiB);
    expect(uploadedBytes).toBe(GiB);
    expect(peak - baseline).toBeLessThan(maxGrowth);
  });

  it('downloads 1 GiB with the proxy RSS staying flat', async () => {
    const baseline = await residentBytes(proxy.pid);
    const download = new Promise<number>((resolve, reject) => {
      httpRequest(`${proxy.url()}/download`, (res) => {
        let bytes = 0;
        res.on('data', (data: Buffer) => (bytes += data.length));
        res.on('end', () => resolve(bytes));
      })
        .on('error', reject)
        .end();
    });
    const peak = await peakRssDuring(proxy.pid, download);
    expect(await download).toBe(GiB);
    expect(peak - baseline).toBeLessThan(maxGrowth);
  });
});
