// npm run bench:soak [-- --duration 10m --rate 1000 ...]
//
// Breakwater for a long while at a steady rate through routes with every policy: idempotency
// keys on a share of the POSTs, dead letters for the orders the upstream fails, a breaker
// whose upstream goes down and comes back on a schedule, fault injection for the requests
// that ask for it, and a config reload every 30 s. Every answer is judged against what its
// request should get; the resident memory and the open file descriptors are sampled
// throughout. It passes when no answer was unexpected and neither grew by 10% or more after
// the warm-up. Not part of `npm test`: it takes ten minutes by default.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { nodeEnvironment, nodeFlags } from '../../scripts/node-runtime.ts';
import { describeMachine } from '../lib/machine.ts';
import { ChildProcesses, freePort, waitForListening } from '../lib/processes.ts';
import { rssBytes } from '../lib/procfs.ts';
import { median } from '../lib/stats.ts';
import { renderTemplate } from '../lib/template.ts';
import { buildBreakwater, repoRoot } from '../targets.ts';
import { SoakClient, type ClientInterval } from './client.ts';
import { startSoakUpstream } from './upstream.ts';

const usage = `Usage: npm run bench:soak -- [options]
  --duration D        how long the load runs (default 10m; 90s for a trial)
  --warmup D          the start of the run that growth is not measured over (default 2m)
  --rate N            requests per second (default 1000)
  --sample-every D    how often memory and descriptors are read (default 10s)
  --reload-every D    how often the config is changed and reloaded (default 30s)
  --outage-every D    how often the breaker's upstream goes down (default 60s)
  --outage-for D      how long it stays down (default 10s)
  --max-growth P      the growth after the warm-up, in %, beyond which the soak fails (default 10)
  --load-core N       core for the client and the upstream (default 0)
  --proxy-core N      core for Breakwater (default 1)
Durations: 90s, 10m, or milliseconds.`;

function duration(name: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (match === null) throw new Error(`--${name} must be a duration such as 90s or 10m, not "${text}"`);
  const value = Number(match[1]);
  const ms = match[2] === 'm' ? value * 60_000 : match[2] === 's' ? value * 1000 : value;
  if (!(ms > 0)) throw new Error(`--${name} must be more than zero`);
  return ms;
}

