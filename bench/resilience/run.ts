// npm run bench:resilience [-- --quick | --scenarios a,b --systems x,y --out DIR ...]
//
// The resilience benchmark: the same fault-injecting upstream and the same fixed-rate client,
// with no proxy, through nginx, through HAProxy and through Breakwater, scenario by scenario.
// The client and the upstream share one core, the proxy has the other, as in `npm run bench`.
// A full run (every scenario and system, not --quick) rewrites docs/resilience.md and the
// outage chart under docs/img/, and keeps its figures in bench/resilience/last-full-run.json;
// any other run writes all three to a folder of its own.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { describeMachine } from '../lib/machine.ts';
import type { Child } from '../lib/processes.ts';
import { ChildProcesses } from '../lib/processes.ts';
import { foreignCpuSeconds, takeSnapshot, treeCpuSeconds } from '../lib/procfs.ts';
import { hasCommand, repoRoot } from '../targets.ts';
import { analyse, ownRefusalP99Ms } from './analyse.ts';
import type { RunFigures } from './analyse.ts';
import { outageChart, timeChart } from './chart.ts';
import type { ClientPlan, ClientReport, EndpointPlan, FloodPlan, FloodReport, UpstreamPlan, UpstreamRecords } from './plan.ts';
import { breakwaterPolicy, renderReport } from './report.ts';
import type { RunResult } from './report.ts';
import type { Scenario, ScenarioName } from './scenarios.ts';
import { caller, scenarioNames, scenarios, systemsOf } from './scenarios.ts';
import type { SystemName } from './systems.ts';
import { allSystemNames, portsOf, snapshotBreakwater, startSystem, unavailableReason } from './systems.ts';

const usage = `Usage: npm run bench:resilience -- [options]
  --scenarios a,b     scenarios to run (default: all): ${scenarioNames.join(', ')}
  --systems a,b       systems to run where a scenario has them (default: all): ${allSystemNames.join(', ')}
  --quick             smoke run: every scenario's times at 40%
  --repeat N          run each scenario through each system N times, one system after the
                      other; the report's tables use each pair's run that others disturbed
                      least, and list every run's figures (default 1)
  --out DIR           where the report goes (default: docs/ for a full run, else a new folder
                      under the system's temporary directory)
  --render FILE       write the report again from a run's saved figures (resilience.json, or
                      bench/resilience/last-full-run.json for docs/), without measuring
  --working-tree      measure Breakwater's sources as they are in the checkout, uncommitted
                      changes included (default: the last commit), copied once at the start
  --keep              keep the scratch folder: every run's plans, records and logs
  --clean-threshold P a run is clean when others used at most P% of a core (default 5)
  --load-core N       core for the client and the upstream (default 0)
  --proxy-core N      core for the proxy (default 1)`;

const docsDir = path.join(repoRoot, 'docs');
const chartFile = 'img/resilience-outage.svg';
/** The figures of the last full run, behind docs/resilience.md. */
const fullRunFile = path.join(import.meta.dirname, 'last-full-run.json');

interface Options {
  scenarios: Scenario[];
  systems: SystemName[];
  scale: number;
  repeat: number;
  full: boolean;
  render: string | undefined;
  workingTree: boolean;
  out: string | undefined;
  keep: boolean;
  cleanThreshold: number;
  loadCore: string;
  proxyCore: string;
}

function pick<T extends string>(flag: string, text: string | undefined, known: readonly T[]): T[] {
  if (text === undefined) return [...known];
  return text
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '')
    .map((name) => {
      if (!(known as readonly string[]).includes(name)) throw new Error(`--${flag}: unknown "${name}"; known: ${known.join(', ')}`);
      return name as T;
    });
}

function core(flag: string, text: string): string {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0 || value >= os.cpus().length) {
    throw new Error(`--${flag} must be a core of this machine (0..${os.cpus().length - 1}), not "${text}"`);
  }
  return String(value);
}

