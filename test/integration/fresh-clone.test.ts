// The first commands of a fresh clone, run as a new user runs them: `npm ci` stays quiet
// whichever Node runs npm, `npm start` answers the README tour's keyed POST twice with one
// charge, and stops cleanly when npm is told to stop, or says in one line that its ports are
// taken.

import { spawn, type ChildProcess } from 'node:child_process';
import { access, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { get, request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';

const root = new URL('../../', import.meta.url).pathname;

// What a user's shell has: the system's Node and npm, not the project's Node that npm scripts put first.
const userPath = (process.env.PATH ?? '').split(delimiter).filter((dir) => !dir.includes('node_modules')).join(delimiter);
const userEnv = Object.fromEntries(
  Object.entries({ ...process.env, PATH: userPath }).filter(([name]) => !name.toLowerCase().startsWith('npm_')),
);

function run(command: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: root, env: userEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('npm ci', () => {
  it('prints no warning, whichever Node version runs npm', async () => {
    // --dry-run resolves the whole tree from the lockfile, engine checks included, and changes nothing.
    const result = await run('npm', ['ci', '--dry-run', '--ignore-scripts', '--no-audit', '--no-fund']);

    expect(result.stderr).toBe('');
    expect(result.stdout).not.toMatch(/EBADENGINE|npm warn/i);
    expect(result.code).toBe(0);
  });
});

/** The addresses `npm start` binds: the demo service and everything the example config lists. */
async function demoPorts(): Promise<number[]> {
  const parsed = parseConfig(await readFile(`${root}config/breakwater.yaml`, 'utf8'), 'config/breakwater.yaml');
  if (!parsed.ok) throw new Error('the example config does not load');
  const { listeners, telemetry, admin } = parsed.config;
  return [18080, ...listeners.map((listener) => listener.address.port), telemetry.address.port, admin.address.port];
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen({ host: '127.0.0.1', port, exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

async function busyPorts(): Promise<number[]> {
  const ports = await demoPorts();
  const free = await Promise.all(ports.map(isFree));
  return ports.filter((_port, index) => !free[index]);
}

/** PIDs of the live processes whose parent is `pid`, from /proc. */
async function childrenOf(pid: number): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // The command name may hold spaces and parentheses: the fields after it start at the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[1]) === pid && fields[0] !== 'Z') found.push(Number(entry));
  }
  return found;
}

const isAlive = async (pid: number): Promise<boolean> => {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return stat !== undefined && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
};

/** Resolves once every process in `pids` is gone, or rejects after `ms`. */
async function gone(pids: readonly number[], ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  while ((await Promise.all(pids.map(isAlive))).some(Boolean)) {
    if (performance.now() > deadline) throw new Error(`processes ${pids.join(', ')} still run after ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Processes a test started, killed after it whatever happened. */
const started: number[] = [];
/** Each test's temp folder: `npm start` keeps its SQLite store under $TMPDIR. */
let tempDir: string;

beforeEach(async () => {
  tempDir = await mkdtemp(join(tmpdir(), 'breakwater-npm-start-'));
});

afterEach(async () => {
  for (const pid of started.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await rm(tempDir, { recursive: true, force: true });
});

/** The status of a GET through the outbound listener, as the local service would call the demo. */
function statusThroughBreakwater(path: string): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port: 15001, path, headers: { host: 'demo' }, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode);
    }).on('error', reject);
  });
}

interface Answer {
  readonly status: number | undefined;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/**
 * A curl command of the README tour, sent as curl sends it: its -H headers, its -d body as a
 * form POST, to its URL. Only the options the tour uses are understood.
 */
function curl(command: string): Promise<Answer> {
  const words = [...command.matchAll(/'([^']*)'|(\S+)/g)].map((match) => match[1] ?? match[2]!);
  expect(words[0]).toBe('curl');
  const headers: Record<string, string> = {};
  let body: string | undefined;
  let url: URL | undefined;
  for (let i = 1; i < words.length; i++) {
    const word = words[i]!;
    if (word === '-H') {
      const header = words[++i]!;
      headers[header.slice(0, header.indexOf(':')).toLowerCase()] = header.slice(header.indexOf(':') + 1).trim();
    } else if (word === '-d') {
      body = words[++i]!;
    } else if (/^-[si]+$/.test(word)) {
      // quiet, or with the response head: the test sees both anyway
    } else if (word.startsWith('http://')) {
      url = new URL(word);
    } else {
      throw new Error(`the tour's curl uses an option this test does not know: ${word}`);
    }
  }
  if (url === undefined) throw new Error(`no URL in ${command}`);
  const target = url;
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname + target.search,
        method: body === undefined ? 'GET' : 'POST',
        headers: body === undefined ? headers : { 'content-type': 'application/x-www-form-urlencoded', ...headers },
        agent: false,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** `npm start` as a user types it, resolved once Breakwater says it started, with the processes it runs. */
async function npmStart(): Promise<{ npm: ChildProcess; exited: Promise<number | null>; processes: number[] }> {
  const npm = spawn('npm', ['start'], { cwd: root, env: { ...userEnv, TMPDIR: tempDir }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  npm.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: npm.stdout! }).on('line', (line) => {
      if (line.includes('"msg":"breakwater started"')) resolve();
    });
    void exited.then((code) => reject(new Error(`npm start exited with ${code} before Breakwater started:\n${stderr}`)));
  });
  // npm runs the demo script, which runs Breakwater.
  const demo = await childrenOf(npm.pid!);
  const proxies = (await Promise.all(demo.map(childrenOf))).flat();
  started.push(npm.pid!, ...demo, ...proxies);
  expect(demo).toHaveLength(1);
  expect(proxies).toHaveLength(1);
  return { npm, exited, processes: [...demo, ...proxies] };
}

// Tests of one file run one after another, so the two starts never meet. The first start in a
// fresh clone compiles Breakwater before it runs it.
describe('npm start', { timeout: 120_000 }, () => {
  it.each(['SIGTERM', 'SIGINT'] as const)('stops the demo service and Breakwater when npm gets %s, leaving every port free', async (signal) => {
    expect(await busyPorts(), 'the ports of npm start are taken by something else on this machine').toEqual([]);
    const { npm, exited, processes } = await npmStart();
    expect(await statusThroughBreakwater('/anything')).toBe(200);

    npm.kill(signal);
    await exited;
    await gone(processes, 30_000);

    expect(await busyPorts()).toEqual([]);
  });

  it("answers the README tour's keyed POST twice with one charge: the repeat replayed from the SQLite store in the temp folder", async () => {
    expect(await busyPorts(), 'the ports of npm start are taken by something else on this machine').toEqual([]);
    const readme = await readFile(`${root}README.md`, 'utf8');
    const keyed = readme.split('\n').filter((line) => line.startsWith('curl') && line.includes('idempotency-key'));
    expect(keyed).toHaveLength(2);
    const { npm, exited, processes } = await npmStart();
    try {
      const first = await curl(keyed[0]!);
      // The answer is stored as its last byte goes out, so a repeat sent in the same instant may
      // still find the key in progress (409); a person typing the second line never does.
      let repeat = await curl(keyed[1]!);
      for (let tries = 0; repeat.status === 409 && tries < 20; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        repeat = await curl(keyed[1]!);
      }

      expect(first.status).toBe(201);
      expect(first.headers['idempotent-replayed']).toBeUndefined();
      const charge = (JSON.parse(first.body) as { charge: string; idempotencyKey: string }).charge;
      expect(charge).toMatch(/^ch_\d+$/);
      // The key reached the demo service too, so a service can de-duplicate on its own.
      expect(JSON.parse(first.body)).toMatchObject({ idempotencyKey: 'order-1' });
      expect(repeat.status).toBe(201);
      expect(repeat.headers['idempotent-replayed']).toBe('true');
      expect(repeat.body).toBe(first.body);
      expect(readme).toContain(`"charge": "${charge}"`);
      // The answer is kept where the example config says: ${TMPDIR:-/tmp}/breakwater/state.db.
      await expect(access(join(tempDir, 'breakwater/state.db'))).resolves.toBeUndefined();
    } finally {
      npm.kill('SIGTERM');
      await exited;
      await gone(processes, 30_000);
    }
  });

  it('says in one line that the ports are busy when it is already running, and leaves the first one serving', async () => {
    expect(await busyPorts(), 'the ports of npm start are taken by something else on this machine').toEqual([]);
    const first = await npmStart();
    try {
      const second = await run('npm', ['start']);

      expect(second.code).not.toBe(0);
      const lines = second.stderr.split('\n').filter((line) => line.trim() !== '');
      expect(lines).toEqual([expect.stringMatching(/^npm start: ports? .*15001.* already in use/)]);
      expect((await fetch('http://127.0.0.1:15020/readyz')).status).toBe(200);
    } finally {
      first.npm.kill('SIGTERM');
      await first.exited;
      await gone(first.processes, 30_000);
    }
  });
});
