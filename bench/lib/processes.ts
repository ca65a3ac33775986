// Child processes of the benchmark: started pinned to cores with taskset, each in its own
// process group so that stopping one also stops the workers it forked (nginx), and all of them
// tracked so that none outlives the harness, whether it ends, fails or is interrupted.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface StartOptions {
  /** Shown in messages. */
  name: string;
  /** taskset CPU list, e.g. "1". */
  cores: string;
  command: string;
  args: readonly string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** stderr, and stdout unless it is discarded or captured, go to this file. */
  logFile: string;
  stdout: 'log' | 'discard' | 'capture';
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class Child {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  readonly exited: Promise<Exit>;
  #exit: Exit | undefined;
  #stdout = '';

  constructor(name: string, child: ChildProcess, logFile: string) {
    this.name = name;
    this.logFile = logFile;
    this.exited = new Promise((resolve) => {
      const settle = (exit: Exit): void => {
        this.#exit ??= exit;
        resolve(this.#exit);
      };
      // 'close' rather than 'exit': captured output is complete only once stdio has closed
      child.once('close', (code, signal) => settle({ code, signal }));
      child.once('error', () => settle({ code: null, signal: null }));
    });
    if (child.pid === undefined) throw new Error(`${name}: could not start ${child.spawnfile}`);
    this.pid = child.pid;
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      this.#stdout += chunk;
    });
  }

  get hasExited(): boolean {
    return this.#exit !== undefined;
  }

  get stdout(): string {
    return this.#stdout;
  }

  /** The last lines the process wrote to its log, for error messages. */
  logTail(lines = 15): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /** Sends a signal to the whole process group; false when nothing was left to signal. */
  signalGroup(signal: NodeJS.Signals): boolean {
    try {
      process.kill(-this.pid, signal);
      return true;
    } catch {
      return false;
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
  async stop(graceMs = 3000): Promise<void> {
    if (!this.hasExited) {
      this.signalGroup('SIGTERM');
      const exitedInTime = await Promise.race([this.exited.then(() => true), sleep(graceMs, false)]);
      if (!exitedInTime) this.signalGroup('SIGKILL');
      await this.exited;
    }
    // workers whose parent is gone still belong to the group
    this.signalGroup('SIGKILL');
  }
}

export class ChildProcesses {
  readonly #running = new Set<Child>();

  start(options: StartOptions): Child {
    const log = openSync(options.logFile, 'a');
    const stdout = options.stdout === 'log' ? log : options.stdout === 'discard' ? 'ignore' : 'pipe';
    try {
      const spawned = spawn('taskset', ['--cpu-list', options.cores, options.command, ...options.args], {
        cwd: options.cwd,
        env: options.env ?? process.env,
        stdio: ['ignore', stdout, log],
        detached: true,
      });
      const child = new Child(options.name, spawned, options.logFile);
      this.#running.add(child);
      void child.exited.then(() => this.#running.delete(child));
      return child;
    } finally {
      closeSync(log);
    }
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#running].map((child) => child.stop(1000)));
  }

  /** Last resort when the harness exits: no waiting possible, so kill outright. */
  killAllNow(): void {
    for (const child of this.#running) child.signalGroup('SIGKILL');
  }
}

/** A port that was free a moment ago on 127.0.0.1, for a child to listen on. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port assigned');
  return address.port;
}

function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Waits until the child accepts connections on the port; fails if it exits or takes too long. */
export async function waitForListening(child: Child, port: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await connects(port))) {
    if (child.hasExited) {
      const exit = await child.exited;
      throw new Error(`${child.name} exited (${exit.signal ?? `code ${exit.code}`}) before listening:\n${child.logTail()}`);
    }
    if (performance.now() > deadline) {
      throw new Error(`${child.name} did not listen on 127.0.0.1:${port} within ${timeoutMs} ms:\n${child.logTail()}`);
    }
    await sleep(50);
  }
}
