// npm run bench [-- --quick | --rounds N --duration S --warmup S --targets a,b,c ...]
//
// Measures Breakwater beside the proxies its users would otherwise pick, on loopback, each
// proxy pinned to its own core while wrk and the upstream share the other. Every round runs
// every target once, in a rotated order, so that a slow minute of the machine spreads over
// all targets instead of landing on one; tables show medians over the rounds.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { describeMachine } from './lib/machine.ts';
import { ChildProcesses } from './lib/processes.ts';
import { coreBusy, foreignCpuSeconds, peakRssBytes, takeSnapshot, treeCpuSeconds } from './lib/procfs.ts';
import { renderReport } from './lib/report.ts';
import type { Phase, Sample } from './lib/stats.ts';
import { summarise } from './lib/stats.ts';
import { errorCount, requestsPerSecond, runWrk } from './lib/wrk.ts';
import type { LaunchContext, Target } from './targets.ts';
import { hasCommand, repoRoot, startTarget, startUpstream, targets, unavailableReason, upstreamBodyBytes } from './targets.ts';

const usage = `Usage: npm run bench -- [options]
  --rounds N            interleaved rounds (default 5)
  --duration S          seconds of each measured wrk run (default 10)
  --warmup S            seconds of warm-up before each measured run (default 5)
  --targets a,b,c       targets to run (default: all): ${targets.map((t) => t.name).join(', ')}
  --quick               smoke run: 1 round of 3 s after 1 s of warm-up
  --connections N       wrk connections (default 50)
  --rate N              requests per second of the fixed-rate phase (default 2000)
  --extra-rounds N      extra rounds at most for targets with disturbed rounds (default 3, quick 0)
  --clean-threshold P   a round is clean when others used at most P% of a core (default 5)
  --load-core N         core for wrk and the upstream (default 0)
  --proxy-core N        core for the proxy under test (default 1)`;

interface Options {
  rounds: number;
  durationS: number;
  warmupS: number;
  targets: Target[];
  connections: number;
  rate: number;
  extraRounds: number;
  cleanThreshold: number;
  loadCore: number;
  proxyCore: number;
}

function positiveNumber(name: string, text: string, { integer = true, zero = false } = {}): number {
  const value = Number(text.replace(/s$/, ''));
  const valid = Number.isFinite(value) && (zero ? value >= 0 : value > 0) && (!integer || Number.isInteger(value));
  if (!valid) throw new Error(`--${name} must be a ${zero ? 'non-negative' : 'positive'} ${integer ? 'integer' : 'number'}, not "${text}"`);
  return value;
}

function readOptions(): Options {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      targets: { type: 'string' },
      quick: { type: 'boolean', default: false },
      connections: { type: 'string' },
      rate: { type: 'string' },
      'extra-rounds': { type: 'string' },
      'clean-threshold': { type: 'string' },
      'load-core': { type: 'string' },
      'proxy-core': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const quick = values.quick;
  const names = values.targets?.split(',').map((n) => n.trim()).filter((n) => n !== '') ?? targets.map((t) => t.name);
  const selected = names.map((name) => {
    const target = targets.find((t) => t.name === name);
    if (target === undefined) throw new Error(`unknown target "${name}"; known: ${targets.map((t) => t.name).join(', ')}`);
    return target;
  });
  const options: Options = {
    rounds: positiveNumber('rounds', values.rounds ?? (quick ? '1' : '5')),
    durationS: positiveNumber('duration', values.duration ?? (quick ? '3' : '10')),
    warmupS: positiveNumber('warmup', values.warmup ?? (quick ? '1' : '5'), { zero: true }),
    targets: selected,
    connections: positiveNumber('connections', values.connections ?? '50'),
    rate: positiveNumber('rate', values.rate ?? '2000'),
    extraRounds: positiveNumber('extra-rounds', values['extra-rounds'] ?? (quick ? '0' : '3'), { zero: true }),
    cleanThreshold: positiveNumber('clean-threshold', values['clean-threshold'] ?? '5', { integer: false }),
    loadCore: positiveNumber('load-core', values['load-core'] ?? '0', { zero: true }),
    proxyCore: positiveNumber('proxy-core', values['proxy-core'] ?? '1', { zero: true }),
  };
  const cores = os.cpus().length;
  for (const core of [options.loadCore, options.proxyCore]) {
    if (core >= cores) throw new Error(`core ${core} does not exist here (${cores} cores); see --load-core and --proxy-core`);
  }
  return options;
}

const phases: readonly Phase[] = ['saturation', 'fixed-rate'];

/** Set on SIGINT/SIGTERM, so that failures caused by stopping are not reported as results. */
let stopping = false;

class Benchmark {
  readonly samples: Sample[] = [];
  /** target name → why it has no figures */
  readonly notMeasured = new Map<string, string>();
  readonly #options: Options;
  readonly #context: LaunchContext;

