// What the benchmark measures, as data: each target names how its proxy is started. Another
// Breakwater configuration is one more entry with its YAML template in bench/peers/.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { Child, ChildProcesses } from './lib/processes.ts';
import { freePort, waitForListening } from './lib/processes.ts';
import * as grpc from '@grpc/grpc-js';
import { grpcBenchPath, grpcFrame } from './lib/h2load.ts';
import { renderTemplate } from './lib/template.ts';
import { nodeEnvironment, nodeFlags } from '../scripts/node-runtime.ts';

export const repoRoot = path.join(import.meta.dirname, '..');
const peersDir = path.join(import.meta.dirname, 'peers');
/**
 * The compiled command-line entry of the Breakwater checkout at `root` (this one by default):
 * the benchmark runs what the container image runs, not the TypeScript sources, whose type
 * stripping costs memory a deployed Breakwater does not pay.
 */
const entryOf = (root = repoRoot): string => path.join(root, 'dist', 'cli', 'main.js');

/** Compiles the Breakwater checkout at `root` to dist/ (`npm run build`), as the image's build does. */
export function buildBreakwater(root = repoRoot): void {
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
}

/** Size of the upstream's fixed response body; every target must pass it through whole. */
export const upstreamBodyBytes = 1024;

/** Size of the gRPC rows' messages: the request's, and the gRPC upstream's answer. */
export const grpcRequestBytes = 100;
export const grpcResponseBytes = 1024;

export type Launch =
  | { kind: 'direct' }
  | { kind: 'nginx'; template: string }
  | { kind: 'haproxy'; template: string }
  | {
      kind: 'node';
      script: string;
      /** 'breakwater': run with Breakwater's V8 flags and malloc settings (scripts/node-runtime.ts); absent: Node's defaults. */
      runtime?: 'breakwater';
    }
  | {
      kind: 'breakwater';
      template: string;
      /** Share of requests traced, exported to a sink. */
      traceRatio?: number;
      /** A checkout of another revision to run instead of this one (--baseline). */
      root?: string;
      /** For the templates with a store (keyed, dead-letter): the kind of that store. */
      store?: 'memory' | 'sqlite' | 'redis';
    };

/** What wrk sends: GETs, small JSON POSTs, or the same POSTs each with an Idempotency-Key of its own. */
export type RequestShape = 'get' | 'post' | 'keyed-post';

export interface Target {
  name: string;
  description: string;
  launch: Launch;
  /** What wrk sends; GETs when absent. */
  request?: RequestShape;
  /**
   * grpc: the row makes gRPC unary calls (h2load, over h2c) to the gRPC upstream, and has a
   * table of its own; absent: HTTP/1.1 with wrk.
   */
  protocol?: 'grpc';
  /** The row the interleaved phase compares this one with; plain `breakwater` when absent. */
  comparedWith?: string;
}

