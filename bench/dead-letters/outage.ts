// npm run bench:dead-letters [-- --rate 2000 --duration 20 --store sqlite]
//
// Dead letters under a full outage: every request to the upstream fails (nothing listens on its
// port), at a fixed rate, on two routes of one Breakwater: one that keeps dead letters and one
// that does not. It reports whether the capture kept up (every failed request kept, none
// dropped below maxEntries), how long the last write took to land after the load stopped, the
// proxy's CPU and peak memory, and the callers' latency on both routes: what keeping dead
// letters costs them during an outage. Breakwater is pinned to one core, wrk to the other.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { describeMachine } from '../lib/machine.ts';
import { ChildProcesses, freePort, waitForListening } from '../lib/processes.ts';
import { peakRssBytes, takeSnapshot, treeCpuSeconds } from '../lib/procfs.ts';
import { runWrk, requestsPerSecond, type WrkReport } from '../lib/wrk.ts';
import { nodeEnvironment, nodeFlags } from '../../scripts/node-runtime.ts';
import { hasCommand, repoRoot } from '../targets.ts';

const usage = `Usage: npm run bench:dead-letters -- [options]
  --rate N          requests per second sent to each route (default 2000)
  --duration S      seconds of load on each route (default 20)
  --connections N   wrk connections (default 64)
  --store KIND      sqlite (default), memory or redis: where the dead letters go
  --load-core N     core for wrk (default 0)
  --proxy-core N    core for Breakwater (default 1)`;

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '2000' },
    duration: { type: 'string', default: '20' },
    connections: { type: 'string', default: '64' },
    store: { type: 'string', default: 'sqlite' },
    'load-core': { type: 'string', default: '0' },
    'proxy-core': { type: 'string', default: '1' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(usage);
  process.exit(0);
}
const rate = Number(values.rate);
const durationS = Number(values.duration);
const connections = Number(values.connections);
const store = values.store;
if (!['sqlite', 'memory', 'redis'].includes(store)) throw new Error(`--store must be sqlite, memory or redis, not ${store}`);
const maxEntries = 100_000;

