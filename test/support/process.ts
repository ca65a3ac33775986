import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const repoRoot = new URL('../../', import.meta.url).pathname;
const cli = join(repoRoot, 'src/cli/main.ts');

export interface BreakwaterProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly configPath: string;
  readonly ports: { listeners: Record<string, number>; telemetry: number; admin: number };
  /** Parsed JSON lines from its stdout so far. */
  readonly lines: Record<string, unknown>[];
  readonly stderr: () => string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  url(listener?: string): string;
  /** Sends SIGKILL if it is still running, and resolves once it has exited (test clean-up). */
  kill(): Promise<void>;
}

/**
 * Runs `breakwater run` as its own process (the way users run it) on `yaml`, and resolves
 * once it logs that it started, with the ports it bound.
 */
export async function spawnBreakwater(yaml: string, options: { configPath?: string } = {}): Promise<BreakwaterProcess> {
  let configPath = options.configPath;
  let ownDir: string | undefined;
  if (configPath === undefined) {
    ownDir = await mkdtemp(join(tmpdir(), 'breakwater-proc-'));
    configPath = join(ownDir, 'breakwater.yaml');
    await writeFile(configPath, yaml);
  }
  const child = spawn(process.execPath, [cli, 'run', '--config', configPath], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  // The config folder this function made goes with the process, so tests leave nothing behind.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      if (ownDir === undefined) resolve({ code, signal });
      else void rm(ownDir, { recursive: true, force: true }).finally(() => resolve({ code, signal }));
    }),
  );
  const started = new Promise<BreakwaterProcess['ports']>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      lines.push(parsed);
      if (parsed.msg === 'breakwater started') {
        resolve({
          listeners: parsed.listeners as Record<string, number>,
          telemetry: parsed.telemetry as number,
          admin: parsed.admin as number,
        });
      }
    });
    void exited.then(({ code }) => reject(new Error(`breakwater exited with ${code} before it started:\n${stderr}`)));
  });
  const ports = await started;
  return {
    child,
    pid: child.pid!,
    configPath,
    ports,
    lines,
    stderr: () => stderr,
    exited,
    url: (listener = 'outbound') => `http://127.0.0.1:${ports.listeners[listener]!}`,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Resident set size of a process, in bytes, from /proc. */
export async function residentBytes(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  if (match === null) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]) * 1024;
}