export const targets: readonly Target[] = [
  { name: 'direct', description: 'wrk straight to the upstream, no proxy', launch: { kind: 'direct' } },
  {
    name: 'nginx',
    description: 'nginx reverse proxy, 1 worker, upstream keep-alive',
    launch: { kind: 'nginx', template: 'nginx-proxy.conf.tmpl' },
  },
  {
    name: 'haproxy',
    description: 'HAProxy, 1 thread, http-reuse always',
    launch: { kind: 'haproxy', template: 'haproxy.cfg.tmpl' },
  },
  {
    name: 'http-proxy',
    description: 'node http-proxy with a keep-alive agent',
    launch: { kind: 'node', script: 'http-proxy.ts' },
  },
  {
    name: 'undici-passthrough',
    description: 'node:http + undici pool.stream, no policies: the ceiling of one Node process',
    launch: { kind: 'node', script: 'undici-passthrough.ts' },
  },
  {
    name: 'undici-passthrough-capped',
    description: 'the undici passthrough run as Breakwater runs: the same V8 flags (a 2 MiB young generation) and malloc settings',
    launch: { kind: 'node', script: 'undici-passthrough.ts', runtime: 'breakwater' },
  },
  {
    name: 'breakwater',
    description: 'Breakwater, one route, no policies',
    launch: { kind: 'breakwater', template: 'breakwater.yaml.tmpl' },
  },
  {
    name: 'breakwater-policies',
    description: 'Breakwater with deadline, fallback, bulkhead, retry, breaker and timeout on the route',
    launch: { kind: 'breakwater', template: 'breakwater-policies.yaml.tmpl' },
  },
  {
    name: 'breakwater-tail',
    description: 'breakwater-policies with hedging at a percentile and an adaptive per-try timeout, set so that neither fires',
    launch: { kind: 'breakwater', template: 'breakwater-tail.yaml.tmpl' },
  },
  {
    name: 'breakwater-traced',
    description: 'Breakwater, one route, no policies, 10% of requests traced and exported over OTLP/HTTP',
    launch: { kind: 'breakwater', template: 'breakwater.yaml.tmpl', traceRatio: 0.1 },
  },
  {
    name: 'breakwater-post',
    description: 'Breakwater, one route, no policies, small JSON POSTs',
    launch: { kind: 'breakwater', template: 'breakwater.yaml.tmpl' },
    request: 'post',
  },
  ...(['memory', 'sqlite', 'redis'] as const).map(
    (store): Target => ({
      name: `breakwater-keyed-${store}`,
      description: `Breakwater with idempotency keys in a ${store} store, the same POSTs each with a key of its own`,
      launch: { kind: 'breakwater', template: 'breakwater-keyed.yaml.tmpl', store },
      request: 'keyed-post',
      comparedWith: 'breakwater-post',
    }),
  ),
  {
    name: 'breakwater-dead-letter',
    description: 'Breakwater keeping dead letters in a sqlite store, the same POSTs, none failing: the cost on the happy path',
    launch: { kind: 'breakwater', template: 'breakwater-dead-letter.yaml.tmpl', store: 'sqlite' },
    request: 'post',
    comparedWith: 'breakwater-post',
  },
  {
    name: 'grpc-direct',
    description: 'gRPC unary calls straight to the gRPC upstream, no proxy',
    launch: { kind: 'direct' },
    protocol: 'grpc',
  },
  {
    name: 'grpc-nginx',
    description: 'nginx grpc_pass, 1 worker, h2c in, upstream keep-alive',
    launch: { kind: 'nginx', template: 'nginx-grpc.conf.tmpl' },
    protocol: 'grpc',
  },
  {
    name: 'grpc-node-http2',
    description: 'node:http2 in and out on the stream API, no policies: the ceiling of one Node process for gRPC',
    launch: { kind: 'node', script: 'node-http2-passthrough.ts' },
    protocol: 'grpc',
  },
  {
    name: 'grpc-breakwater',
    description: 'Breakwater, one route to an h2c upstream, no policies',
    launch: { kind: 'breakwater', template: 'breakwater-grpc.yaml.tmpl' },
    protocol: 'grpc',
  },
  {
    name: 'grpc-breakwater-policies',
    description: 'Breakwater with deadline, fallback, bulkhead, retry on gRPC statuses, breaker and timeout on the route',
    launch: { kind: 'breakwater', template: 'breakwater-grpc-policies.yaml.tmpl' },
    protocol: 'grpc',
  },
];

/**
 * The plain and policies rows again, run from the checkout at `root` (another revision of
 * Breakwater), named `<row>@<label>`: the interleaved phase then compares a change with the code
 * before it, run by run.
 */
export function baselineTargets(root: string, label: string): Target[] {
  return targets
    .filter((target) => target.name === 'breakwater' || target.name === 'breakwater-policies')
    .map((target) => ({
      name: `${target.name}@${label}`,
      description: `${target.description}, at ${label}`,
      launch: { ...(target.launch as Extract<Launch, { kind: 'breakwater' }>), root },
    }));
}

export interface Upstream {
  host: string;
  port: number;
}

export interface LaunchContext {
  children: ChildProcesses;
  /** A Redis server on the load core, for the rows with a redis store; absent when none runs. */
  redisUrl?: string;
  /** Scratch folder of this benchmark run (under os.tmpdir()). */
  workDir: string;
  upstream: Upstream;
  /** The gRPC upstream of the gRPC rows; absent when none of them runs. */
  grpcUpstream?: Upstream;
  /** taskset CPU list for the proxy. */
  cores: string;
}