async function metric(telemetry: string, name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${telemetry}/metrics`)).text();
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) && wanted.every((label) => line.includes(label))) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

const ms = (us: number): string => (us / 1000).toFixed(2);

async function main(): Promise<void> {
  const missing = ['wrk', 'taskset', ...(store === 'redis' ? ['redis-server'] : [])].filter((command) => !hasCommand(command));
  if (missing.length > 0) throw new Error(`${missing.join(', ')} not found: run bash scripts/install-system-tools.sh bench (and test, for redis-server)`);
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'breakwater-dlq-bench-'));
  const children = new ChildProcesses();
  process.on('exit', () => children.killAllNow());
  try {
    const loadCore = values['load-core'];
    let storeBlock = `{type: sqlite, path: "${path.join(workDir, 'state', 'state.db')}"}`;
    if (store === 'memory') storeBlock = `{type: memory, maxEntries: ${maxEntries * 2}, maxBytes: 512MiB}`;
    if (store === 'redis') {
      const port = await freePort();
      mkdirSync(path.join(workDir, 'redis'));
      const redis = children.start({
        name: 'redis',
        cores: loadCore,
        command: 'redis-server',
        args: ['--port', String(port), '--bind', '127.0.0.1', '--dir', path.join(workDir, 'redis'), '--save', '', '--appendonly', 'no'],
        logFile: path.join(workDir, 'redis.log'),
        stdout: 'log',
      });
      await waitForListening(redis, port, 10_000);
      storeBlock = `{type: redis, url: "redis://127.0.0.1:${port}"}`;
    }
    // Nothing listens on the upstream's port: every attempt is refused, as in a full outage.
    const deadPort = await freePort();
    const [port, telemetryPort, adminPort] = [await freePort(), await freePort(), await freePort()];
    const config = path.join(workDir, 'breakwater.yaml');
    writeFileSync(
      config,
      `listeners: [{name: outbound, address: "127.0.0.1:${port}"}]
telemetry: {address: "127.0.0.1:${telemetryPort}"}
admin: {address: "127.0.0.1:${adminPort}"}
stores:
  dead: ${storeBlock}
upstreams:
  down: {endpoints: ["http://127.0.0.1:${deadPort}"]}
routes:
  - {name: kept, match: {pathPrefix: /kept}, upstream: down, deadLetter: {store: dead, maxEntries: ${maxEntries}}}
  - {name: plain, match: {pathPrefix: /plain}, upstream: down}
`,
    );
    const proxy = children.start({
      name: 'breakwater',
      cores: values['proxy-core'],
      command: process.execPath,
      // As the container image runs it, with its Node flags and environment.
      args: [...nodeFlags, path.join(repoRoot, 'src', 'cli', 'main.ts'), 'run', '--config', config],
      cwd: repoRoot,
      env: { ...process.env, ...nodeEnvironment },
      logFile: path.join(workDir, 'breakwater.log'),
      stdout: 'discard',
    });
    await waitForListening(proxy, port, 20_000);
    const telemetry = `http://127.0.0.1:${telemetryPort}`;
    // The stores answer once the proxy has started; a Redis store connects in the background.
    for (let i = 0; i < 100 && (await fetch(`http://127.0.0.1:${adminPort}/dead-letters`)).status !== 200; i++) await sleep(100);

    const run = (route: string): Promise<WrkReport> =>
      runWrk(children, { url: `http://127.0.0.1:${port}/${route}/orders`, connections, durationS, rate, cores: loadCore, logFile: path.join(workDir, `wrk-${route}.log`), request: 'post' });

    // Warm-up of both routes, then the plain route, then the one that keeps dead letters.
    await runWrk(children, { url: `http://127.0.0.1:${port}/plain/warm`, connections, durationS: 3, rate, cores: loadCore, logFile: path.join(workDir, 'wrk-warm.log'), request: 'post' });
    const plain = await run('plain');
    const before = takeSnapshot();
    const kept = await run('kept');
    const loadEnded = performance.now();
    // Every failed request of the run is a dead letter or a drop, once the last write lands.
    const failed = kept.errors.status + kept.errors.read + kept.errors.timeout;
    let written = 0;
    let dropped = 0;
    for (;;) {
      written = await metric(telemetry, 'breakwater_dead_letters_total', { route: 'kept' });
      dropped = await metric(telemetry, 'breakwater_dead_letters_dropped_total', { route: 'kept' });
      if (written + dropped >= kept.requests || performance.now() - loadEnded > 30_000) break;
      await sleep(50);
    }
    const lagMs = performance.now() - loadEnded;
    const after = takeSnapshot();
    const cpuS = treeCpuSeconds(before, after, proxy.pid);
    const entries = await metric(telemetry, 'breakwater_dead_letter_entries', { route: 'kept' });
    const causes = [];
    for (const cause of ['full', 'store_error', 'too_large']) {
      const count = await metric(telemetry, 'breakwater_dead_letters_dropped_total', { route: 'kept', cause });
      if (count > 0) causes.push(`${count} ${cause}`);
    }
    const peak = peakRssBytes(proxy.pid);

    console.log(`${describeMachine(repoRoot, new Date())}`);
    console.log(`\nDead letters under a full outage: ${rate} req/s for ${durationS} s per route, ${connections} connections, ${store} store, maxEntries ${maxEntries}\n`);
    console.log('| route | sent | achieved req/s | non-2xx | p50 ms | p99 ms | p99.9 ms |');
    console.log('|---|---|---|---|---|---|---|');
    for (const [name, report] of [['plain (no deadLetter)', plain], ['kept (deadLetter)', kept]] as const) {
      console.log(`| ${name} | ${report.requests} | ${requestsPerSecond(report).toFixed(0)} | ${report.errors.status} | ${ms(report.latencyUs.p50)} | ${ms(report.latencyUs.p99)} | ${ms(report.latencyUs.p999)} |`);
    }
    console.log(`\nkept: ${written} dead letters of ${kept.requests} requests (${failed} answered with an error), dropped ${dropped}${causes.length === 0 ? '' : ` (${causes.join(', ')})`}; ${entries} held in the store`);
    console.log(`the last dead letter was written ${lagMs.toFixed(0)} ms after the load stopped`);
    console.log(`Breakwater: ${(cpuS / (durationS + lagMs / 1000)).toFixed(2)} cores on average while keeping them, peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB`);
    if (dropped > 0 || written < kept.requests) process.exitCode = 1;
  } finally {
    await children.stopAll();
    rmSync(workDir, { recursive: true, force: true });
  }
}

await main();
