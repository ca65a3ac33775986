// dns:// endpoints against a DNS server the test runs on loopback: Breakwater's resolver sends
// it real queries, and the upstreams listen on loopback addresses of their own (127.0.0.2,
// 127.0.0.3...) on one port, as the pods behind a headless Service do.

import { writeFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../../support/breakwater.ts';
import { startDnsServer, type DnsServer } from '../../support/dns-server.ts';
import { echo, startUpstream, type UpstreamServer } from '../../support/upstream-server.ts';
import { waitFor } from '../../support/wait.ts';

interface EndpointRow {
  endpoint: string;
  source?: string;
  state: string;
  inFlight: number;
  latencyEwmaMs: number;
}

interface UpstreamRow {
  upstream: string;
  endpoints: EndpointRow[];
  discovery?: { source: string; addresses: string[]; lastResolved?: string; lastError?: string }[];
}

let dns: DnsServer | undefined;
let proxy: RunningBreakwater | undefined;
const servers: UpstreamServer[] = [];

afterEach(async () => {
  await proxy?.stop();
  await Promise.all(servers.map((server) => server.close()));
  await dns?.close();
  proxy = undefined;
  dns = undefined;
  servers.length = 0;
});

/** Upstreams on 127.0.0.2, 127.0.0.3... all on one port; each answers with its own address. */
async function podsOnOnePort(count: number, hold?: (res: ServerResponse) => void): Promise<{ port: number; pods: UpstreamServer[] }> {
  const pods: UpstreamServer[] = [];
  let port = 0;
  for (let index = 0; index < count; index++) {
    const host = `127.0.0.${index + 2}`;
    const pod = await startUpstream(
      (req, res, body) => {
        if (req.url === '/hold' && hold !== undefined) return hold(res);
        res.setHeader('x-pod', host);
        echo(req, res, body);
      },
      { host, port },
    );
    port = pod.port;
    pods.push(pod);
    servers.push(pod);
  }
  return { port, pods };
}

function config(dnsAddress: string, port: number, extra = ''): string {
  return `${ephemeralAddresses}
dns:
  servers: ["${dnsAddress}"]
upstreams:
  pods:
    endpoints: [dns://pods.shop.test:${port}]
    dnsRefresh: 50ms
routes:
  - name: pods
    upstream: pods
    timeout: 5s${extra}
`;
}

async function get(path = '/items'): Promise<{ status: number; pod: string | undefined }> {
  const response = await request(`${proxy!.url()}${path}`, { headers: { host: 'pods' } });
  await response.body.dump();
  const pod = response.headers['x-pod'];
  return { status: response.statusCode, pod: typeof pod === 'string' ? pod : undefined };
}

async function endpoints(): Promise<UpstreamRow> {
  const rows = (await (await request(`${proxy!.adminUrl}/endpoints`)).body.json()) as UpstreamRow[];
  return rows.find((row) => row.upstream === 'pods')!;
}

describe('dns:// endpoints', () => {
  it('send to every address the name resolves to, and /endpoints lists each with its state', async () => {
    dns = await startDnsServer();
    const { port, pods } = await podsOnOnePort(2);
    dns.setRecords('pods.shop.test', ['127.0.0.2', '127.0.0.3']);
    proxy = await startBreakwater(config(dns.address, port));

    // Round-robin over the two addresses: both get half.
    const answers = await Promise.all(Array.from({ length: 10 }, () => get()));
    expect(answers.every((answer) => answer.status === 200)).toBe(true);
    expect(pods.map((pod) => pod.requests.length)).toEqual([5, 5]);

    const row = await endpoints();
    expect(row.endpoints.map(({ endpoint, source, state, inFlight }) => ({ endpoint, source, state, inFlight }))).toEqual([
      { endpoint: `http://127.0.0.2:${port}`, source: `dns://pods.shop.test:${port}`, state: 'active', inFlight: 0 },
      { endpoint: `http://127.0.0.3:${port}`, source: `dns://pods.shop.test:${port}`, state: 'active', inFlight: 0 },
    ]);
    expect(row.endpoints.every((endpoint) => endpoint.latencyEwmaMs > 0)).toBe(true);
    expect(row.discovery).toEqual([
      { source: `dns://pods.shop.test:${port}`, addresses: ['127.0.0.2', '127.0.0.3'], lastResolved: expect.any(String) as string },
    ]);
    // Both families were asked for.
    expect(dns.queries).toEqual(expect.arrayContaining(['A pods.shop.test', 'AAAA pods.shop.test']));
  });

  it('add an address that appears and drain one that goes: its request in flight finishes, and it gets no new one', async () => {
    dns = await startDnsServer();
    const held: ServerResponse[] = [];
    const { port, pods } = await podsOnOnePort(2, (res) => held.push(res));
    dns.setRecords('pods.shop.test', ['127.0.0.2']);
    proxy = await startBreakwater(config(dns.address, port));

    // A request is in flight on the only pod.
    const inFlight = get('/hold');
    await waitFor('the held request to reach the pod', () => held.length === 1);

    // The pod leaves DNS and another takes its place.
    dns.setRecords('pods.shop.test', ['127.0.0.3']);
    await waitFor('the new endpoint', async () => (await endpoints()).endpoints.some((row) => row.endpoint.startsWith('http://127.0.0.3') && row.state === 'active'));
    const during = await endpoints();
    expect(during.endpoints.map(({ endpoint, state, inFlight: count }) => ({ endpoint, state, inFlight: count }))).toEqual([
      { endpoint: `http://127.0.0.3:${port}`, state: 'active', inFlight: 0 },
      { endpoint: `http://127.0.0.2:${port}`, state: 'draining', inFlight: 1 },
    ]);
    expect(proxy.log.lines).toContainEqual(
      expect.objectContaining({ msg: 'endpoints changed', upstream: 'pods', added: [`http://127.0.0.3:${port}`], removed: [`http://127.0.0.2:${port}`] }),
    );

    // New requests go to the new pod only.
    for (let i = 0; i < 4; i++) expect(await get()).toEqual({ status: 200, pod: '127.0.0.3' });
    expect(pods[0]!.requests.map((req) => req.url)).toEqual(['/hold']);

    // The request on the leaving pod finishes as it would have; then the pod is gone from the list.
    held[0]!.writeHead(200, { 'x-pod': '127.0.0.2' }).end('done');
    expect(await inFlight).toEqual({ status: 200, pod: '127.0.0.2' });
    await waitFor('the drained endpoint to go', async () => (await endpoints()).endpoints.length === 1);
  });

  it('keep the last good endpoints while lookups fail, and say why', async () => {
    dns = await startDnsServer();
    const { port } = await podsOnOnePort(2);
    dns.setRecords('pods.shop.test', ['127.0.0.2', '127.0.0.3']);
    proxy = await startBreakwater(config(dns.address, port));

    // The DNS server fails every query from now on.
    dns.fail(true);
    await waitFor('a failed lookup', async () => (await endpoints()).discovery?.[0]?.lastError !== undefined);

    const answers = await Promise.all(Array.from({ length: 6 }, () => get()));
    expect(new Set(answers.map((answer) => `${answer.status} ${answer.pod}`))).toEqual(new Set(['200 127.0.0.2', '200 127.0.0.3']));
    const row = await endpoints();
    expect(row.endpoints.map((endpoint) => endpoint.state)).toEqual(['active', 'active']);
    expect(row.discovery?.[0]).toMatchObject({ addresses: ['127.0.0.2', '127.0.0.3'], lastError: expect.stringContaining('ESERVFAIL') as string });
    expect(proxy.log.lines).toContainEqual(
      expect.objectContaining({ level: 40, msg: 'DNS lookup failed; keeping the last endpoints', upstream: 'pods', kept: 2 }),
    );

    // Answers again: the error is gone.
    dns.fail(false);
    await waitFor('a lookup that answers', async () => (await endpoints()).discovery?.[0]?.lastError === undefined);
  });

  it('keep their endpoints and warm connections across a reload that leaves the upstream alone', async () => {
    dns = await startDnsServer();
    const { port, pods } = await podsOnOnePort(2);
    dns.setRecords('pods.shop.test', ['127.0.0.2', '127.0.0.3']);
    proxy = await startBreakwater(config(dns.address, port));
    for (let i = 0; i < 4; i++) await get();
    const connections = pods.map((pod) => pod.connections);

    // A reload that changes a route, not the upstream.
    await writeFile(proxy.configPath, config(dns.address, port).replace('timeout: 5s', 'timeout: 4s'));
    expect(await proxy.breakwater.reload()).toEqual({ ok: true, changed: true });
    for (let i = 0; i < 4; i++) expect((await get()).status).toBe(200);

    expect(pods.map((pod) => pod.connections)).toEqual(connections);
    expect((await endpoints()).endpoints).toHaveLength(2);
  });

  it('start from the addresses already known when a reload changes the upstream, and look the name up again', async () => {
    dns = await startDnsServer();
    const { port } = await podsOnOnePort(2);
    dns.setRecords('pods.shop.test', ['127.0.0.2', '127.0.0.3']);
    proxy = await startBreakwater(config(dns.address, port));
    // DNS fails from here on: the new upstream cannot learn its addresses from it.
    dns.fail(true);

    await writeFile(proxy.configPath, config(dns.address, port).replace('dnsRefresh: 50ms', 'dnsRefresh: 60ms\n    maxConnections: 4'));
    expect(await proxy.breakwater.reload()).toEqual({ ok: true, changed: true });

    const answers = await Promise.all(Array.from({ length: 4 }, () => get()));
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200]);
    expect((await endpoints()).endpoints).toHaveLength(2);
  });

  it('answer 503 upstream_unavailable, naming the lookup, when a name has never resolved', async () => {
    dns = await startDnsServer();
    dns.fail(true);
    proxy = await startBreakwater(config(dns.address, 8080));

    const response = await request(`${proxy.url()}/items`, { headers: { host: 'pods' } });
    const body = (await response.body.json()) as { error: { reason: string; message: string } };

    expect(response.statusCode).toBe(503);
    expect(body.error.reason).toBe('upstream_unavailable');
    expect(body.error.message).toMatch(/^upstream pods has no endpoints \(DNS lookup of pods\.shop\.test failed: .*ESERVFAIL/);
  });

  it("use the system's resolver without dns.servers (localhost from /etc/hosts)", async () => {
    const pod = await startUpstream();
    servers.push(pod);
    proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  local:
    endpoints: [dns://localhost:${pod.port}]
routes:
  - name: local
    upstream: local
    retry: {retryOn: [connect-failure]}
`);

    const response = await request(`${proxy.url()}/x`, { headers: { host: 'local' } });
    await response.body.dump();

    expect(response.statusCode).toBe(200);
    const rows = (await (await request(`${proxy.adminUrl}/endpoints`)).body.json()) as UpstreamRow[];
    expect(rows[0]?.endpoints.map((row) => row.endpoint)).toContain(`http://127.0.0.1:${pod.port}`);
  });
});