export interface RunningTarget {
  url: string;
  /** Breakwater's telemetry server, for the store figures; absent for other proxies. */
  telemetryUrl?: string;
  /** The proxy's process, whose tree is measured; absent for direct. */
  process: Child | undefined;
  stop(): Promise<void>;
}

export function hasCommand(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Why the target cannot run on this machine, or undefined when it can. */
export function unavailableReason(target: Target): string | undefined {
  if (target.protocol === 'grpc' && !hasCommand('h2load')) return 'h2load is not installed (bash scripts/install-system-tools.sh bench)';
  const launch = target.launch;
  switch (launch.kind) {
    case 'direct':
      return undefined;
    case 'nginx':
    case 'haproxy':
      return hasCommand(launch.kind) ? undefined : `${launch.kind} is not installed (bash scripts/install-system-tools.sh bench)`;
    case 'node':
      return existsSync(path.join(peersDir, launch.script)) ? undefined : `bench/peers/${launch.script} is missing`;
    case 'breakwater':
      if (!existsSync(entryOf(launch.root))) return `${path.relative(repoRoot, entryOf(launch.root))} does not exist (npm run build)`;
      return launch.store === 'redis' && !hasCommand('redis-server') ? 'redis-server is not installed (bash scripts/install-system-tools.sh test)' : undefined;
    default:
      return launch satisfies never;
  }
}

let traceSink: Promise<number> | undefined;

/**
 * A collector stand-in for traced targets: it accepts OTLP/HTTP exports and drops them. It
 * runs in the harness, outside the measured process tree, as a real collector would.
 */
function traceSinkPort(): Promise<number> {
  traceSink ??= new Promise((resolve) => {
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    });
    server.listen(0, '127.0.0.1', () => {
      server.unref();
      resolve((server.address() as { port: number }).port);
    });
  });
  return traceSink;
}

let startCount = 0;

/** The upstream a target proxies to: the gRPC upstream for the gRPC rows, else the HTTP one. */
function upstreamOf(target: Target, context: LaunchContext): Upstream {
  if (target.protocol !== 'grpc') return context.upstream;
  if (context.grpcUpstream === undefined) throw new Error('no gRPC upstream runs for this benchmark');
  return context.grpcUpstream;
}

/** A fresh folder for one start of a proxy, with its rendered configuration. */
function prepare(target: Target, context: LaunchContext, template: string, values: Record<string, number | string>, file: string) {
  startCount += 1;
  const dir = path.join(context.workDir, `${target.name}-${startCount}`);
  mkdirSync(dir, { mode: 0o755 });
  const config = path.join(dir, file);
  const text = readFileSync(path.join(peersDir, template), 'utf8');
  const upstream = upstreamOf(target, context);
  writeFileSync(config, renderTemplate(text, { ...values, WORK: dir, UPSTREAM_HOST: upstream.host, UPSTREAM_PORT: upstream.port }));
  return { dir, config, log: path.join(dir, 'stderr.log') };
}

/** The `stores` entry of a keyed row: its state in the run's folder, or on the run's Redis. */
function storeBlock(kind: 'memory' | 'sqlite' | 'redis' | undefined, context: LaunchContext, name: string): string {
  switch (kind) {
    case undefined:
    case 'memory':
      return '{type: memory}';
    case 'sqlite':
      return `{type: sqlite, path: "${path.join(context.workDir, `${name}-${startCount + 1}-state`, 'state.db')}"}`;
    case 'redis':
      if (context.redisUrl === undefined) throw new Error('no Redis server runs for this benchmark');
      return `{type: redis, url: "${context.redisUrl}", keyPrefix: "bench-${startCount + 1}:"}`;
    default:
      return kind satisfies never;
  }
}

