// Real Redis for the redis store's tests: redis-server and redis-cli from Debian's packages
// (scripts/install-system-tools.sh), each server on a free loopback port with a temporary
// folder and no persistence. A single server, a three-master cluster, and a sentinel watching
// a master. Every `stop()` kills the processes and removes the folders.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A loopback port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Polls `condition` until it holds; fails with `what` after `timeoutMs`. */
export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      if (await condition()) return;
    } catch {
      // Not yet: a server still starting refuses connections.
    }
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Runs redis-cli against a port; resolves with its output. */
export async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args]);
  return stdout.trim();
}

/** A started process that said `ready` on its output; rejects with the output when it exits first. */
async function startProcess(command: string, args: readonly string[], ready: RegExp): Promise<ChildProcess> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (ready.test(output)) {
        child.stdout!.off('data', onData);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code, signal) => reject(new Error(`${command} exited (${code ?? signal}) before it was ready:\n${output}`)));
  });
  // Keep reading, so a chatty server never blocks on a full pipe.
  child.stdout!.resume();
  return child;
}

async function killProcess(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  /** Kills the server as a crash would; `start()` brings it back on the same port. */
  kill(): Promise<void>;
  start(): Promise<void>;
  cli(...args: string[]): Promise<string>;
  /** Kills the server and removes its folder. */
  stop(): Promise<void>;
}

export async function startRedisServer(options: { args?: readonly string[]; port?: number } = {}): Promise<RedisServer> {
  const port = options.port ?? (await freePort());
  const dir = await mkdtemp(join(tmpdir(), 'breakwater-redis-'));
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--save', '',
    '--appendonly', 'no',
    '--daemonize', 'no',
    ...(options.args ?? []),
  ];
  let child: ChildProcess | undefined;
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    async start() {
      child = await startProcess('redis-server', args, /Ready to accept connections/);
    },
    kill: () => killProcess(child),
    cli: (...cliArgs) => redisCli(port, ...cliArgs),
    async stop() {
      await killProcess(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await server.start();
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return server;
}

export interface RedisCluster {
  readonly nodes: readonly RedisServer[];
  /** Seed URLs, as a `cluster:` list. */
  readonly urls: readonly string[];
  stop(): Promise<void>;
}

/** Three masters (no replicas) holding all 16384 slots, ready to serve; the first on `seedPort` if given. */
export async function startRedisCluster(options: { masters?: number; seedPort?: number } = {}): Promise<RedisCluster> {
  const masters = options.masters ?? 3;
  const nodes: RedisServer[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((node) => node.stop()));
  };
  try {
    for (let i = 0; i < masters; i++) {
      nodes.push(
        await startRedisServer({
          ...(i === 0 && options.seedPort !== undefined ? { port: options.seedPort } : {}),
          // The cluster bus gets a port of its own, since port + 10000 may be taken.
          args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-port', String(await freePort())],
        }),
      );
    }
    await run('redis-cli', ['--cluster', 'create', ...nodes.map((node) => `127.0.0.1:${node.port}`), '--cluster-replicas', '0', '--cluster-yes']);
    for (const node of nodes) {
      await waitFor(`cluster_state:ok on ${node.port}`, async () => (await node.cli('CLUSTER', 'INFO')).includes('cluster_state:ok'));
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { nodes, urls: nodes.map((node) => node.url), stop };
}

export interface RedisSentinelSet {
  readonly master: RedisServer;
  readonly masterName: string;
  /** The sentinel's URL, as a `sentinel.nodes` entry. */
  readonly sentinelUrl: string;
  stop(): Promise<void>;
}

/** A master and one sentinel watching it (quorum 1). */
export async function startRedisSentinel(masterName = 'mymaster'): Promise<RedisSentinelSet> {
  const master = await startRedisServer();
  const dir = await mkdtemp(join(tmpdir(), 'breakwater-sentinel-'));
  let sentinel: ChildProcess | undefined;
  const stop = async (): Promise<void> => {
    await killProcess(sentinel);
    await master.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const port = await freePort();
    const config = join(dir, 'sentinel.conf');
    // Sentinel rewrites its config file as it learns, so it gets a writable copy of its own.
    await writeFile(
      config,
      [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor ${masterName} 127.0.0.1 ${master.port} 1`, ''].join('\n'),
    );
    sentinel = await startProcess('redis-server', [config, '--sentinel'], /\+monitor master/);
    return { master, masterName, sentinelUrl: `redis://127.0.0.1:${port}`, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
