// The first commands of a fresh clone, run as a new user runs them: `npm ci` stays quiet
// whichever Node runs npm, and `npm start` stops cleanly when npm is told to stop, or says in
// one line that its ports are taken.

import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { delimiter } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
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

afterEach(() => {
  for (const pid of started.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
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

/** `npm start` as a user types it, resolved once Breakwater says it started, with the processes it runs. */
async function npmStart(): Promise<{ npm: ChildProcess; exited: Promise<number | null>; processes: number[] }> {
  const npm = spawn('npm', ['start'], { cwd: root, env: userEnv, stdio: ['ignore', 'pipe', 'pipe'] });
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

// Tests of one file run one after another, so the two starts never meet.
describe('npm start', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)('stops the demo service and Breakwater when npm gets %s, leaving every port free', async (signal) => {
    expect(await busyPorts(), 'the ports of npm start are taken by something else on this machine').toEqual([]);
    const { npm, exited, processes } = await npmStart();
    expect(await statusThroughBreakwater('/anything')).toBe(200);

    npm.kill(signal);
    await exited;
    await gone(processes, 30_000);

    expect(await busyPorts()).toEqual([]);
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