async function launch(target: Target, context: LaunchContext, port: number, telemetryPort: number): Promise<Child> {
  const spec = target.launch;
  const upstreamOfTarget = upstreamOf(target, context);
  const upstreamUrl = `http://${upstreamOfTarget.host}:${upstreamOfTarget.port}`;
  switch (spec.kind) {
    case 'direct':
      throw new Error('direct has no proxy to launch');
    case 'nginx': {
      const files = prepare(target, context, spec.template, { PORT: port }, 'nginx.conf');
      const args = ['-p', files.dir, '-e', 'stderr', '-c', files.config];
      return context.children.start({ name: target.name, cores: context.cores, command: 'nginx', args, logFile: files.log, stdout: 'log' });
    }
    case 'haproxy': {
      const files = prepare(target, context, spec.template, { PORT: port }, 'haproxy.cfg');
      const args = ['-db', '-f', files.config];
      return context.children.start({ name: target.name, cores: context.cores, command: 'haproxy', args, logFile: files.log, stdout: 'log' });
    }
    case 'node': {
      const dir = path.join(context.workDir, `${target.name}-${++startCount}`);
      mkdirSync(dir);
      const asBreakwater = spec.runtime === 'breakwater';
      const args = [...(asBreakwater ? nodeFlags : []), path.join(peersDir, spec.script), '--port', String(port), '--upstream', upstreamUrl];
      return context.children.start({
        name: target.name,
        cores: context.cores,
        command: process.execPath,
        args,
        cwd: repoRoot,
        env: asBreakwater ? { ...process.env, ...nodeEnvironment } : process.env,
        logFile: path.join(dir, 'stderr.log'),
        stdout: 'log',
      });
    }
    case 'breakwater': {
      const values = { PORT: port, TELEMETRY_PORT: telemetryPort, ADMIN_PORT: await freePort(), STORE: storeBlock(spec.store, context, target.name) };
      const files = prepare(target, context, spec.template, values, 'breakwater.yaml');
      const env =
        spec.traceRatio === undefined
          ? { ...process.env, ...nodeEnvironment }
          : {
              ...process.env,
              ...nodeEnvironment,
              OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${await traceSinkPort()}`,
              OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
              OTEL_TRACES_SAMPLER_ARG: String(spec.traceRatio),
            };
      // The access log (stdout) is discarded: writing it is a cost users choose separately.
      return context.children.start({
        name: target.name,
        cores: context.cores,
        command: process.execPath,
        // Run as the container image runs it (the Dockerfile's ENTRYPOINT and ENV).
        args: [...nodeFlags, entryOf(spec.root), 'run', '--config', files.config],
        cwd: spec.root ?? repoRoot,
        env,
        logFile: files.log,
        stdout: 'discard',
      });
    }
    default:
      return spec satisfies never;
  }
}

/** GET / through the target: it must answer 200 with the upstream's whole body. */
export function checkResponse(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { agent: false, timeout: 5000 }, (response) => {
      let bytes = 0;
      response.on('data', (chunk: Buffer) => (bytes += chunk.length));
      response.on('end', () => {
        if (response.statusCode === 200 && bytes === upstreamBodyBytes) resolve();
        else reject(new Error(`GET ${url} answered ${response.statusCode} with ${bytes} bytes, expected 200 with ${upstreamBodyBytes}`));
      });
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${url} timed out`)));
    request.on('error', reject);
  });
}