function positive(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number, not "${text}"`);
  return value;
}

function readOptions() {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '10m' },
      warmup: { type: 'string', default: '2m' },
      rate: { type: 'string', default: '1000' },
      'sample-every': { type: 'string', default: '10s' },
      'reload-every': { type: 'string', default: '30s' },
      'outage-every': { type: 'string', default: '60s' },
      'outage-for': { type: 'string', default: '10s' },
      'max-growth': { type: 'string', default: '10' },
      'load-core': { type: 'string', default: '0' },
      'proxy-core': { type: 'string', default: '1' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const options = {
    durationMs: duration('duration', values.duration),
    warmupMs: duration('warmup', values.warmup),
    rate: positive('rate', values.rate),
    sampleMs: duration('sample-every', values['sample-every']),
    reloadMs: duration('reload-every', values['reload-every']),
    outage: { periodMs: duration('outage-every', values['outage-every']), lengthMs: duration('outage-for', values['outage-for']) },
    maxGrowth: positive('max-growth', values['max-growth']) / 100,
    loadCore: values['load-core'],
    proxyCore: values['proxy-core'],
  };
  if (options.warmupMs >= options.durationMs) throw new Error('--warmup must be shorter than --duration');
  if (options.outage.lengthMs >= options.outage.periodMs) throw new Error('--outage-for must be shorter than --outage-every');
  return options;
}

/** One reading of Breakwater and of what the client saw since the last one. */
interface Reading {
  atS: number;
  rssMiB: number;
  anonMiB: number;
  fds: number;
  /** Answers in the interval, and per second. */
  answered: number;
  rps: number;
  p99Ms: number | undefined;
  unexpected: number;
  fallbacks: number;
  replays: number;
  /** Times the flaky upstream's breaker opened, so far. */
  breakerOpened: number;
  /** Reloads applied, so far. */
  reloads: number;
}

const MiB = 1024 * 1024;

function anonBytes(pid: number): number {
  const match = /^RssAnon:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match?.[1] === undefined ? 0 : Number(match[1]) * 1024;
}

function openDescriptors(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** The sum of a Prometheus counter's series whose labels include all of `labels`. */
function counterSum(exposition: string, name: string, labels: Readonly<Record<string, string>>): number {
  let sum = 0;
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const labelText = line.slice(name.length + 1, line.lastIndexOf('}'));
    if (Object.entries(labels).every(([label, value]) => labelText.includes(`${label}="${value}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** A one-line chart of the values, scaled from their lowest to their highest. */
function sparkline(values: readonly number[]): string {
  const bars = '▁▂▃▄▅▆▇█';
  const low = Math.min(...values);
  const high = Math.max(...values);
  return values.map((v) => bars[high === low ? 0 : Math.round(((v - low) / (high - low)) * (bars.length - 1))]).join('');
}

/** Growth from the first minute after the warm-up to the last minute, each as a median. */
function growthAfterWarmup(readings: readonly Reading[], warmupS: number, endS: number, field: 'rssMiB' | 'fds') {
  const after = readings.filter((r) => r.atS > warmupS);
  const first = after.filter((r) => r.atS <= warmupS + 60).map((r) => r[field]);
  const last = after.filter((r) => r.atS > endS - 60).map((r) => r[field]);
  if (first.length === 0 || last.length === 0) return undefined;
  const start = median(first);
  const end = median(last);
  return { start, end, max: Math.max(...after.map((r) => r[field])), growth: end / start - 1 };
}

async function main(): Promise<number> {
  const options = readOptions();
  const startedAt = new Date();
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'breakwater-soak-'));
  chmodSync(workDir, 0o755);
  const children = new ChildProcesses();
  process.on('exit', () => children.killAllNow());
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      console.error(`\n${signal}: stopping the soak`);
      void children.stopAll().finally(() => process.exit(130));
    });
  }
  try {
    console.error('building Breakwater (npm run build)');
    buildBreakwater();
    // The client and the upstream stay off Breakwater's core.
    execFileSync('taskset', ['-a', '-p', '-c', options.loadCore, String(process.pid)], { stdio: 'ignore' });
    const upstream = await startSoakUpstream(options.outage);
    const ports = { PORT: await freePort(), TELEMETRY_PORT: await freePort(), ADMIN_PORT: await freePort() };
    const template = readFileSync(path.join(import.meta.dirname, 'breakwater.yaml.tmpl'), 'utf8');
    const configPath = path.join(workDir, 'breakwater.yaml');
    const writeConfig = (apiTimeout: string): void =>
      writeFileSync(configPath, renderTemplate(template, { ...ports, WORK: workDir, UPSTREAM_PORT: upstream.port, API_TIMEOUT: apiTimeout }));
    writeConfig('5s');
    const breakwater = children.start({
      name: 'breakwater',
      cores: options.proxyCore,
      command: process.execPath,
      // As the container image runs it: the compiled code, the image's Node flags and environment.
      args: [...nodeFlags, path.join(repoRoot, 'dist', 'cli', 'main.js'), 'run', '--config', configPath],
      cwd: repoRoot,
      env: { ...process.env, ...nodeEnvironment },
      logFile: path.join(workDir, 'breakwater.log'),
      // The access log: a line per request, which the soak does not read.
      stdout: 'discard',
    });
    await waitForListening(breakwater, ports.PORT, 20_000);
    const admin = `http://127.0.0.1:${ports.ADMIN_PORT}`;
    const metricsUrl = `http://127.0.0.1:${ports.TELEMETRY_PORT}/metrics`;
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const idleMiB = rssBytes(breakwater.pid) / MiB;

    const machine = describeMachine(repoRoot, startedAt);
    console.error(machine);
    console.error(
      `${options.rate} req/s for ${options.durationMs / 1000} s (warm-up ${options.warmupMs / 1000} s), a reload every ${options.reloadMs / 1000} s, ` +
        `the breaker's upstream down ${options.outage.lengthMs / 1000} s of every ${options.outage.periodMs / 1000} s; Breakwater idle: ${idleMiB.toFixed(1)} MiB`,
    );
    const header = '| t s | RSS MiB | anon MiB | fds | req/s | p99 ms | unexpected | fallbacks | replays | breaker opened | reloads |';
    console.error(`${header}\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|`);

    const client = new SoakClient(`http://127.0.0.1:${ports.PORT}`, options.rate);
    const readings: Reading[] = [];
    const reloadFailures: string[] = [];
    let reloadsApplied = 0;
    const loadStartedAt = performance.now();
    client.start();
    let nextSample = options.sampleMs;
    let nextReload = options.reloadMs;
    let reloadCount = 0;
    let lastSampleAt = loadStartedAt;
    while (performance.now() - loadStartedAt < options.durationMs) {
      const elapsed = performance.now() - loadStartedAt;
      const wait = Math.min(nextSample, nextReload) - elapsed;
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const now = performance.now() - loadStartedAt;
      if (breakwater.hasExited) throw new Error(`Breakwater exited during the soak:\n${breakwater.logTail()}`);
      if (now >= nextReload) {
        nextReload += options.reloadMs;
        reloadCount += 1;
        writeConfig(reloadCount % 2 === 1 ? '6s' : '5s');
        const response = await fetch(`${admin}/reload`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
        const result = (await response.json()) as { result?: string; problems?: string[] };
        // The file watcher may have applied the change first; then this reload finds nothing new.
        if (response.status === 200 && (result.result === 'success' || result.result === 'unchanged')) reloadsApplied += 1;
        else reloadFailures.push(`reload ${reloadCount}: ${response.status} ${JSON.stringify(result)}`);
      }
      if (now >= nextSample) {
        nextSample += options.sampleMs;
        const interval: ClientInterval = client.takeInterval();
        const sampledAt = performance.now();
        const exposition = await (await fetch(metricsUrl)).text();
        const reading: Reading = {
          atS: Math.round(now / 1000),
          rssMiB: rssBytes(breakwater.pid) / MiB,
          anonMiB: anonBytes(breakwater.pid) / MiB,
          fds: openDescriptors(breakwater.pid),
          answered: interval.answered,
          rps: interval.answered / ((sampledAt - lastSampleAt) / 1000),
          p99Ms: percentile(interval.latenciesMs, 99),
          unexpected: interval.unexpected,
          fallbacks: interval.fallbacks,
          replays: interval.replays,
          breakerOpened: counterSum(exposition, 'breakwater_circuit_breaker_transitions_total', { upstream: 'flaky', to: 'open' }),
          reloads: counterSum(exposition, 'breakwater_config_reloads_total', { result: 'success' }),
        };
        lastSampleAt = sampledAt;
        readings.push(reading);
        console.error(
          `| ${reading.atS} | ${reading.rssMiB.toFixed(1)} | ${reading.anonMiB.toFixed(1)} | ${reading.fds} | ${Math.round(reading.rps)} | ${reading.p99Ms?.toFixed(1) ?? '–'} | ` +
            `${reading.unexpected} | ${reading.fallbacks} | ${reading.replays} | ${reading.breakerOpened} | ${reading.reloads} |`,
        );
      }
    }
    await client.stop();
    const last = client.takeInterval();
    breakwater.signalGroup('SIGTERM');
    const exit = await breakwater.exited;
    await upstream.close();

    const endS = options.durationMs / 1000;
    const warmupS = options.warmupMs / 1000;
    const rss = growthAfterWarmup(readings, warmupS, endS, 'rssMiB');
    const fds = growthAfterWarmup(readings, warmupS, endS, 'fds');
    const unexpected = readings.reduce((sum, r) => sum + r.unexpected, 0) + last.unexpected;
    const answered = readings.reduce((sum, r) => sum + r.answered, 0) + last.answered;
    const lastReading = readings.at(-1);
    const problems = [
      ...(unexpected > 0 ? [`${unexpected} unexpected answers; the first: ${client.unexpectedAnswers.map((a) => `${a.kind} ${a.detail}`).slice(0, 5).join('; ')}`] : []),
      ...reloadFailures,
      ...(client.lagged > 0 ? [`${client.lagged} requests not sent on time: Breakwater fell behind ${options.rate} req/s`] : []),
      ...(rss === undefined || rss.growth >= options.maxGrowth ? [`RSS grew ${rss === undefined ? '(not measured)' : `${(rss.growth * 100).toFixed(1)}%`} after the warm-up`] : []),
      ...(fds === undefined || fds.growth >= options.maxGrowth ? [`open descriptors grew ${fds === undefined ? '(not measured)' : `${(fds.growth * 100).toFixed(1)}%`} after the warm-up`] : []),
      ...(lastReading === undefined || lastReading.breakerOpened === 0 ? ['the breaker never opened'] : []),
      ...(exit.code === 0 ? [] : [`Breakwater exited with ${exit.signal ?? `code ${exit.code}`} when told to stop`]),
    ];
    const growthLine = (what: string, g: typeof rss, unit: string) =>
      g === undefined ? `${what}: not measured` : `${what}: ${g.start.toFixed(1)} → ${g.end.toFixed(1)} ${unit} (${g.growth >= 0 ? '+' : ''}${(g.growth * 100).toFixed(1)}%), at most ${g.max.toFixed(1)} after the warm-up`;
    const markdown = [
      '# Breakwater soak',
      machine,
      `${options.rate.toLocaleString('en-US')} req/s for ${endS} s through routes with every policy; a config reload every ${options.reloadMs / 1000} s; ` +
        `the breaker's upstream down ${options.outage.lengthMs / 1000} s of every ${options.outage.periodMs / 1000} s. ` +
        `Growth: median of the readings in the first minute after the ${warmupS} s warm-up against the median of the last minute.`,
      `Idle before the load: ${idleMiB.toFixed(1)} MiB. ${growthLine('RSS', rss, 'MiB')}. ${growthLine('Open descriptors', fds, '')}.`,
      `RSS over time: ${sparkline(readings.map((r) => r.rssMiB))} (${Math.min(...readings.map((r) => r.rssMiB)).toFixed(1)}–${Math.max(...readings.map((r) => r.rssMiB)).toFixed(1)} MiB)`,
      `Descriptors over time: ${sparkline(readings.map((r) => r.fds))} (${Math.min(...readings.map((r) => r.fds))}–${Math.max(...readings.map((r) => r.fds))})`,
      `${answered.toLocaleString('en-US')} answers, ${unexpected} unexpected; the breaker opened ${lastReading?.breakerOpened ?? 0} times; ${reloadsApplied} reloads applied, ${reloadFailures.length} failed.`,
      [header, '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|', ...readings.map((r) =>
        `| ${r.atS} | ${r.rssMiB.toFixed(1)} | ${r.anonMiB.toFixed(1)} | ${r.fds} | ${Math.round(r.rps)} | ${r.p99Ms?.toFixed(1) ?? '–'} | ${r.unexpected} | ${r.fallbacks} | ${r.replays} | ${r.breakerOpened} | ${r.reloads} |`,
      )].join('\n'),
      problems.length === 0 ? '**Passed.**' : `**Failed:**\n${problems.map((p) => `- ${p}`).join('\n')}`,
    ].join('\n\n');
    console.log(`\n${markdown}`);

    const resultsDir = path.join(repoRoot, 'bench', 'results', 'soak');
    mkdirSync(resultsDir, { recursive: true });
    const base = path.join(resultsDir, `${startedAt.toISOString().slice(0, 19).replace(/:/g, '-')}Z`);
    writeFileSync(`${base}.json`, `${JSON.stringify({ startedAt: startedAt.toISOString(), machine, options, idleMiB, rss, fds, unexpected, unexpectedAnswers: client.unexpectedAnswers, reloadFailures, lagged: client.lagged, readings, problems }, null, 2)}\n`);
    writeFileSync(`${base}.md`, `${markdown}\n`);
    console.error(`results: ${path.relative(process.cwd(), base)}.{json,md}`);
    return problems.length === 0 ? 0 : 1;
  } finally {
    await children.stopAll();
    rmSync(workDir, { recursive: true, force: true });
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  },
);
