// The first commands of a fresh clone, run as a new user runs them: `npm ci` stays quiet
// whichever Node runs npm, every command of the README's tour prints what the README says
// against `npm start`, and `npm start` stops cleanly when npm is told to stop, or says in one
// line that its ports are taken.

import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { access, cp, mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { firstMissing, lineMatches, outputLines, parseTour } from '../support/readme-tour.ts';

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

/** What the terminal running `npm start` shows, line by line, and a way to wait for a line. */
class Terminal {
  readonly lines: string[] = [];
  readonly #added = new EventEmitter();

  add(line: string): void {
    this.lines.push(line);
    this.#added.emit('line');
  }

  /** Resolves once a line from index `from` on matches `expected` (`…` for any text); rejects after `ms`. */
  waitFor(expected: string, from: number, ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      let searched = from;
      const check = (): boolean => {
        for (; searched < this.lines.length; searched++) {
          if (lineMatches(expected, this.lines[searched]!)) return true;
        }
        return false;
      };
      if (check()) return resolve();
      const onLine = (): void => {
        if (!check()) return;
        clearTimeout(timer);
        this.#added.off('line', onLine);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#added.off('line', onLine);
        reject(new Error(`the npm start terminal did not show, within ${ms} ms:\n${expected}\nIt showed:\n${this.lines.slice(from).join('\n')}`));
      }, ms);
      this.#added.on('line', onLine);
    });
  }
}

interface NpmStart {
  readonly npm: ChildProcess;
  readonly exited: Promise<number | null>;
  readonly processes: number[];
  readonly terminal: Terminal;
}

/**
 * `npm start` as a user types it, in `cwd` (a checkout), resolved once Breakwater says it
 * started, with the processes it runs and what its terminal shows.
 */
async function npmStart(cwd = root): Promise<NpmStart> {
  const npm = spawn('npm', ['start'], { cwd, env: { ...userEnv, TMPDIR: tempDir }, stdio: ['ignore', 'pipe', 'pipe'] });
  const terminal = new Terminal();
  createInterface({ input: npm.stderr! }).on('line', (line) => terminal.add(line));
  const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: npm.stdout! }).on('line', (line) => {
      terminal.add(line);
      if (line.includes('"msg":"breakwater started"')) resolve();
    });
    void exited.then((code) => reject(new Error(`npm start exited with ${code} before Breakwater started:\n${terminal.lines.join('\n')}`)));
  });
  // npm runs the demo script, which runs Breakwater.
  const demo = await childrenOf(npm.pid!);
  const proxies = (await Promise.all(demo.map(childrenOf))).flat();
  started.push(npm.pid!, ...demo, ...proxies);
  expect(demo).toHaveLength(1);
  expect(proxies).toHaveLength(1);
  return { npm, exited, processes: [...demo, ...proxies], terminal };
}

/** A command of the tour run as a user runs it: by bash, in the checkout; stdout and stderr together. */
function shell(command: string, cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    // Its own process group, so that a command that hangs is stopped with all it started.
    const child = spawn('bash', ['-c', command], { cwd, env: { ...userEnv, TMPDIR: tempDir }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => {
      process.kill(-child.pid!, 'SIGKILL');
      reject(new Error(`still running after ${commandTimeoutMs} ms: ${command}\n${output}`));
    }, commandTimeoutMs);
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(timer);
      resolve(output);
    });
  });
}

const commandTimeoutMs = 30_000;
/** How long a command that reads Breakwater's state may take to show what the README says. */
const settleMs = 10_000;
/** How long a line may take to reach the `npm start` terminal (the access log is written each second). */
const logWaitMs = 15_000;

/**
 * Commands that only read Breakwater's state: a GET on the admin or telemetry port, and
 * `dlq list`. A user who sees an answer from an instant too early runs them again; so does
 * the test. Commands that change something run once.
 */
function readsState(command: string): boolean {
  return /^curl -s http:\/\/127\.0\.0\.1:150(00|20)\/\S*( \| grep '[^']*')?$/.test(command) || command.startsWith('npm run -s breakwater -- dlq list');
}

/** A copy of the checkout to run the tour in, since the tour edits config/breakwater.yaml. */
async function checkoutCopy(): Promise<string> {
  const copy = join(tempDir, 'breakwater');
  for (const path of ['package.json', '.npmrc', 'tsconfig.json', 'bin', 'config', 'scripts', 'src']) await cp(join(root, path), join(copy, path), { recursive: true });
  await symlink(join(root, 'node_modules'), join(copy, 'node_modules'), 'dir');
  return copy;
}

/** The GET endpoints the README's table of ports lists for a port: its paths with no method and no placeholder. */
function listedEndpoints(readme: string, address: string): string[] {
  const row = readme.split('\n').find((line) => line.startsWith(`| \`${address}\``));
  if (row === undefined) throw new Error(`the README's table of ports has no row for ${address}`);
  return [...row.matchAll(/`(\/[^`]*)`/g)].map((match) => match[1]!).filter((path) => !/[A-Z]/.test(path));
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

  it('prints what the README says for every command of its tour, run against it', { timeout: 180_000 }, async () => {
    expect(await busyPorts(), 'the ports of npm start are taken by something else on this machine').toEqual([]);
    const readme = await readFile(`${root}README.md`, 'utf8');
    const tour = parseTour(readme);
    const copy = await checkoutCopy();
    const { npm, exited, processes, terminal } = await npmStart(copy);
    try {
      for (const step of tour) {
        const where = `README.md:${step.line}: ${step.command}`;
        const from = terminal.lines.length;
        const settled = performance.now() + settleMs;
        let output = await shell(step.command, copy);
        let missing = firstMissing(step.output, outputLines(output));
        while (missing !== undefined && readsState(step.command) && performance.now() < settled) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          output = await shell(step.command, copy);
          missing = firstMissing(step.output, outputLines(output));
        }
        expect(missing, `${where}\nprinted no line matching the README's\n${missing}\nIt printed:\n${output}`).toBeUndefined();
        for (const line of step.log) await terminal.waitFor(line, from, logWaitMs);
      }

      // The endpoints the table of ports lists are there.
      for (const [address, port] of [['0.0.0.0:15020', 15020], ['127.0.0.1:15000', 15000]] as const) {
        const paths = listedEndpoints(readme, address);
        expect(paths.length).toBeGreaterThan(2);
        for (const path of paths) {
          expect((await fetch(`http://127.0.0.1:${port}${path}`)).status, `GET ${path} on port ${port}`).toBe(200);
        }
      }
      // Step 4's store is a SQLite file in the temp folder, as the example config says: ${TMPDIR:-/tmp}/breakwater/state.db.
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