/** A gRPC client of the bench method, carrying bytes as they are (no .proto needed). */
const identity = (bytes: Buffer): Buffer => bytes;
const benchMethod = {
  call: {
    path: grpcBenchPath,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

/** One gRPC call through the target with a real client: it must answer OK with the upstream's whole message. */
export async function checkGrpcResponse(url: string): Promise<void> {
  const BenchClient = grpc.makeGenericClientConstructor(benchMethod, 'Bench');
  const client = new BenchClient(new URL(url).host, grpc.credentials.createInsecure());
  try {
    const message = await new Promise<Buffer>((resolve, reject) =>
      (client as unknown as { call: (request: Buffer, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response: Buffer) => void) => void }).call(
        grpcFrame(grpcRequestBytes).subarray(5),
        { deadline: Date.now() + 5000 },
        (error, response) => (error === null ? resolve(response) : reject(new Error(`gRPC call through ${url} ended ${grpc.status[error.code]}: ${error.details}`))),
      ),
    );
    // The upstream's message: a tag, the length as a varint, then the bytes.
    if (message.length < grpcResponseBytes) throw new Error(`gRPC call through ${url} answered ${message.length} bytes, expected ${grpcResponseBytes} and its framing`);
  } finally {
    client.close();
  }
}

/**
 * Starts the target's proxy on a free port and checks that it proxies. A port picked free can
 * be taken before the proxy binds it, so a proxy that exits at start is tried again.
 */
export async function startTarget(target: Target, context: LaunchContext): Promise<RunningTarget> {
  const check = target.protocol === 'grpc' ? checkGrpcResponse : checkResponse;
  if (target.launch.kind === 'direct') {
    const upstream = upstreamOf(target, context);
    const url = `http://${upstream.host}:${upstream.port}/`;
    return { url, process: undefined, stop: async () => {} };
  }
  const readyWithinMs = target.launch.kind === 'breakwater' ? 20_000 : 10_000;
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const telemetryPort = await freePort();
    const child = await launch(target, context, port, telemetryPort);
    try {
      await waitForListening(child, port, readyWithinMs);
      const url = `http://127.0.0.1:${port}/`;
      await check(url);
      const telemetryUrl = target.launch.kind === 'breakwater' ? `http://127.0.0.1:${telemetryPort}` : undefined;
      return { url, ...(telemetryUrl === undefined ? {} : { telemetryUrl }), process: child, stop: () => child.stop() };
    } catch (error) {
      const exitedByItself = child.hasExited;
      await child.stop();
      if (!exitedByItself || attempt === 3) throw error;
    }
  }
}

/** The upstream every target proxies to: nginx on the load core, beside wrk. */
export async function startUpstream(children: ChildProcesses, workDir: string, cores: string): Promise<{ upstream: Upstream; process: Child }> {
  for (let attempt = 1; ; attempt++) {
    const upstream = { host: '127.0.0.1', port: await freePort() };
    const dir = path.join(workDir, 'upstream');
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const text = readFileSync(path.join(peersDir, 'nginx-upstream.conf.tmpl'), 'utf8');
    const config = path.join(dir, 'nginx.conf');
    writeFileSync(
      config,
      renderTemplate(text, {
        WORK: dir,
        UPSTREAM_HOST: upstream.host,
        UPSTREAM_PORT: upstream.port,
        BODY: 'x'.repeat(upstreamBodyBytes),
        BODY_BYTES: upstreamBodyBytes,
      }),
    );
    const args = ['-p', dir, '-e', 'stderr', '-c', config];
    const child = children.start({ name: 'upstream nginx', cores, command: 'nginx', args, logFile: path.join(dir, 'stderr.log'), stdout: 'log' });
    try {
      await waitForListening(child, upstream.port, 10_000);
      await checkResponse(`http://${upstream.host}:${upstream.port}/`);
      return { upstream, process: child };
    } catch (error) {
      const exitedByItself = child.hasExited;
      await child.stop();
      if (!exitedByItself || attempt === 3) throw error;
    }
  }
}

/** The gRPC upstream of the gRPC rows: a node:http2 answering machine on the load core. */
export async function startGrpcUpstream(children: ChildProcesses, workDir: string, cores: string): Promise<{ upstream: Upstream; process: Child }> {
  for (let attempt = 1; ; attempt++) {
    const upstream = { host: '127.0.0.1', port: await freePort() };
    const dir = path.join(workDir, 'grpc-upstream');
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const args = [path.join(peersDir, 'grpc-upstream.ts'), '--port', String(upstream.port), '--message-bytes', String(grpcResponseBytes)];
    const child = children.start({ name: 'gRPC upstream', cores, command: process.execPath, args, cwd: repoRoot, logFile: path.join(dir, 'stderr.log'), stdout: 'log' });
    try {
      await waitForListening(child, upstream.port, 10_000);
      await checkGrpcResponse(`http://${upstream.host}:${upstream.port}/`);
      return { upstream, process: child };
    } catch (error) {
      const exitedByItself = child.hasExited;
      await child.stop();
      if (!exitedByItself || attempt === 3) throw error;
    }
  }
}
