// npm run bench [-- --quick | --rounds N --duration S --warmup S --targets a,b,c ...]
//
// Measures Breakwater beside the proxies its users would otherwise pick, on loopback, each
// proxy pinned to its own core while wrk and the upstream share the other. Every round runs
// every target once, in a rotated order, so that a slow minute of the machine spreads over
// all targets instead of landing on one; tables show medians over the rounds. Then the
// Breakwater rows run side by side in short alternating runs, each compared with plain
// Breakwater run by run, for ratios precise enough to hold against a target.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { describeMachine } from './lib/machine.ts';
import { ChildProcesses, freePort, waitForListening } from './lib/processes.ts';
import { parseStoreBuckets, storeP99Ms, type StoreBuckets } from './lib/store-histogram.ts';
import { coreBusy, foreignCpuSeconds, peakRssBytes, rssBytes, takeSnapshot, treeCpuSeconds } from './lib/procfs.ts';
import { renderReport } from './lib/report.ts';
import type { PairedComparison, Phase, Sample } from './lib/stats.ts';
import { comparePaired, summarise } from './lib/stats.ts';
import { runH2load } from './lib/h2load.ts';
import { errorCount, requestsPerSecond, runWrk } from './lib/wrk.ts';
import type { LaunchContext, RunningTarget, Target } from './targets.ts';
import {
  baselineTargets,
  buildBreakwater,
  grpcRequestBytes,
  grpcResponseBytes,
  hasCommand,
  repoRoot,
  startGrpcUpstream,
  startTarget,
  startUpstream,
  targets,
  unavailableReason,
  upstreamBodyBytes,
} from './targets.ts';

const usage = `Usage: npm run bench -- [options]
  --rounds N            interleaved rounds (default 5)
  --duration S          seconds of each measured wrk run (default 10)
  --warmup S            seconds of warm-up before each measured run (default 5)
  --targets a,b,c       targets to run (default: all): ${targets.map((t) => t.name).join(', ')}
  --quick               smoke run: 1 round of 3 s after 1 s of warm-up
  --connections N       wrk connections (default 50)
  --rate N              requests per second of the fixed-rate phase (default 2000)
  --extra-rounds N      extra rounds at most for targets with disturbed rounds (default 3, quick 0)
  --cycles N            cycles of the interleaved Breakwater phase (default 60, quick 2)
  --cycle-duration S    seconds of each run in that phase (default 1)
  --starts N            starts of the Breakwater rows the cycles are split over (default 6, quick 1)
  --clean-threshold P   a round is clean when others used at most P% of a core (default 5)
  --load-core N         core for wrk and the upstream (default 0)
  --proxy-core N        core for the proxy under test (default 1)
  --baseline REF        also run the plain and policies rows from git revision REF (a commit,
                        branch or tag), as breakwater@REF and breakwater-policies@REF, so the
                        interleaved phase compares a change with the code before it`;

