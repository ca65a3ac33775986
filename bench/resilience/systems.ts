// The four ways the client reaches the upstream: straight, through nginx, through HAProxy and
// through Breakwater, each proxy started from its file in bench/resilience/configs/; and
// variants of Breakwater's file with one policy changed, which some scenarios set beside it.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Pool } from 'undici';
import { parseDocument } from 'yaml';
import type { Child, ChildProcesses } from '../lib/processes.ts';
import { freePort, waitForListening } from '../lib/processes.ts';
import { renderTemplate } from '../lib/template.ts';
import { hasCommand, repoRoot } from '../targets.ts';

export type PeerName = 'direct' | 'nginx' | 'haproxy' | 'breakwater';
/** Breakwater's file with one policy of the orders route changed, for a comparison. */
export type VariantName = 'breakwater-no-hedge' | 'breakwater-fixed-tight' | 'breakwater-fixed-loose';
export type SystemName = PeerName | VariantName;
/** The systems every scenario runs unless it names its own. */
export const systemNames: readonly PeerName[] = ['direct', 'nginx', 'haproxy', 'breakwater'];
export const variantNames: readonly VariantName[] = ['breakwater-no-hedge', 'breakwater-fixed-tight', 'breakwater-fixed-loose'];
export const allSystemNames: readonly SystemName[] = [...systemNames, ...variantNames];

export function isVariant(system: SystemName): system is VariantName {
  return (variantNames as readonly string[]).includes(system);
}

/** A fixed per-try timeout for the variants that compare one with the adaptive timeout. */
export const fixedPerTry = {
  /** What a user would pick for a service answering in 10 ms: ten times that. */
  tightMs: 100,
  /** Loose enough for the slowest healthy answer of the same service on a slow day. */
  looseMs: 1000,
} as const;

/** Edits one route of a parsed YAML file, at the path given from the route. */
interface RouteEditor {
  delete(path: readonly string[]): void;
  set(path: readonly string[], value: unknown): void;
}

/**
 * What each variant changes in Breakwater's file, on the orders route, and how the report
 * names it. The variants with a fixed per-try timeout drop the hedge block as well: they
 * measure the per-try timeout alone, so that no hedge cancels an attempt before it times out.
 */
export const variants: Readonly<Record<VariantName, { readonly title: string; readonly change: (route: RouteEditor) => void }>> = {
  'breakwater-no-hedge': {
    title: 'Breakwater, no hedging',
    change: (route) => route.delete(['hedge']),
  },
  'breakwater-fixed-tight': {
    title: `Breakwater, fixed ${fixedPerTry.tightMs} ms per-try timeout`,
    change: (route) => {
      route.delete(['hedge']);
      route.set(['retry', 'perTryTimeout'], `${fixedPerTry.tightMs}ms`);
    },
  },
  'breakwater-fixed-loose': {
    title: `Breakwater, fixed ${fixedPerTry.looseMs / 1000} s per-try timeout`,
    change: (route) => {
      route.delete(['hedge']);
      route.set(['retry', 'perTryTimeout'], `${fixedPerTry.looseMs}ms`);
    },
  },
};

/** Breakwater's file as `variant` changes it, comments kept; the orders route is found by name. */
export function variantConfig(text: string, variant: VariantName): string {
  const document = parseDocument(text);
  const names = (document.toJS() as { routes: { name: string }[] }).routes.map((route) => route.name);
  const index = names.indexOf('orders');
  if (index < 0) throw new Error('the Breakwater file has no orders route');
  variants[variant].change({
    delete: (at) => document.deleteIn(['routes', index, ...at]),
    set: (at, value) => document.setIn(['routes', index, ...at], value),
  });
  return document.toString();
}

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
export const configFiles: Readonly<Record<Exclude<PeerName, 'direct'>, string>> = {
  nginx: 'bench/resilience/configs/nginx.conf.tmpl',
  haproxy: 'bench/resilience/configs/haproxy.cfg.tmpl',
  breakwater: 'bench/resilience/configs/breakwater.yaml.tmpl',
};

export interface Ports {
  /** The orders replicas in order (orders-a, orders-b...): two in most scenarios, three in some. */
  readonly orders: readonly { readonly name: string; readonly port: number }[];
  readonly 'catalog-a': number;
}

/** The endpoints' ports by name, checked to hold every endpoint the configs refer to. */
export function portsOf(byName: Readonly<Record<string, number>>): Ports {
  const catalog = byName['catalog-a'];
  if (catalog === undefined) throw new Error('no port for catalog-a');
  const orders = Object.entries(byName)
    .filter(([name]) => name.startsWith('orders-'))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, port]) => ({ name, port }));
  if (orders.length < 2) throw new Error(`orders needs at least two replicas, got ${orders.length}`);
  return { orders, 'catalog-a': catalog };
}