function readOptions(): Options {
  const { values } = parseArgs({
    options: {
      scenarios: { type: 'string' },
      systems: { type: 'string' },
      quick: { type: 'boolean', default: false },
      repeat: { type: 'string', default: '1' },
      render: { type: 'string' },
      'working-tree': { type: 'boolean', default: false },
      out: { type: 'string' },
      keep: { type: 'boolean', default: false },
      'clean-threshold': { type: 'string', default: '5' },
      'load-core': { type: 'string', default: '0' },
      'proxy-core': { type: 'string', default: '1' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const names = pick<ScenarioName>('scenarios', values.scenarios, scenarioNames);
  const systems = pick<SystemName>('systems', values.systems, allSystemNames);
  const all = scenarios(values.quick ? 0.4 : 1);
  const cleanThreshold = Number(values['clean-threshold']);
  if (!Number.isFinite(cleanThreshold) || cleanThreshold < 0) throw new Error('--clean-threshold must be a non-negative number');
  const repeat = Number(values.repeat);
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error('--repeat must be a whole number of runs, 1 or more');
  return {
    scenarios: all.filter((s) => names.includes(s.name)),
    systems,
    scale: values.quick ? 0.4 : 1,
    repeat,
    render: values.render,
    workingTree: values['working-tree'],
    full: !values.quick && names.length === scenarioNames.length && systems.length === allSystemNames.length,
    out: values.out,
    keep: values.keep,
    cleanThreshold,
    loadCore: core('load-core', values['load-core']),
    proxyCore: core('proxy-core', values['proxy-core']),
  };
}

/** Set on SIGINT/SIGTERM, so that failures caused by stopping are not reported as results. */
let stopping = false;

async function waitForLine(child: Child, prefix: string, timeoutMs: number): Promise<string> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const line = child.stdout.split('\n').find((l) => l.startsWith(prefix));
    if (line !== undefined) return line;
    if (child.hasExited) throw new Error(`${child.name} exited before it was ready:\n${child.logTail()}`);
    if (performance.now() > deadline) throw new Error(`${child.name} was not ready within ${timeoutMs} ms:\n${child.logTail()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function fetchJson<T>(url: string): Promise<T> {
  const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  if (!response.ok) throw new Error(`GET ${url} answered ${response.status}`);
  return (await response.json()) as T;
}

/** One upstream process: its endpoints' ports by name, and its control origin. */
interface Upstream {
  readonly process: Child;
  readonly ports: Readonly<Record<string, number>>;
  readonly control: string;
}

class Runner {
  readonly children = new ChildProcesses();
  readonly workDir: string;
  readonly #options: Options;
  readonly #breakwaterRoot: string;

  constructor(options: Options, workDir: string, breakwaterRoot: string) {
    this.#options = options;
    this.workDir = workDir;
    this.#breakwaterRoot = breakwaterRoot;
  }

  /** One scenario through one system, from fresh processes to figures. */
  /** `round`: which of the --repeat runs this is (1 for the first), so each keeps a folder of its own. */
  async run(scenario: Scenario, system: SystemName, round = 1): Promise<RunResult> {
    const options = this.#options;
    const dir = path.join(this.workDir, `${scenario.name}-${system}${round > 1 ? `-${round}` : ''}`);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const lifetimeS = Math.ceil((scenario.durationMs + caller.timeoutMs) / 1000) + 90;

    // One upstream process per service, so that orders' load never slows catalog's answers.
    const upstreams: Upstream[] = [];
    try {
      for (const service of ['orders', 'catalog'] as const) {
        upstreams.push(await this.startUpstream(dir, service, scenario.endpoints.filter((e) => e.service === service), lifetimeS));
      }
      const [orders, catalog] = upstreams as [Upstream, Upstream];
      const running = await startSystem(system, {
        children: this.children,
        dir: path.join(dir, system),
        ports: portsOf({ ...orders.ports, ...catalog.ports }),
        cores: options.proxyCore,
        breakwaterRoot: this.#breakwaterRoot,
      });
      let stopped = false;
      let flood: Child | undefined;
      try {
        const floodFile = path.join(dir, 'flood-report.json');
        const floodControl = scenario.flood === undefined ? undefined : await this.startFlood(dir, scenario, running.origins.orders[0]!, floodFile, lifetimeS);
        flood = floodControl?.process;
        const clientPlan: ClientPlan = {
          controls: [...upstreams.map((u) => u.control), ...(floodControl === undefined ? [] : [floodControl.control])],
          durationMs: scenario.durationMs,
          timeoutMs: caller.timeoutMs,
          connectionsPerOrigin: caller.connectionsPerOrigin,
          routes: [
            { service: 'orders', origins: running.origins.orders, rates: scenario.rates.orders },
            { service: 'catalog', origins: running.origins.catalog, rates: scenario.rates.catalog },
          ],
        };
        writeFileSync(path.join(dir, 'client.json'), JSON.stringify(clientPlan));
        const outFile = path.join(dir, 'outcomes.json');
        const before = takeSnapshot();
        const startedAt = performance.now();
        const client = this.children.start({
          name: 'client',
          cores: options.loadCore,
          command: process.execPath,
          args: [path.join(import.meta.dirname, 'client.ts'), '--plan', path.join(dir, 'client.json'), '--out', outFile],
          logFile: path.join(dir, 'client.log'),
          stdout: 'log',
        });
        const limit = setTimeout(() => client.signalGroup('SIGKILL'), scenario.durationMs + caller.timeoutMs + 30_000);
        const exit = await client.exited.finally(() => clearTimeout(limit));
        const after = takeSnapshot();
        const elapsedS = (performance.now() - startedAt) / 1000;
        if (exit.code !== 0) throw new Error(`the client ended with ${exit.signal ?? `code ${exit.code}`}:\n${client.logTail()}`);
        const report = JSON.parse(readFileSync(outFile, 'utf8')) as ClientReport;
        const records = await fetchJson<UpstreamRecords>(`${orders.control}/records`);
        writeFileSync(path.join(dir, 'orders-arrivals.json'), JSON.stringify(records));
        const figures: RunFigures = analyse(scenario, report.outcomes, records.arrivals);
        let floodReport: FloodReport | undefined;
        if (flood !== undefined) {
          const floodExit = await flood.exited;
          if (floodExit.code !== 0) throw new Error(`the flood ended with ${floodExit.signal ?? `code ${floodExit.code}`}:\n${flood.logTail()}`);
          floodReport = JSON.parse(readFileSync(floodFile, 'utf8')) as FloodReport;
        }
        const proxyPid = running.process?.pid;
        // stopped before its log is read: the access log is complete once it has exited
        await running.stop();
        stopped = true;
        return {
          scenario: scenario.name,
          system,
          figures,
          ownRefusalP99Ms: running.accessLog === undefined ? undefined : ownRefusalP99Ms(readFileSync(running.accessLog, 'utf8')),
          healthChecks: Object.values(records.healthChecks).reduce((sum, n) => sum + n, 0),
          proxyCpuShare: proxyPid === undefined ? undefined : treeCpuSeconds(before, after, proxyPid) / elapsedS,
          foreignCpuShare: foreignCpuSeconds(before, after, process.pid) / elapsedS,
          clientLagP99Ms: report.sendLag.p99,
          ...(floodReport === undefined ? {} : { flood: floodReport }),
        };
      } finally {
        await flood?.stop();
        if (!stopped) await running.stop();
      }
    } finally {
      await Promise.all(upstreams.map((u) => u.process.stop()));
    }
  }

  /**
   * Starts the noisy neighbour's flood against `origin`, from a loopback address of its own, on
   * the load core; resolves with its control origin once it listens.
   */
  async startFlood(dir: string, scenario: Scenario, origin: string, outFile: string, lifetimeS: number): Promise<{ process: Child; control: string }> {
    const target = new URL(origin);
    const flood = scenario.flood!;
    const plan: FloodPlan = {
      host: target.hostname,
      port: Number(target.port),
      localAddress: '127.0.0.2',
      connections: flood.connections,
      newPerSecond: flood.newPerSecond,
      fromMs: flood.fromMs,
      toMs: flood.toMs,
    };
    const planFile = path.join(dir, 'flood.json');
    writeFileSync(planFile, JSON.stringify(plan));
    const child = this.children.start({
      name: 'flood',
      cores: this.#options.loadCore,
      command: process.execPath,
      args: [path.join(import.meta.dirname, 'flood.ts'), '--plan', planFile, '--out', outFile, '--lifetime', String(lifetimeS)],
      logFile: path.join(dir, 'flood.log'),
      stdout: 'capture',
    });
    try {
      const line = await waitForLine(child, '{"ready"', 15_000);
      const { ready } = JSON.parse(line) as { ready: { control: number } };
      return { process: child, control: `http://127.0.0.1:${ready.control}` };
    } catch (error) {
      await child.stop();
      throw error;
    }
  }

  /** Starts the upstream process of one service's endpoints; resolves once it listens. */
  async startUpstream(dir: string, service: string, endpoints: readonly EndpointPlan[], lifetimeS: number): Promise<Upstream> {
    const plan: UpstreamPlan = { seed: service === 'orders' ? 20261124 : 20261125, endpoints };
    const planFile = path.join(dir, `${service}-upstream.json`);
    writeFileSync(planFile, JSON.stringify(plan));
    const child = this.children.start({
      name: `${service} upstream`,
      cores: this.#options.loadCore,
      command: process.execPath,
      args: [path.join(import.meta.dirname, 'upstream.ts'), '--plan', planFile, '--lifetime', String(lifetimeS)],
      logFile: path.join(dir, `${service}-upstream.log`),
      stdout: 'capture',
    });
    try {
      const line = await waitForLine(child, '{"ready"', 15_000);
      const { ready } = JSON.parse(line) as { ready: { endpoints: Record<string, number>; control: number } };
      return { process: child, ports: ready.endpoints, control: `http://127.0.0.1:${ready.control}` };
    } catch (error) {
      await child.stop();
      throw error;
    }
  }
}

function describe(result: RunResult): string {
  const f = result.figures;
  const parts = [
    `success ${(f.success * 100).toFixed(2)}%`,
    `p50 ${f.latency.p50.toFixed(1)} ms`,
    `p99 ${f.latency.p99.toFixed(1)} ms`,
    `p99.9 ${f.latency.p999.toFixed(1)} ms`,
    `amplification ${f.amplification.toFixed(2)}`,
  ];
  if (f.cuts !== undefined) {
    parts.push(`healthy attempts cut ${f.cuts.healthyCut} of ${f.cuts.healthy}`, `hung attempts held ${f.cuts.hungHeldMeanMs?.toFixed(0) ?? 'never'} ms on average`);
  }
  if (f.outage !== undefined) {
    parts.push(`fails fast after ${f.outage.failFastS ?? 'never'} s`, `recovered after ${f.outage.recoverS ?? 'never'} s`);
  }
  if (f.neighbour !== undefined) parts.push(`neighbour p99 ×${f.neighbour.ratio.toFixed(2)}`);
  if (result.flood !== undefined) parts.push(`flood: ${result.flood.refusedAtOnce} refused at once, ${result.flood.heldThenClosed} held then closed, at most ${result.flood.maxOpen} open`);
  parts.push(`others ${(result.foreignCpuShare * 100).toFixed(1)}% of a core`, `client lag p99 ${result.clientLagP99Ms.toFixed(1)} ms`);
  return parts.join(', ');
}

/**
 * Of several runs of one scenario through one system, the one others disturbed least (the
 * least CPU used by processes the benchmark did not start), chosen without looking at what it
 * measured; the rest are kept apart.
 */
function leastDisturbed(results: readonly RunResult[]): { used: RunResult[]; others: RunResult[] } {
  const used: RunResult[] = [];
  const others: RunResult[] = [];
  for (const result of results) {
    const index = used.findIndex((r) => r.scenario === result.scenario && r.system === result.system);
    if (index < 0) used.push(result);
    else if (result.foreignCpuShare < used[index]!.foreignCpuShare) {
      others.push(used[index]!);
      used[index] = result;
    } else others.push(result);
  }
  return { used, others };
}

/** What a run measured, saved so that its report can be written again (--render). */
interface SavedRun {
  machine: string;
  startedAt: string;
  finishedAt: string;
  /** The scenarios' time scale: 1, or less for --quick. */
  scale: number;
  /** Every scenario and system, at full length. */
  full: boolean;
  scenarios: ScenarioName[];
  results: RunResult[];
  /** With --repeat: the other runs of each scenario and system, not used in the tables. */
  repeats?: RunResult[];
  notMeasured: Record<string, string>;
  cleanThreshold: number;
}

/** Writes the report and the outage chart of a run into outDir. */
function writeOutputs(saved: SavedRun, outDir: string): void {
  const selected = scenarios(saved.scale).filter((s) => saved.scenarios.includes(s.name));
  mkdirSync(path.join(outDir, 'img'), { recursive: true });
  const outage = selected.find((s) => s.outage !== undefined);
  const outageResults = saved.results.filter((r) => r.scenario === outage?.name);
  const chart = outage === undefined || outageResults.length === 0 ? undefined : outageChart(outage, outageResults);
  if (chart !== undefined) writeFileSync(path.join(outDir, chartFile), chart);
  // the other charts over time, of the scenarios that ask for one
  const charts = new Map<ScenarioName, string>();
  for (const scenario of selected) {
    const results = saved.results.filter((r) => r.scenario === scenario.name);
    if (scenario.chart === undefined || results.length === 0) continue;
    writeFileSync(path.join(outDir, scenario.chart.file), timeChart(scenario, results, scenario.chart.band, scenario.chart.bandLabel));
    charts.set(scenario.name, scenario.chart.file);
  }
  const markdown = renderReport({
    machine: saved.machine,
    startedAt: new Date(saved.startedAt),
    finishedAt: new Date(saved.finishedAt),
    quick: saved.scale !== 1,
    scenarios: selected,
    results: saved.results,
    repeats: saved.repeats ?? [],
    notMeasured: new Map(Object.entries(saved.notMeasured)),
    cleanThreshold: saved.cleanThreshold,
    chart: chart === undefined ? undefined : chartFile,
    charts,
    policy: breakwaterPolicy(),
  });
  writeFileSync(path.join(outDir, 'resilience.md'), markdown);
  console.log(markdown);
  console.error(`report: ${path.relative(process.cwd(), path.join(outDir, 'resilience.md'))}`);
}

/** How the report names the version of Breakwater measured. */
function describeSource(commit: string, workingTree: boolean): string {
  const short = commit.slice(0, 7);
  if (!workingTree) return short;
  const changed = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: repoRoot, encoding: 'utf8' }).trim();
  return changed === '' ? short : `${short} with uncommitted changes in src/`;
}

