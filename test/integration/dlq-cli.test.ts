// `breakwater dlq` as an operator runs it: a process of its own against a running Breakwater's
// admin API, printing tables, or JSON with --json.

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../support/breakwater.ts';
import { freePort, waitFor } from '../support/redis-server.ts';
import { startUpstream, type UpstreamServer } from '../support/upstream-server.ts';

const root = new URL('../../', import.meta.url).pathname;
const cli = join(root, 'src/cli/main.ts');

let bw: RunningBreakwater;
let upstream: UpstreamServer;
let down = true;

function dlq(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [cli, 'dlq', ...args], { cwd: root, env: { ...process.env, BREAKWATER_ADMIN: bw.adminUrl }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

async function fail(path: string, body: string): Promise<void> {
  const response = await request(`${bw.url()}${path}`, { method: 'POST', headers: { host: 'notify', 'content-type': 'text/plain' }, body });
  await response.body.dump();
}

const count = async (): Promise<number> => ((await (await fetch(`${bw.adminUrl}/dead-letters`)).json()) as { entries: unknown[] }).entries.length;

beforeAll(async () => {
  upstream = await startUpstream((_req, res) => {
    res.writeHead(down ? 502 : 200);
    res.end();
  });
  bw = await startBreakwater(`${ephemeralAddresses}
upstreams:
  notifier: {endpoints: ['${upstream.origin}']}
routes:
  - {name: notify, upstream: notifier, deadLetter: {}}
`);
});

afterAll(async () => {
  await bw?.stop();
  await upstream?.close();
});

describe('breakwater dlq', () => {
  it('lists every dead letter as a table, newest first, or as JSON', async () => {
    for (let i = 0; i < 3; i++) await fail(`/send/${i}`, `hello ${i}`);
    await waitFor('3 dead letters', async () => (await count()) === 3);

    const table = await dlq('list');
    const json = await dlq('list', '--json', '--route', 'notify');
    const one = await dlq('list', '--limit', '1', '--json');

    expect(table.code).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+KEPT\s+ROUTE\s+METHOD\s+URL\s+REASON\s+ATTEMPTS\s+BODY\s+REPLAYS$/);
    expect(lines.slice(1, 4).map((line) => line.split(/\s{2,}/)[4])).toEqual(['/send/2', '/send/1', '/send/0']);
    expect(lines[1]).toMatch(/notify\s+POST\s+\/send\/2\s+502\s+1\s+7 B\s+0$/);
    expect(lines.at(-1)).toBe('3 dead letters');
    const entries = JSON.parse(json.stdout) as { id: string; url: string }[];
    expect(entries.map((entry) => entry.url)).toEqual(['/send/2', '/send/1', '/send/0']);
    expect(JSON.parse(one.stdout)).toHaveLength(1);
  });

  it('shows one dead letter with its headers and its body', async () => {
    const [newest] = JSON.parse((await dlq('list', '--json')).stdout) as { id: string }[];

    const shown = await dlq('show', newest!.id);

    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(`id:         ${newest!.id}`);
    expect(shown.stdout).toContain('request:    POST /send/2');
    expect(shown.stdout).toContain('failed:     502 (status 502, after 1 attempt)');
    expect(shown.stdout).toMatch(/content-type: text\/plain/);
    expect(shown.stdout.trim().endsWith('hello 2')).toBe(true);
    expect(JSON.parse((await dlq('show', newest!.id, '--json')).stdout)).toMatchObject({ id: newest!.id, body: Buffer.from('hello 2').toString('base64') });
  });

  it('replays by id and by route, and says what became of each', async () => {
    const ids = (JSON.parse((await dlq('list', '--json')).stdout) as { id: string }[]).map((entry) => entry.id);

    const failed = await dlq('replay', ids[0]!);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toBe(`${ids[0]!}  failed     502  (kept)\n`);

    down = false;
    const one = await dlq('replay', ids[0]!);
    expect(one).toMatchObject({ code: 0, stdout: `${ids[0]!}  delivered  200\n` });

    const rest = await dlq('replay', '--route', 'notify', '--rate', '50');
    expect(rest.code).toBe(0);
    expect(rest.stdout.trim().split('\n')).toEqual([
      `${ids[2]!}  delivered  200`,
      `${ids[1]!}  delivered  200`,
      'replayed 2: 2 delivered, 0 failed, 0 skipped; every matching dead letter was replayed',
    ]);
    expect((await dlq('list')).stdout).toBe('no dead letters\n');
    down = true;
  });

  it('deletes and purges', async () => {
    for (let i = 0; i < 3; i++) await fail(`/purge/${i}`, 'x');
    await waitFor('3 dead letters', async () => (await count()) === 3);
    const [first] = JSON.parse((await dlq('list', '--json')).stdout) as { id: string }[];

    expect(await dlq('delete', first!.id)).toMatchObject({ code: 0, stdout: `deleted ${first!.id}\n` });
    expect(await dlq('purge', '--route', 'notify')).toMatchObject({ code: 0, stdout: 'deleted 2 dead letters of route notify\n' });
    expect(await dlq('delete', first!.id)).toMatchObject({ code: 1, stderr: `breakwater: ${first!.id}: no dead letter ${first!.id}\n` });
  });

  it('says what is wrong: an admin server it cannot reach, a route that keeps none, a command misused', async () => {
    const port = await freePort();

    expect(await dlq('list', '--admin', `http://127.0.0.1:${port}`)).toMatchObject({ code: 1, stderr: `breakwater: cannot reach the admin server at http://127.0.0.1:${port}: ECONNREFUSED\n` });
    expect(await dlq('list', '--route', 'nowhere')).toMatchObject({ code: 1, stderr: 'breakwater: route "nowhere" keeps no dead letters in the running config\n' });
    const misused = await dlq('purge');
    expect(misused.code).toBe(2);
    expect(misused.stderr).toContain('dlq purge needs --route R');
    expect((await dlq('show', 'a', 'b')).code).toBe(2);
    expect((await dlq('replay', 'ID', '--rate', '5')).stderr).toContain('does not take --rate');
  });
});