/**
 * Repeats each line of `text` that holds @ORDERS@ once per orders replica, with @ORDERS@ its
 * port and @ORDERS_NAME@ its name: the files list one server line, as a user writes it, and
 * get as many as the scenario has replicas.
 */
export function repeatReplicaLines(text: string, orders: Ports['orders']): string {
  return text
    .split('\n')
    .flatMap((line) =>
      line.includes('@ORDERS@') ? orders.map(({ name, port }) => line.replaceAll('@ORDERS@', String(port)).replaceAll('@ORDERS_NAME@', name)) : [line],
    )
    .join('\n');
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

function render(context: SystemContext, template: string, file: string, values: Record<string, number>, edit = (text: string): string => text): string {
  const text = repeatReplicaLines(readFileSync(path.join(repoRoot, template), 'utf8'), context.ports.orders);
  const config = path.join(context.dir, file);
  writeFileSync(
    config,
    edit(
      renderTemplate(text, {
        ...values,
        WORK: context.dir,
        CATALOG_A: context.ports['catalog-a'],
      }),
    ),
  );
  return config;
}

async function launch(system: Exclude<SystemName, 'direct'>, context: SystemContext, port: number): Promise<Child> {
  const log = path.join(context.dir, 'stderr.log');
  if (isVariant(system)) {
    const config = render(context, configFiles.breakwater, 'breakwater.yaml', { PORT: port, TELEMETRY_PORT: await freePort(), ADMIN_PORT: await freePort() }, (text) =>
      variantConfig(text, system),
    );
    return startBreakwater(context, config, log);
  }
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
      return startBreakwater(context, config, log);
    }
    default:
      return system satisfies never;
  }
}

function startBreakwater(context: SystemContext, config: string, log: string): Child {
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

/**
 * The traffic a system serves before the measured run, as a proxy in service has served
 * traffic before any fault: per service, this many requests, this many at a time, for at most
 * this long. The upstream answers them at its normal latency, so a proxy that learns from
 * latencies (Breakwater's adaptive limits) starts from what the replicas normally do, and a
 * just-in-time compiler (Breakwater's Node.js) has compiled its request path.
 */
export const warmUpTraffic = { requests: 1500, concurrency: 16, maxMs: 4000 } as const;

/**
 * Sends a few requests per service through the system and checks they succeed: the proxy
 * routes, and its upstream connections are open before the measured run. Then serves it the
 * warm-up traffic.
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
  for (const [service, list] of Object.entries(origins)) await serveWarmUp(service, list);
}

/** Sends the warm-up traffic of one service, spread over its origins; failures do not matter here. */
async function serveWarmUp(service: string, origins: readonly string[]): Promise<void> {
  const pools = origins.map((origin) => new Pool(origin, { connections: warmUpTraffic.concurrency }));
  const until = performance.now() + warmUpTraffic.maxMs;
  let sent = 0;
  const worker = async (): Promise<void> => {
    while (sent < warmUpTraffic.requests && performance.now() < until) {
      const n = sent++;
      try {
        const response = await pools[n % pools.length]!.request({ method: 'GET', path: `/${service}/warm-up-${n}`, signal: AbortSignal.timeout(5000) });
        await response.body.dump();
      } catch {
        // a warm-up request that fails is no reason not to measure
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: warmUpTraffic.concurrency }, worker));
  } finally {
    await Promise.all(pools.map((pool) => pool.destroy()));
  }
}

/**
 * Starts the system in front of the upstream and warms it up. A port picked free can be taken
 * before the proxy binds it, so a proxy that exits at start is tried again.
 */
export async function startSystem(system: SystemName, context: SystemContext): Promise<RunningSystem> {
  const url = (port: number): string => `http://127.0.0.1:${port}`;
  if (system === 'direct') {
    const origins = { orders: context.ports.orders.map(({ port }) => url(port)), catalog: [url(context.ports['catalog-a'])] };
    await warmUp(origins);
    return { origins, process: undefined, accessLog: undefined, stop: async () => {} };
  }
  mkdirSync(context.dir, { recursive: true, mode: 0o755 });
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = await launch(system, context, port);
    try {
      const breakwater = system === 'breakwater' || isVariant(system);
      await waitForListening(child, port, breakwater ? 20_000 : 10_000);
      const origins = { orders: [url(port)], catalog: [url(port)] };
      await warmUp(origins);
      const accessLog = breakwater ? child.logFile : undefined;
      return { origins, process: child, accessLog, stop: () => child.stop() };
    } catch (error) {
      const exitedByItself = child.hasExited;
      await child.stop();
      if (!exitedByItself || attempt === 3) throw error;
    }
  }
}