  constructor(options: Options, context: LaunchContext) {
    this.#options = options;
    this.#context = context;
  }

  cleanRounds(target: Target, phase: Phase): number {
    return this.samples.filter((s) => s.target === target.name && s.phase === phase && s.clean).length;
  }

  async measure(target: Target, phase: Phase, round: number): Promise<Sample> {
    const options = this.#options;
    const running = await startTarget(target, this.#context);
    try {
      const run = {
        url: running.url,
        connections: options.connections,
        rate: phase === 'fixed-rate' ? options.rate : undefined,
        cores: String(options.loadCore),
        logFile: path.join(this.#context.workDir, 'wrk.log'),
      };
      if (options.warmupS > 0) await runWrk(this.#context.children, { ...run, durationS: options.warmupS });
      const before = takeSnapshot();
      const startedAt = performance.now();
      const report = await runWrk(this.#context.children, { ...run, durationS: options.durationS });
      const after = takeSnapshot();
      const elapsedS = (performance.now() - startedAt) / 1000;
      const proxyPid = running.process?.pid;
      const proxyCpuS = proxyPid === undefined ? undefined : treeCpuSeconds(before, after, proxyPid);
      const foreignShare = foreignCpuSeconds(before, after, process.pid) / elapsedS;
      return {
        target: target.name,
        phase,
        round,
        requests: report.requests,
        rps: requestsPerSecond(report),
        errors: errorCount(report),
        latencyUs: { p50: report.latencyUs.p50, p90: report.latencyUs.p90, p99: report.latencyUs.p99, p999: report.latencyUs.p999 },
        proxyCpuUsPerRequest: proxyCpuS === undefined || report.requests === 0 ? undefined : (proxyCpuS * 1e6) / report.requests,
        proxyCpuShare: proxyCpuS === undefined ? undefined : proxyCpuS / elapsedS,
        peakRssBytes: proxyPid === undefined ? undefined : peakRssBytes(proxyPid),
        foreignCpuShare: foreignShare,
        coreBusy: coreBusy(before, after),
        clean: foreignShare * 100 <= options.cleanThreshold,
      };
    } finally {
      await running.stop();
    }
  }

  /** Runs the phases of one target; a target that fails is dropped with the reason. */
  async runTarget(target: Target, round: number, label: string, onlyPhases: readonly Phase[]): Promise<void> {
    for (const phase of onlyPhases) {
      if (this.notMeasured.has(target.name)) return;
      try {
        const sample = await this.measure(target, phase, round);
        this.samples.push(sample);
        const cpu = sample.proxyCpuUsPerRequest === undefined ? '' : `, ${sample.proxyCpuUsPerRequest.toFixed(1)} µs CPU/req`;
        console.error(
          `${label} ${target.name} ${phase}: ${Math.round(sample.rps).toLocaleString('en-US')} req/s, ` +
            `p50 ${sample.latencyUs.p50} µs, p99 ${sample.latencyUs.p99} µs${cpu}, ` +
            `errors ${sample.errors}, others ${(sample.foreignCpuShare * 100).toFixed(1)}% of a core${sample.clean ? '' : ' (disturbed)'}`,
        );
      } catch (error) {
        // an interrupted run ends here; the signal handler stops everything
        if (stopping) throw error;
        const message = error instanceof Error ? error.message : String(error);
        console.error(`${label} ${target.name} ${phase}: failed, dropped from this run: ${message}`);
        this.notMeasured.set(target.name, `failed in round ${round} (${phase}): ${message.split('\n')[0]}`);
        this.samples.splice(0, this.samples.length, ...this.samples.filter((s) => s.target !== target.name));
      }
    }
  }

  async run(): Promise<void> {
    const options = this.#options;
    const measurable = () => options.targets.filter((t) => !this.notMeasured.has(t.name));
    for (let round = 1; round <= options.rounds; round++) {
      const order = measurable();
      // rotate, so that each target takes each place in the order over the rounds
      const shift = (round - 1) % Math.max(order.length, 1);
      for (const target of [...order.slice(shift), ...order.slice(0, shift)]) {
        await this.runTarget(target, round, `[round ${round}/${options.rounds}]`, phases);
      }
    }
    for (let extra = 1; extra <= options.extraRounds; extra++) {
      const round = options.rounds + extra;
      const wanting = measurable().filter((t) => phases.some((p) => this.cleanRounds(t, p) < options.rounds));
      if (wanting.length === 0) break;
      for (const target of wanting) {
        const disturbed = phases.filter((p) => this.cleanRounds(target, p) < options.rounds);
        await this.runTarget(target, round, `[extra round ${extra}/${options.extraRounds}]`, disturbed);
      }
    }
  }
}

/** The commit Breakwater was measured at, marked when src/ had changes not yet committed. */
function sourceRevision(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' }).trim();
    const changed = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: repoRoot, encoding: 'utf8' }).trim();
    return changed === '' ? commit : `${commit} with uncommitted changes in src/`;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

function timestampForFile(date: Date): string {
  return `${date.toISOString().slice(0, 19).replace(/:/g, '-')}Z`;
}

async function main(): Promise<void> {
  const options = readOptions();
  const missing = ['wrk', 'nginx', 'taskset'].filter((command) => !hasCommand(command));
  if (missing.length > 0) throw new Error(`${missing.join(', ')} not found: run bash scripts/install-system-tools.sh`);

  const startedAt = new Date();
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'breakwater-bench-'));
  // nginx workers run as an unprivileged user and must reach their folders
  chmodSync(workDir, 0o755);
  const children = new ChildProcesses();
  const cleanUp = async (): Promise<void> => {
    await children.stopAll();
    rmSync(workDir, { recursive: true, force: true });
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      console.error(`\n${signal}: stopping the benchmark's processes`);
      void cleanUp().finally(() => process.exit(130));
    });
  }
  process.on('exit', () => children.killAllNow());

  try {
    const loadCores = String(options.loadCore);
    // The harness itself (its sampling, and the OTLP sink of the traced targets) stays off the
    // proxy's core, which then runs nothing but the proxy under test.
    execFileSync('taskset', ['-a', '-p', '-c', loadCores, String(process.pid)], { stdio: 'ignore' });
    const { upstream } = await startUpstream(children, workDir, loadCores);
    const context: LaunchContext = { children, workDir, upstream, cores: String(options.proxyCore) };
    const benchmark = new Benchmark(options, context);
    for (const target of options.targets) {
      const reason = unavailableReason(target);
      if (reason !== undefined) benchmark.notMeasured.set(target.name, `unavailable: ${reason}`);
    }

    const machine = `${describeMachine(repoRoot, startedAt)} · Breakwater ${sourceRevision()}`;
    const count = options.targets.length - benchmark.notMeasured.size;
    const perRunS = 1.5 + options.warmupS + options.durationS;
    const minutes = Math.ceil((count * options.rounds * phases.length * perRunS) / 60);
    console.error(machine);
    for (const [name, why] of benchmark.notMeasured) console.error(`${name}: ${why}`);
    console.error(`${count} targets × ${options.rounds} rounds × ${phases.length} phases: about ${minutes} min (more with extra rounds)`);

    await benchmark.run();

    const finishedAt = new Date();
    const measured = options.targets.map((t) => t.name).filter((name) => !benchmark.notMeasured.has(name));
    const summariesOf = (phase: Phase) =>
      measured.map((name) => summarise(benchmark.samples.filter((s) => s.target === name && s.phase === phase)));
    const saturation = summariesOf('saturation');
    const fixedRate = summariesOf('fixed-rate');
    const run = `wrk -t1 -c${options.connections} -d${options.durationS}s`;
    const markdown = renderReport({
      machine,
      method:
        `Pinning: wrk, the upstream (nginx, ${upstreamBodyBytes}-byte body) and the harness (with the traced targets' OTLP sink) on core ${options.loadCore}, the proxy under test alone on core ${options.proxyCore}. ` +
        `${options.rounds} interleaved rounds in rotated order (+ up to ${options.extraRounds} extra for targets with disturbed rounds); ` +
        `each target is started afresh for each phase and warmed up for ${options.warmupS} s before a ${options.durationS} s measured run. ` +
        `Medians over the rounds used (req/s also min–max). A round is clean when processes not started by the benchmark used ` +
        `≤ ${options.cleanThreshold}% of a core during it; only clean rounds are used when at least 2 exist. ` +
        `Proxy CPU = utime+stime of the proxy's process tree during the run / requests; peak RSS = largest VmHWM in the tree, max over rounds.`,
      saturationTitle: `Saturation: \`${run}\` (after ${options.warmupS} s warm-up)`,
      fixedRateTitle: `Fixed rate ${options.rate.toLocaleString('en-US')} req/s: \`${run} -s bench/lua/fixed-rate.lua\` (one shared send schedule)`,
      saturation,
      fixedRate,
      notMeasured: benchmark.notMeasured,
    });
    console.log(`\n${markdown}`);

    const resultsDir = path.join(import.meta.dirname, 'results');
    mkdirSync(resultsDir, { recursive: true });
    const base = path.join(resultsDir, timestampForFile(startedAt));
    const { targets: selected, ...settings } = options;
    const json = {
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      machine,
      options: { ...settings, targets: selected.map((t) => t.name) },
      notMeasured: Object.fromEntries(benchmark.notMeasured),
      samples: benchmark.samples,
      summaries: { saturation, fixedRate },
    };
    writeFileSync(`${base}.json`, `${JSON.stringify(json, null, 2)}\n`);
    writeFileSync(`${base}.md`, markdown);
    console.error(`results: ${path.relative(process.cwd(), base)}.{json,md}`);
  } finally {
    await cleanUp();
  }
}

main().catch((error: unknown) => {
  if (stopping) return;
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