interface Options {
  rounds: number;
  durationS: number;
  warmupS: number;
  targets: Target[];
  connections: number;
  rate: number;
  extraRounds: number;
  cycles: number;
  cycleDurationS: number;
  starts: number;
  cleanThreshold: number;
  /** A git revision whose plain and policies rows run beside this checkout's. */
  baseline: string | undefined;
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
      cycles: { type: 'string' },
      'cycle-duration': { type: 'string' },
      starts: { type: 'string' },
      'clean-threshold': { type: 'string' },
      'load-core': { type: 'string' },
      'proxy-core': { type: 'string' },
      baseline: { type: 'string' },
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
  const cycles = positiveNumber('cycles', values.cycles ?? (quick ? '2' : '60'), { zero: true });
  const options: Options = {
    rounds: positiveNumber('rounds', values.rounds ?? (quick ? '1' : '5')),
    durationS: positiveNumber('duration', values.duration ?? (quick ? '3' : '10')),
    warmupS: positiveNumber('warmup', values.warmup ?? (quick ? '1' : '5'), { zero: true }),
    targets: selected,
    connections: positiveNumber('connections', values.connections ?? '50'),
    rate: positiveNumber('rate', values.rate ?? '2000'),
    extraRounds: positiveNumber('extra-rounds', values['extra-rounds'] ?? (quick ? '0' : '3'), { zero: true }),
    cycles,
    cycleDurationS: positiveNumber('cycle-duration', values['cycle-duration'] ?? '1'),
    // No more starts than cycles: each start runs one cycle at least.
    starts: Math.min(positiveNumber('starts', values.starts ?? (quick ? '1' : '6')), cycles),
    cleanThreshold: positiveNumber('clean-threshold', values['clean-threshold'] ?? '5', { integer: false }),
    baseline: values.baseline,
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

/** The row the other Breakwater rows are compared with in the interleaved phase. */
const interleavedBase = 'breakwater';

/** The row `target` is compared with in the interleaved phase: its own base when that ran, else plain Breakwater. */
function baseOf(target: Target, rows: readonly string[]): string {
  return target.comparedWith !== undefined && rows.includes(target.comparedWith) ? target.comparedWith : interleavedBase;
}

/** The store histogram of a running Breakwater, read from its telemetry port. */
async function storeBuckets(running: RunningTarget): Promise<StoreBuckets> {
  if (running.telemetryUrl === undefined) return new Map();
  const response = await fetch(`${running.telemetryUrl}/metrics`);
  return parseStoreBuckets(await response.text());
}

/** How long a freshly started proxy is left alone, after its first answer, before its idle RSS is read. */
const idleSettleMs = 2_000;

/** The proxy's resident memory once started and answered once, before any load: the largest VmRSS in its tree. */
async function idleRssBytes(running: RunningTarget): Promise<number | undefined> {
  const pid = running.process?.pid;
  if (pid === undefined) return undefined;
  await new Promise((resolve) => setTimeout(resolve, idleSettleMs));
  return rssBytes(pid);
}

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

  #wrkRun(target: Target, running: RunningTarget, phase: Phase) {
    const options = this.#options;
    return {
      url: running.url,
      request: target.request,
      connections: options.connections,
      rate: phase === 'fixed-rate' ? options.rate : undefined,
      cores: String(options.loadCore),
      logFile: path.join(this.#context.workDir, 'wrk.log'),
    };
  }

  /** The gRPC rows' load: as many calls in flight as wrk's connections, on a tenth as many HTTP/2 connections. */
  #h2loadRun(running: RunningTarget, durationS: number) {
    const options = this.#options;
    const connections = Math.max(1, Math.round(options.connections / 10));
    return {
      url: running.url,
      connections,
      streams: Math.max(1, Math.round(options.connections / connections)),
      durationS,
      warmupS: 0,
      cores: String(options.loadCore),
      workDir: this.#context.workDir,
      logFile: path.join(this.#context.workDir, 'h2load.log'),
      messageBytes: grpcRequestBytes,
    };
  }

  /** One run of the target's load generator: wrk, or h2load for the gRPC rows. */
  #load(target: Target, running: RunningTarget, phase: Phase, durationS: number) {
    if (target.protocol === 'grpc') return runH2load(this.#context.children, this.#h2loadRun(running, durationS));
    return runWrk(this.#context.children, { ...this.#wrkRun(target, running, phase), durationS });
  }

  async #warmUp(target: Target, running: RunningTarget, phase: Phase): Promise<void> {
    const warmupS = this.#options.warmupS;
    if (warmupS > 0) await this.#load(target, running, phase, warmupS);
  }

  /** One measured wrk run against a running target. */
  async #sample(target: Target, running: RunningTarget, phase: Phase, round: number, durationS: number): Promise<Sample> {
    const hasStore = target.launch.kind === 'breakwater' && target.launch.store !== undefined;
    const storeBefore = hasStore ? await storeBuckets(running) : undefined;
    const before = takeSnapshot();
    const startedAt = performance.now();
    const report = await this.#load(target, running, phase, durationS);
    const after = takeSnapshot();
    const storeAfter = hasStore ? await storeBuckets(running) : undefined;
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
      clean: foreignShare * 100 <= this.#options.cleanThreshold,
      ...(storeBefore === undefined || storeAfter === undefined ? {} : { storeP99Ms: storeP99Ms(storeBefore, storeAfter) }),
    };
  }

  async measure(target: Target, phase: Phase, round: number): Promise<Sample> {
    const running = await startTarget(target, this.#context);
    try {
      const idleRss = await idleRssBytes(running);
      await this.#warmUp(target, running, phase);
      const sample = await this.#sample(target, running, phase, round, this.#options.durationS);
      return idleRss === undefined ? sample : { ...sample, idleRssBytes: idleRss };
    } finally {
      await running.stop();
    }
  }

  #report(label: string, sample: Sample): void {
    const cpu = sample.proxyCpuUsPerRequest === undefined ? '' : `, ${sample.proxyCpuUsPerRequest.toFixed(1)} µs CPU/req`;
    console.error(
      `${label} ${sample.target} ${sample.phase}: ${Math.round(sample.rps).toLocaleString('en-US')} req/s, ` +
        `p50 ${sample.latencyUs.p50} µs, p99 ${sample.latencyUs.p99} µs${cpu}, ` +
        `errors ${sample.errors}, others ${(sample.foreignCpuShare * 100).toFixed(1)}% of a core${sample.clean ? '' : ' (disturbed)'}`,
    );
  }

  /** Runs the phases of one target; a target that fails is dropped with the reason. */
  async runTarget(target: Target, round: number, label: string, onlyPhases: readonly Phase[]): Promise<void> {
    for (const phase of onlyPhases) {
      // The gRPC rows measure saturation only.
      if (target.protocol === 'grpc' && phase !== 'saturation') continue;
      if (this.notMeasured.has(target.name)) return;
      try {
        const sample = await this.measure(target, phase, round);
        this.samples.push(sample);
        this.#report(label, sample);
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

  /** The Breakwater rows of the interleaved phase, the base first; empty when it has nothing to compare. */
  interleavedTargets(): Target[] {
    const rows = this.#measurable().filter((t) => t.launch.kind === 'breakwater' && t.protocol !== 'grpc');
    const base = rows.find((t) => t.name === interleavedBase);
    if (this.#options.cycles === 0 || base === undefined || rows.length < 2) return [];
    return [base, ...rows.filter((t) => t !== base)];
  }

  /**
   * The Breakwater rows side by side, measured in turn for short runs, cycle after cycle, in
   * an order rotated each cycle. The rows of one cycle run seconds apart, so comparing them
   * cycle by cycle leaves out most of the machine's drift. The cycles are split over several
   * starts: two starts of the same build can differ by several percent for as long as they
   * run, so the rows are started afresh, and warmed up, for each share of the cycles.
   */
  async runInterleaved(): Promise<void> {
    const options = this.#options;
    const rows = this.interleavedTargets();
    if (rows.length === 0) return;
    const starts = options.starts;
    let cycle = 0;
    try {
      for (let start = 1; start <= starts; start++) {
        const until = Math.round((options.cycles * start) / starts);
        // The order the rows are started in is rotated too: the first started may run differently.
        const shift = (start - 1) % rows.length;
        const started: { target: Target; running: RunningTarget }[] = [];
        try {
          for (const target of [...rows.slice(shift), ...rows.slice(0, shift)]) {
            const running = await startTarget(target, this.#context);
            started.push({ target, running });
            await this.#warmUp(target, running, 'saturation');
          }
          while (cycle < until) {
            cycle += 1;
            const turn = (cycle - 1) % started.length;
            for (const { target, running } of [...started.slice(turn), ...started.slice(0, turn)]) {
              const sample = { ...(await this.#sample(target, running, 'interleaved', cycle, options.cycleDurationS)), start };
              this.samples.push(sample);
              this.#report(`[start ${start}/${starts}, cycle ${cycle}/${options.cycles}]`, sample);
            }
          }
        } finally {
          await Promise.all(started.map(({ running }) => running.stop()));
        }
      }
    } catch (error) {
      if (stopping) throw error;
      const message = error instanceof Error ? error.message : String(error);
      console.error(`interleaved phase: failed, left out of this run: ${message}`);
      this.samples.splice(0, this.samples.length, ...this.samples.filter((s) => s.phase !== 'interleaved'));
    }
  }

  #measurable(): Target[] {
    return this.#options.targets.filter((t) => !this.notMeasured.has(t.name));
  }

  async run(): Promise<void> {
    const options = this.#options;
    const measurable = () => this.#measurable();
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
      const phasesOf = (t: Target): readonly Phase[] => (t.protocol === 'grpc' ? ['saturation'] : phases);
      const wanting = measurable().filter((t) => phasesOf(t).some((p) => this.cleanRounds(t, p) < options.rounds));
      if (wanting.length === 0) break;
      for (const target of wanting) {
        const disturbed = phasesOf(target).filter((p) => this.cleanRounds(target, p) < options.rounds);
        await this.runTarget(target, round, `[extra round ${extra}/${options.extraRounds}]`, disturbed);
      }
    }
    await this.runInterleaved();
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

/**
 * Checks out `revision` in a folder of the run (a detached git worktree, removed with the run's
 * folder), sharing this checkout's installed packages, and returns its rows.
 */
/** A Redis server for the rows with a redis store, on the load core beside the upstream, without persistence. */
async function startRedis(children: ChildProcesses, workDir: string, cores: string): Promise<string> {
  const port = await freePort();
  const dir = path.join(workDir, 'redis');
  mkdirSync(dir, { recursive: true });
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'];
  const child = children.start({ name: 'redis', cores, command: 'redis-server', args, logFile: path.join(dir, 'redis.log'), stdout: 'log' });
  await waitForListening(child, port, 10_000);
  return `redis://127.0.0.1:${port}`;
}

function checkOutBaseline(revision: string, workDir: string): Target[] {
  const root = path.join(workDir, 'baseline');
  execFileSync('git', ['worktree', 'add', '--detach', '--force', root, revision], { cwd: repoRoot, stdio: 'ignore' });
  // Once the run's folder is gone, git forgets the worktree that lived in it.
  process.on('exit', () => execFileSync('git', ['worktree', 'prune'], { cwd: repoRoot, stdio: 'ignore' }));
  symlinkSync(path.join(repoRoot, 'node_modules'), path.join(root, 'node_modules'));
  const label = execFileSync('git', ['rev-parse', '--short', revision], { cwd: repoRoot, encoding: 'utf8' }).trim();
  return baselineTargets(root, label);
}

async function main(): Promise<void> {
  const options = readOptions();
  const missing = ['wrk', 'nginx', 'taskset'].filter((command) => !hasCommand(command));
  if (missing.length > 0) throw new Error(`${missing.join(', ')} not found: run bash scripts/install-system-tools.sh bench`);

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
    if (options.baseline !== undefined) options.targets.push(...checkOutBaseline(options.baseline, workDir));
    // Breakwater rows run the compiled code, as the container image does: build each checkout first.
    const roots = new Set(options.targets.flatMap((t) => (t.launch.kind === 'breakwater' ? [t.launch.root ?? repoRoot] : [])));
    for (const root of roots) {
      console.error(`building ${path.relative(repoRoot, root) || 'this checkout'} (npm run build)`);
      buildBreakwater(root);
    }
    const redisUrl = options.targets.some((t) => t.launch.kind === 'breakwater' && t.launch.store === 'redis') && hasCommand('redis-server')
      ? await startRedis(children, workDir, String(options.loadCore))
      : undefined;
    const loadCores = String(options.loadCore);
    // The harness itself (its sampling, and the OTLP sink of the traced targets) stays off the
    // proxy's core, which then runs nothing but the proxy under test.
    execFileSync('taskset', ['-a', '-p', '-c', loadCores, String(process.pid)], { stdio: 'ignore' });
    const { upstream } = await startUpstream(children, workDir, loadCores);
    const grpcRows = options.targets.filter((t) => t.protocol === 'grpc' && unavailableReason(t) === undefined);
    const grpcUpstream = grpcRows.length === 0 ? undefined : (await startGrpcUpstream(children, workDir, loadCores)).upstream;
    const context: LaunchContext = {
      children,
      workDir,
      upstream,
      cores: String(options.proxyCore),
      ...(redisUrl === undefined ? {} : { redisUrl }),
      ...(grpcUpstream === undefined ? {} : { grpcUpstream }),
    };
    const benchmark = new Benchmark(options, context);
    for (const target of options.targets) {
      const reason = unavailableReason(target);
      if (reason !== undefined) benchmark.notMeasured.set(target.name, `unavailable: ${reason}`);
    }

    const machine = `${describeMachine(repoRoot, startedAt)} · Breakwater ${sourceRevision()}`;
    const count = options.targets.length - benchmark.notMeasured.size;
    const perRunS = 1.5 + options.warmupS + options.durationS;
    const grpcCount = grpcRows.filter((t) => !benchmark.notMeasured.has(t.name)).length;
    const interleaved = benchmark.interleavedTargets();
    const interleavedS = interleaved.length * (options.starts * (1.5 + options.warmupS) + options.cycles * (options.cycleDurationS + 0.5));
    const minutes = Math.ceil((((count - grpcCount) * phases.length + grpcCount) * options.rounds * perRunS + interleavedS) / 60);
    console.error(machine);
    for (const [name, why] of benchmark.notMeasured) console.error(`${name}: ${why}`);
    const interleavedPlan = interleaved.length === 0 ? '' : `, then ${interleaved.length} Breakwater rows × ${options.cycles} interleaved cycles over ${options.starts} starts`;
    console.error(`${count} targets × ${options.rounds} rounds × ${phases.length} phases${interleavedPlan}: about ${minutes} min (more with extra rounds)`);

    await benchmark.run();

    const finishedAt = new Date();
    const measured = options.targets.map((t) => t.name).filter((name) => !benchmark.notMeasured.has(name));
    const summariesOf = (phase: Phase, names: readonly string[]) =>
      names.map((name) => summarise(benchmark.samples.filter((s) => s.target === name && s.phase === phase)));
    const isGrpc = (name: string): boolean => options.targets.find((t) => t.name === name)?.protocol === 'grpc';
    const saturation = summariesOf('saturation', measured.filter((name) => !isGrpc(name)));
    const grpcSaturation = summariesOf('saturation', measured.filter(isGrpc));
    const fixedRate = summariesOf('fixed-rate', measured.filter((name) => !isGrpc(name)));
    const interleavedSamples = benchmark.samples.filter((s) => s.phase === 'interleaved');
    const interleavedRows = interleaved.map((t) => t.name).filter((name) => interleavedSamples.some((s) => s.target === name));
    const interleavedSummaries = interleavedRows.map((name) => summarise(interleavedSamples.filter((s) => s.target === name)));
    const comparisons = interleaved
      .slice(1)
      .filter((target) => interleavedRows.includes(target.name))
      .map((target) => comparePaired(interleavedSamples, target.name, baseOf(target, interleavedRows)))
      .filter((c): c is PairedComparison => c !== undefined);
    const run = `wrk -t1 -c${options.connections} -d${options.durationS}s`;
    const markdown = renderReport({
      machine,
      method:
        `Pinning: wrk, the upstream (nginx, ${upstreamBodyBytes}-byte body) and the harness (with the traced targets' OTLP sink) on core ${options.loadCore}, the proxy under test alone on core ${options.proxyCore}. ` +
        `${options.rounds} interleaved rounds in rotated order (+ up to ${options.extraRounds} extra for targets with disturbed rounds); ` +
        `each target is started afresh for each phase and warmed up for ${options.warmupS} s before a ${options.durationS} s measured run. ` +
        `Medians over the rounds used (req/s also min–max). A round is clean when processes not started by the benchmark used ` +
        `≤ ${options.cleanThreshold}% of a core during it; only clean rounds are used when at least 2 exist. ` +
        `Proxy CPU = utime+stime of the proxy's process tree during the run / requests; idle RSS = largest VmRSS in the tree ${idleSettleMs / 1000} s after the proxy's first answer, before any load, median over its starts; ` +
        `peak RSS = largest VmHWM in the tree at the end of the measured run (warm-up included), max over rounds. Breakwater runs compiled (dist/), as the container image runs it.`,
      interleavedTitle: `Interleaved: the Breakwater rows side by side, \`wrk -t1 -c${options.connections} -d${options.cycleDurationS}s\` × ${options.cycles} cycles over ${options.starts} starts`,
      interleavedMethod:
        `The cycles are split over ${options.starts} starts: for each, every row is started afresh and warmed up for ${options.warmupS} s. ` +
        `Every cycle runs each row once, in an order rotated each cycle. ` +
        `A row's ratio to its base (${interleavedBase}, or the plain POST row for keyed POSTs) is taken cycle by cycle, from runs seconds apart, and the table gives the median of those ratios ` +
        `with its 95% confidence interval (distribution-free, from the order statistics).`,
      saturationTitle: `Saturation: \`${run}\` (after ${options.warmupS} s warm-up)`,
      fixedRateTitle: `Fixed rate ${options.rate.toLocaleString('en-US')} req/s: \`${run} -s bench/lua/fixed-rate.lua\` (one shared send schedule)`,
      memoryTitle: `Memory: resident set idle (${idleSettleMs / 1000} s after the first answer, median of the starts) and at its peak in each phase`,
      rate: options.rate,
      saturation,
      fixedRate,
      grpcTitle:
        `gRPC unary calls: \`h2load -t1 -c${Math.max(1, Math.round(options.connections / 10))} -m${Math.max(1, Math.round(options.connections / Math.max(1, Math.round(options.connections / 10))))} -D${options.durationS}\` ` +
        `(after ${options.warmupS} s warm-up), ${grpcRequestBytes}-byte request and ${grpcResponseBytes}-byte response messages`,
      grpcMethod:
        `The gRPC rows call one unary method of a node:http2 gRPC upstream on core ${options.loadCore} (beside h2load), over cleartext HTTP/2 with prior knowledge on both sides; ` +
        `each row is checked with a grpc-js call before it is measured. Rounds, medians and CPU as above.`,
      grpc: grpcSaturation,
      interleaved: interleavedSummaries,
      comparisons,
      stores: [...saturation, ...fixedRate].filter((summary) => summary.storeP99Ms !== undefined),
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
      summaries: { saturation, fixedRate, grpc: grpcSaturation, interleaved: interleavedSummaries },
      comparisons,
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