async function main(): Promise<void> {
  const options = readOptions();
  if (options.render !== undefined) {
    const saved = JSON.parse(readFileSync(options.render, 'utf8')) as SavedRun;
    writeOutputs(saved, options.out ?? (saved.full ? docsDir : path.dirname(options.render)));
    return;
  }
  if (!hasCommand('taskset')) throw new Error('taskset not found: run bash scripts/install-system-tools.sh bench');
  // The harness stays off the proxy's core, which then runs nothing but the system under test.
  execFileSync('taskset', ['-a', '-p', '-c', String(options.loadCore), String(process.pid)], { stdio: 'ignore' });
  const startedAt = new Date();
  // In memory when the machine has a tmpfs: Breakwater's access log and nginx's temporary files
  // then never wait for a disk that other processes keep busy.
  const scratchRoot = existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const workDir = mkdtempSync(path.join(scratchRoot, 'breakwater-resilience-'));
  // nginx workers run as an unprivileged user and must reach their folders
  chmodSync(workDir, 0o755);
  const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' }).trim();
  const runner = new Runner(options, workDir, snapshotBreakwater(path.join(workDir, 'breakwater'), commit, options.workingTree));
  const cleanUp = async (): Promise<void> => {
    await runner.children.stopAll();
    if (options.keep) console.error(`scratch folder kept: ${workDir}`);
    else rmSync(workDir, { recursive: true, force: true });
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      console.error(`\n${signal}: stopping the benchmark's processes`);
      void cleanUp().finally(() => process.exit(130));
    });
  }
  process.on('exit', () => runner.children.killAllNow());

  const machine = `${describeMachine(repoRoot, startedAt)} · Breakwater ${describeSource(commit, options.workingTree)}`;
  console.error(machine);
  const notMeasured = new Map<string, string>();
  for (const system of options.systems) {
    const reason = unavailableReason(system);
    if (reason !== undefined) notMeasured.set(system, reason);
  }
  const systems = options.systems.filter((s) => !notMeasured.has(s));
  const runsOf = (scenario: Scenario): SystemName[] => systemsOf(scenario).filter((s) => systems.includes(s));
  const totalS = options.scenarios.reduce((sum, s) => sum + (s.durationMs / 1000 + 10) * runsOf(s).length * options.repeat, 0);
  const runCount = options.scenarios.reduce((sum, s) => sum + runsOf(s).length * options.repeat, 0);
  console.error(`${options.scenarios.length} scenarios, ${runCount} runs: about ${Math.ceil(totalS / 60)} min`);

  const results: RunResult[] = [];
  try {
    for (const scenario of options.scenarios) {
      for (let round = 1; round <= options.repeat; round++) {
        for (const system of runsOf(scenario)) {
          const label = `${scenario.name} / ${system}${options.repeat > 1 ? ` (${round}/${options.repeat})` : ''}`;
          // A run that fails is tried once more: on a busy machine a client can be too late to
          // tell the upstreams time zero, or a proxy too slow to start.
          for (let attempt = 1; attempt <= 2; attempt++) {
            try {
              const result = await runner.run(scenario, system, attempt === 1 ? round : round + options.repeat);
              results.push(result);
              console.error(`${label}: ${describe(result)}`);
              break;
            } catch (error) {
              if (stopping) throw error;
              const message = error instanceof Error ? error.message : String(error);
              console.error(`${label}: failed${attempt === 1 ? ', trying once more' : ''}: ${message}`);
              if (attempt === 2) notMeasured.set(label, `failed twice: ${message.split('\n')[0]}`);
            }
          }
        }
      }
    }
    const { used, others } = leastDisturbed(results);
    const saved: SavedRun = {
      machine,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      scale: options.scale,
      full: options.full,
      scenarios: options.scenarios.map((s) => s.name),
      results: used,
      ...(others.length === 0 ? {} : { repeats: others }),
      notMeasured: Object.fromEntries(notMeasured),
      cleanThreshold: options.cleanThreshold,
    };
    const outDir = options.out ?? (options.full ? docsDir : mkdtempSync(path.join(os.tmpdir(), 'breakwater-resilience-report-')));
    mkdirSync(outDir, { recursive: true });
    const rawFile = options.full && options.out === undefined ? fullRunFile : path.join(outDir, 'resilience.json');
    // --out may name a folder that does not exist yet: the figures of a long run are not lost to it.
    mkdirSync(outDir, { recursive: true });
    writeFileSync(rawFile, `${JSON.stringify(saved, null, 1)}\n`);
    console.error(`figures: ${path.relative(process.cwd(), rawFile)}`);
    writeOutputs(saved, outDir);
  } finally {
    await cleanUp();
  }
}

main().catch((error: unknown) => {
  if (stopping) return;
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
