// The four ways the client reaches the upstream: straight, through nginx, through HAProxy and
// through Breakwater, each proxy started from its file in bench/resilience/configs/.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Pool } from 'undici';
import type { Child, ChildProcesses } from '../lib/processes.ts';
import { freePort, waitForListening } from '../lib/processes.ts';
import { renderTemplate } from '../lib/template.ts';
import { hasCommand, repoRoot } from '../targets.ts';

export type SystemName = 'direct' | 'nginx' | 'haproxy' | 'breakwater';
export const systemNames: readonly SystemName[] = ['direct', 'nginx', 'haproxy', 'breakwater'];

/**
 * Copies Breakwater's sources into `dir` once, so that one run measures one version of it even
 * while the checkout changes: `commit`, or the working tree as it is when `workingTree`.
 * Returns the folder to run it from; its node_modules are the checkout's.
 */
export function snapshotBreakwater(dir: string, commit: string, workingTree: boolean): string {
  mkdirSync(dir, { recursive: true });
  if (workingTree) {
    cpSync(path.join(repoRoot, 'src'), path.join(dir, 'src'), { recursive: true });
    cpSync(path.join(repoRoot, 'package.json'), path.join(dir, 'package.json'));
  } else {
    const archive = path.join(dir, 'head.tar');
    execFileSync('git', ['archive', '--format=tar', '-o', archive, commit, 'src', 'package.json'], { cwd: repoRoot });
    execFileSync('tar', ['-xf', archive, '-C', dir]);
  }
  symlinkSync(path.join(repoRoot, 'node_modules'), path.join(dir, 'node_modules'));
  return dir;
}

/** The file each proxy runs with, relative to the repository. */
export const configFiles: Readonly<Record<Exclude<SystemName, 'direct'>, string>> = {
  nginx: 'bench/resilience/configs/nginx.conf.tmpl',
  haproxy: 'bench/resilience/configs/haproxy.cfg.tmpl',
  breakwater: 'bench/resilience/configs/breakwater.yaml.tmpl',
};

export interface Ports {
  readonly 'orders-a': number;
  readonly 'orders-b': number;
  readonly 'catalog-a': number;
}

/** The endpoints' ports by name, checked to hold every endpoint the configs refer to. */
export function portsOf(byName: Readonly<Record<string, number>>): Ports {
  const port = (name: keyof Ports): number => {
    const value = byName[name];
    if (value === undefined) throw new Error(`no port for ${name}`);
    return value;
  };
  return { 'orders-a': port('orders-a'), 'orders-b': port('orders-b'), 'catalog-a': port('catalog-a') };
}

export interface SystemContext {
  readonly children: ChildProcesses;
  /** A fresh folder for this start. */
  readonly dir: string;
  readonly ports: Ports;
  /** taskset CPU list for the proxy. */
  readonly cores: string;
  /** Where Breakwater's sources were copied (snapshotBreakwater). */
  readonly breakwaterRoot: string;
}

export interface RunningSystem {
  /** Where the client sends each service's requests (several: it takes them in turn). */
  readonly origins: { readonly orders: readonly string[]; readonly catalog: readonly string[] };
  /** The proxy's process; absent for direct. */
  readonly process: Child | undefined;
  /** The file Breakwater's access log goes to; absent for the others. */
  readonly accessLog: string | undefined;
  stop(): Promise<void>;
}

/** Why the system cannot run here, or undefined when it can. */
export function unavailableReason(system: SystemName): string | undefined {
  if (system === 'nginx' || system === 'haproxy') {
    return hasCommand(system) ? undefined : `${system} is not installed (bash scripts/install-system-tools.sh bench)`;
  }
  return undefined;
}

function render(context: SystemContext, template: string, file: string, values: Record<string, number>): string {
  const text = readFileSync(path.join(repoRoot, template), 'utf8');
  const config = path.join(context.dir, file);
  writeFileSync(
    config,
    renderTemplate(text, {
      ...values,
      WORK: context.dir,
      ORDERS_A: context.ports['orders-a'],
      ORDERS_B: context.ports['orders-b'],
      CATALOG_A: context.ports['catalog-a'],
    }),
  );
  return config;
}

async function launch(system: Exclude<SystemName, 'direct'>, context: SystemContext, port: number): Promise<Child> {
  const log = path.join(context.dir, 'stderr.log');
  const template = configFiles[system];
  switch (system) {
    case 'nginx': {
      const config = render(context, template, 'nginx.conf', { PORT: port });
      return context.children.start({ name: 'nginx', cores: context.cores, command: 'nginx', args: ['-p', context.dir, '-e', 'stderr', '-c', config], logFile: log, stdout: 'log' });
    }
    case 'haproxy': {
      const config = render(context, template, 'haproxy.cfg', { PORT: port });
      return context.children.start({ name: 'haproxy', cores: context.cores, command: 'haproxy', args: ['-db', '-f', config], logFile: log, stdout: 'log' });
    }
    case 'breakwater': {
      const config = render(context, template, 'breakwater.yaml', { PORT: port, TELEMETRY_PORT: await freePort(), ADMIN_PORT: await freePort() });
      // Breakwater's access log (on by default) goes to the log file: its durations tell
      // Breakwater's own time from the machine's in the report.
      return context.children.start({
        name: 'breakwater',
        cores: context.cores,
        command: process.execPath,
        args: [path.join(context.breakwaterRoot, 'src', 'cli', 'main.ts'), 'run', '--config', config],
        cwd: context.breakwaterRoot,
        logFile: log,
        stdout: 'log',
      });
    }
    default:
      return system satisfies never;
  }
}

/**
 * Sends a few requests per service through the system and checks they succeed: the proxy
 * routes, and its upstream connections are open before the measured run.
 */
async function warmUp(origins: RunningSystem['origins']): Promise<void> {
  for (const [service, list] of Object.entries(origins)) {
    for (const origin of list) {
      const pool = new Pool(origin, { connections: 4 });
      try {
        for (let i = 0; i < 8; i++) {
          const response = await pool.request({ method: 'GET', path: `/${service}/warm-up-${i}`, signal: AbortSignal.timeout(5000) });
          await response.body.dump();
          if (response.statusCode !== 200) throw new Error(`GET ${origin}/${service}/warm-up-${i} answered ${response.statusCode}`);
        }
      } finally {
        await pool.destroy();
      }
    }
  }
}

/**
 * Starts the system in front of the upstream and warms it up. A port picked free can be taken
 * before the proxy binds it, so a proxy that exits at start is tried again.
 */
export async function startSystem(system: SystemName, context: SystemContext): Promise<RunningSystem> {
  const url = (port: number): string => `http://127.0.0.1:${port}`;
  if (system === 'direct') {
    const origins = { orders: [url(context.ports['orders-a']), url(context.ports['orders-b'])], catalog: [url(context.ports['catalog-a'])] };
    await warmUp(origins);
    return { origins, process: undefined, accessLog: undefined, stop: async () => {} };
  }
  mkdirSync(context.dir, { recursive: true, mode: 0o755 });
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = await launch(system, context, port);
    try {
      await waitForListening(child, port, system === 'breakwater' ? 20_000 : 10_000);
      const origins = { orders: [url(port)], catalog: [url(port)] };
      await warmUp(origins);
      const accessLog = system === 'breakwater' ? child.logFile : undefined;
      return { origins, process: child, accessLog, stop: () => child.stop() };
    } catch (error) {
      const exitedByItself = child.hasExited;
      await child.stop();
      if (!exitedByItself || attempt === 3) throw error;
    }
  }
}
