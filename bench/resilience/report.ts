// docs/resilience.md from the figures of a run: the method, Breakwater's targets with the
// measured figure beside each, a table per scenario, and each figure on which a peer does
// better than Breakwater, with the reason.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseConfig } from '../../src/config/load.ts';
import { repoRoot } from '../targets.ts';
import type { RunFigures } from './analyse.ts';
import type { FloodReport } from './plan.ts';
import { chartBinMs, fastMs, recoveredShare, stepMs, windowMs } from './analyse.ts';
import { betterReasons, type Figure } from './reasons.ts';
import type { Scenario, ScenarioName } from './scenarios.ts';
import { caller, systemsOf } from './scenarios.ts';
import type { SystemName } from './systems.ts';
import { configFiles, fixedPerTry, isVariant, variants } from './systems.ts';

export interface RunResult {
  readonly scenario: ScenarioName;
  readonly system: SystemName;
  readonly figures: RunFigures;
  /** Requests of HAProxy's health checks, not counted in the amplification. */
  readonly healthChecks: number;
  /** Breakwater's own p99 time for `circuit_open` refusals, from its access log (ms). */
  readonly ownRefusalP99Ms: number | null | undefined;
  /** Share of one core the proxy's process tree used during the run. */
  readonly proxyCpuShare: number | undefined;
  /** Share of one core used by processes the benchmark did not start. */
  readonly foreignCpuShare: number;
  /** How late the client sent its requests, p99 (ms). */
  readonly clientLagP99Ms: number;
  /** What the noisy neighbour's flood saw, in a scenario with one. */
  readonly flood?: FloodReport;
}

/** The settings of Breakwater's policy file that its targets are stated in. */
export interface BreakwaterPolicy {
  /** The orders route's per-try timeout as the report states it: `500 ms`, or the percentile rule. */
  readonly perTryTimeout: string;
  readonly firstBackoffMs: number;
  readonly openForMs: number;
  /** The hedge delay's percentile; undefined without a percentile hedge delay. */
  readonly hedgePercentile: number | undefined;
}

/** Reads the targets' settings from the policy file itself, through Breakwater's own loader. */
export function breakwaterPolicy(): BreakwaterPolicy {
  // any distinct ports will do: only the policies are read
  let port = 20_000;
  const text = readFileSync(path.join(repoRoot, configFiles.breakwater), 'utf8').replace(/@[A-Z_]+@/g, () => String(port++));
  const result = parseConfig(text, configFiles.breakwater);
  if (!result.ok) throw new Error(`${configFiles.breakwater} is not valid: ${JSON.stringify(result.problems)}`);
  const route = result.config.routes.find((r) => r.name === 'orders');
  const breaker = result.config.upstreams.get('orders')?.circuitBreaker;
  const retry = route?.retry;
  if (retry === undefined || breaker === undefined) {
    throw new Error(`${configFiles.breakwater}: the orders route needs a retry block and orders a circuitBreaker`);
  }
  const adaptive = retry.adaptivePerTryTimeout;
  const perTryTimeout =
    adaptive !== undefined
      ? `${adaptive.multiplier} × the p${adaptive.percentile} of the last ${adaptive.windowMs / 1000} s of answers, ${adaptive.minMs} ms to ${adaptive.maxMs / 1000} s`
      : retry.perTryTimeoutMs === undefined
        ? 'none'
        : `${retry.perTryTimeoutMs} ms`;
  // the longest wait before the first retry that returns to a replica: the backoff's base, capped at its max
  const firstBackoffMs = retry.backoff.type === 'none' ? 0 : Math.min(retry.backoff.baseMs, retry.backoff.maxMs);
  return { perTryTimeout, firstBackoffMs, openForMs: breaker.openForMs, hedgePercentile: route?.hedge?.adaptiveDelay?.percentile };
}

export interface ReportInput {
  readonly machine: string;
  readonly startedAt: Date;
  readonly finishedAt: Date;
  readonly quick: boolean;
  readonly scenarios: readonly Scenario[];
  readonly results: readonly RunResult[];
  /** With --repeat: the runs of each scenario and system that the tables do not use. */
  readonly repeats?: readonly RunResult[];
  /** what → why it has no figures */
  readonly notMeasured: ReadonlyMap<string, string>;
  readonly cleanThreshold: number;
  /** The outage chart, relative to the report; absent when the outage was not run. */
  readonly chart: string | undefined;
  /** The other scenarios' charts over time, relative to the report. */
  readonly charts?: ReadonlyMap<ScenarioName, string>;
  readonly policy: BreakwaterPolicy;
}

const none = '–';
const systemTitle: Readonly<Record<SystemName, string>> = {
  direct: 'no proxy',
  nginx: 'nginx',
  haproxy: 'HAProxy',
  breakwater: 'Breakwater',
  'breakwater-no-hedge': variants['breakwater-no-hedge'].title,
  'breakwater-fixed-tight': variants['breakwater-fixed-tight'].title,
  'breakwater-fixed-loose': variants['breakwater-fixed-loose'].title,
};

function percent(share: number | undefined, digits = 2): string {
  return share === undefined || Number.isNaN(share) ? none : `${(share * 100).toFixed(digits)}%`;
}

function ms(value: number | null | undefined): string {
  if (value === null || value === undefined || Number.isNaN(value)) return none;
  return value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : Math.round(value).toLocaleString('en-US');
}

function seconds(value: number | null | undefined): string {
  if (value === undefined) return none;
  return value === null ? 'never' : `${value.toFixed(2)} s`;
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const align = header.map((_, i) => (i === 0 ? '---' : '---:'));
  return [header, align, ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

// ---- targets ---------------------------------------------------------------------------------

interface Target {
  readonly scenario: ScenarioName;
  readonly text: string;
  /** The system judged: Breakwater unless a variant's row is the one the target is about. */
  readonly system?: SystemName;
  /** The figure, from the judged system's run; `all` holds every run, for comparisons. */
  readonly measured: (r: RunResult, all: readonly RunResult[]) => number | null | undefined;
  readonly format: (value: number | null | undefined, r: RunResult, all: readonly RunResult[]) => string;
  readonly met: (value: number) => boolean;
}

const ratio = (v: number | null | undefined): string => (v === null || v === undefined ? none : v.toFixed(2));

/** The run of `system` in `scenario`, when the run has one. */
function find(all: readonly RunResult[], scenario: ScenarioName, system: SystemName): RunResult | undefined {
  return all.find((r) => r.scenario === scenario && r.system === system);
}

/**
 * Breakwater's p99 over the lowest p99 of `peers` in the same scenario: at most 1 when
 * Breakwater's is at or below every one of theirs.
 */
function p99Against(peers: readonly SystemName[]) {
  return {
    measured: (r: RunResult, all: readonly RunResult[]): number | undefined => {
      const theirs = peers.flatMap((peer) => find(all, r.scenario, peer)?.figures.latency.p99 ?? []);
      return theirs.length === 0 ? undefined : r.figures.latency.p99 / Math.min(...theirs);
    },
    format: (_: number | null | undefined, r: RunResult, all: readonly RunResult[]): string => {
      const theirs = peers.map((peer) => `${systemTitle[peer]} ${ms(find(all, r.scenario, peer)?.figures.latency.p99)} ms`);
      return `${ms(r.figures.latency.p99)} ms (${theirs.join(', ')})`;
    },
    met: (v: number): boolean => v <= 1,
  };
}

function targets(policy: BreakwaterPolicy): Target[] {
  const recoverLimitS = policy.openForMs / 1000 + 1;
  const hedgedAt = policy.hedgePercentile === undefined ? 'hedging' : `hedging at the p${policy.hedgePercentile}`;
  return [
    { scenario: 'transient', text: '30% transient errors: success ≥ 99.5%', measured: (r) => r.figures.success, format: (v) => percent(v ?? undefined), met: (v) => v >= 0.995 },
    { scenario: 'transient', text: '30% transient errors: amplification ≤ 1.5', measured: (r) => r.figures.amplification, format: ratio, met: (v) => v <= 1.5 },
    { scenario: 'transient', text: "30% transient errors: p99 at or below HAProxy's", ...p99Against(['haproxy']) },
    { scenario: 'stall', text: "stalls: p99 at or below nginx's and HAProxy's", ...p99Against(['nginx', 'haproxy']) },
    {
      scenario: 'slow-replica',
      text: 'one replica of three ten times slower: p99 within 1.5× of the p99 with three healthy replicas',
      measured: (r, all) => {
        const healthy = find(all, 'three-healthy', r.system)?.figures.latency.p99;
        return healthy === undefined ? undefined : r.figures.latency.p99 / healthy;
      },
      format: (v, r, all) => `× ${ratio(v)} (${ms(r.figures.latency.p99)} ms against ${ms(find(all, 'three-healthy', r.system)?.figures.latency.p99)} ms)`,
      met: (v) => v <= 1.5,
    },
    {
      scenario: 'tail-at-scale',
      text: `tail at scale: ${hedgedAt} cuts the p99.9 at least 5× against the same file with no tail defence (no hedge block, a fixed ${fixedPerTry.looseMs / 1000} s per-try timeout)`,
      measured: (r, all) => {
        const without = find(all, r.scenario, 'breakwater-fixed-loose')?.figures.latency.p999;
        return without === undefined ? undefined : without / r.figures.latency.p999;
      },
      format: (v, r, all) => {
        const adaptiveOnly = find(all, r.scenario, 'breakwater-no-hedge')?.figures.latency.p999;
        const besides = adaptiveOnly === undefined ? '' : `; ÷ ${ratio(adaptiveOnly / r.figures.latency.p999)} against the adaptive per-try timeout alone, ${ms(adaptiveOnly)} ms`;
        return `÷ ${ratio(v)} (${ms(r.figures.latency.p999)} ms against ${ms(find(all, r.scenario, 'breakwater-fixed-loose')?.figures.latency.p999)} ms${besides})`;
      },
      met: (v) => v >= 5,
    },
    {
      scenario: 'tail-at-scale',
      text: 'tail at scale: hedging adds at most 5% upstream requests (amplification ≤ 1.05)',
      measured: (r) => r.figures.amplification,
      format: ratio,
      met: (v) => v <= 1.05,
    },
    {
      scenario: 'latency-shift',
      system: 'breakwater-no-hedge',
      text: `latency shift: the adaptive per-try timeout cuts fewer healthy attempts than a fixed ${fixedPerTry.tightMs} ms`,
      measured: (r, all) => {
        const tight = find(all, r.scenario, 'breakwater-fixed-tight')?.figures.cuts?.healthyCut;
        const mine = r.figures.cuts?.healthyCut;
        return tight === undefined || mine === undefined ? undefined : mine - tight;
      },
      format: (_, r, all) => `${r.figures.cuts?.healthyCut ?? none} against ${find(all, r.scenario, 'breakwater-fixed-tight')?.figures.cuts?.healthyCut ?? none}`,
      met: (v) => v < 0,
    },
    {
      scenario: 'latency-shift',
      system: 'breakwater-no-hedge',
      text: `latency shift: the adaptive per-try timeout gives up on a hung attempt sooner than a fixed ${fixedPerTry.looseMs / 1000} s (mean time held)`,
      measured: (r, all) => {
        const loose = find(all, r.scenario, 'breakwater-fixed-loose')?.figures.cuts?.hungHeldMeanMs;
        const mine = r.figures.cuts?.hungHeldMeanMs;
        return loose === undefined || loose === null || mine === undefined ? undefined : mine === null ? null : mine - loose;
      },
      format: (_, r, all) => `${ms(r.figures.cuts?.hungHeldMeanMs)} ms against ${ms(find(all, r.scenario, 'breakwater-fixed-loose')?.figures.cuts?.hungHeldMeanMs)} ms`,
      met: (v) => v < 0,
    },
    { scenario: 'outage', text: 'full outage: amplification ≤ 1.25 during the outage', measured: (r) => r.figures.outage?.amplification, format: ratio, met: (v) => v <= 1.25 },
    {
      scenario: 'outage',
      text: 'full outage: refusals under 5 ms at p99 once the breaker is open (`circuit_open`, as the client saw them)',
      measured: (r) => r.figures.outage?.circuitOpenP99Ms,
      format: (v, r) => `${ms(v)} ms (Breakwater's own time, from its access log: ${ms(r.ownRefusalP99Ms)} ms)`,
      met: (v) => v < 5,
    },
    {
      scenario: 'outage',
      text: `full outage: recovered within openFor + 1 s (${recoverLimitS} s) of the upstream returning`,
      measured: (r) => r.figures.outage?.recoverS,
      format: seconds,
      met: (v) => v <= recoverLimitS,
    },
    {
      scenario: 'overload',
      text: "overload: the healthy neighbour's p99 unchanged within 20%",
      measured: (r) => r.figures.neighbour?.ratio,
      // three decimals: at two, a ratio just above 1.2 would read as the limit itself
      format: (v) => (v === null || v === undefined ? none : `× ${v.toFixed(3)}`),
      met: (v) => v <= 1.2,
    },
    {
      scenario: 'noisy-neighbour',
      text: 'noisy neighbour: every request of the client of record succeeds while another client floods half-sent requests',
      measured: (r) => r.figures.success,
      format: (v) => percent(v ?? undefined),
      met: (v) => v === 1,
    },
    {
      scenario: 'noisy-neighbour',
      text: "noisy neighbour: the client of record's p99 during the flood within 20% of its p99 before it",
      measured: (r) => r.figures.neighbour?.ratio,
      format: (v) => (v === null || v === undefined ? none : `× ${v.toFixed(3)}`),
      met: (v) => v <= 1.2,
    },
  ];
}

interface Verdict {
  readonly target: Target;
  readonly result: RunResult | undefined;
  readonly value: number | null | undefined;
  readonly met: boolean | undefined;
}

function verdicts(input: ReportInput): Verdict[] {
  return targets(input.policy).map((target) => {
    const result = find(input.results, target.scenario, target.system ?? 'breakwater');
    const value = result === undefined ? undefined : target.measured(result, input.results);
    // null means "never": a time that never came, which misses any bound
    return { target, result, value, met: value === undefined ? undefined : value !== null && target.met(value) };
  });
}

function targetTable(input: ReportInput): string {
  const rows = verdicts(input).map(({ target, result, value, met }) => {
    if (result === undefined) return [target.text, 'not run', none];
    return [target.text, target.format(value, result, input.results), met === undefined ? none : met ? 'pass' : '**miss**'];
  });
  return table(['Breakwater target', 'measured', 'verdict'], rows);
}

function targetSummary(input: ReportInput): string {
  const judged = verdicts(input).filter((v) => v.met !== undefined);
  if (judged.length === 0) return '';
  const missed = judged.filter((v) => v.met === false);
  const head = `In this run Breakwater met ${judged.length - missed.length} of its ${judged.length} targets`;
  if (missed.length === 0) return `${head}.`;
  const list = missed.map((v) => `${v.target.text} (measured ${v.result === undefined ? none : v.target.format(v.value, v.result, input.results)})`);
  return `${head}; it missed ${list.join('; ')}. The scenario's section below says why.`;
}

// ---- peers doing better ------------------------------------------------------------------------


interface Comparison {
  readonly figure: Figure;
  readonly label: string;
  readonly value: (f: RunFigures) => number | null | undefined;
  readonly show: (value: number | null | undefined) => string;
  /** True when `a` (of `fa`) is better than `b` (of `fb`) by more than the run's noise. */
  readonly better: (a: number, b: number, fa: RunFigures, fb: RunFigures) => boolean;
}

/**
 * A success rate is better when the difference is beyond chance: more than twice the standard
 * error of the difference between two shares of this many requests.
 */
const higherShare = (a: number, b: number, fa: RunFigures, fb: RunFigures): boolean => {
  const standardError = Math.sqrt((a * (1 - a)) / Math.max(1, fa.requests) + (b * (1 - b)) / Math.max(1, fb.requests));
  return a - b > Math.max(2 * standardError, 0.0005);
};

const never = Number.POSITIVE_INFINITY;
const lowerTime = (a: number, b: number): boolean => a < b - stepMs / 1000;
const lowerLatency = (a: number, b: number): boolean => a < b * 0.9 && a < b - 1;

const comparisons: readonly Comparison[] = [
  { figure: 'success', label: 'success rate', value: (f) => f.success, show: (v) => percent(v ?? undefined), better: higherShare },
  { figure: 'p50', label: 'p50 latency', value: (f) => f.latency.p50, show: (v) => `${ms(v)} ms`, better: lowerLatency },
  { figure: 'p99', label: 'p99 latency', value: (f) => f.latency.p99, show: (v) => `${ms(v)} ms`, better: lowerLatency },
  { figure: 'p999', label: 'p99.9 latency', value: (f) => f.latency.p999, show: (v) => `${ms(v)} ms`, better: lowerLatency },
  { figure: 'amplification', label: 'amplification', value: (f) => f.outage?.amplification ?? f.amplification, show: (v) => (v ?? NaN).toFixed(2), better: (a, b) => a < b - 0.05 },
  { figure: 'failFast', label: 'time to fail fast', value: (f) => f.outage?.failFastS, show: seconds, better: lowerTime },
  { figure: 'recover', label: 'time to recover', value: (f) => f.outage?.recoverS, show: seconds, better: lowerTime },
  { figure: 'neighbour', label: "the change of the neighbour's p99", value: (f) => f.neighbour?.ratio, show: (v) => (v === null || v === undefined ? none : `× ${v.toFixed(2)}`), better: (a, b) => a < b - 0.05 },
];

function peersDoingBetter(scenario: Scenario, results: readonly RunResult[]): string[] {
  const ours = results.find((r) => r.system === 'breakwater');
  if (ours === undefined) return [];
  const lines: string[] = [];
  for (const comparison of comparisons) {
    const mine = comparison.value(ours.figures);
    if (mine === undefined) continue;
    for (const peer of results) {
      // the variants are Breakwater too: the scenario's text compares them
      if (peer.system === 'breakwater' || isVariant(peer.system)) continue;
      const theirs = comparison.value(peer.figures);
      if (theirs === undefined || theirs === null) continue;
      if (!comparison.better(theirs, mine ?? never, peer.figures, ours.figures)) continue;
      const reason = betterReasons[scenario.name]?.[comparison.figure]?.[peer.system] ?? betterReasons.any?.[comparison.figure]?.[peer.system];
      lines.push(
        `- **${systemTitle[peer.system]}** does better on ${comparison.label}: ${comparison.show(theirs)} against Breakwater's ` +
          `${comparison.show(mine)}.${reason === undefined ? '' : ` ${reason}`}`,
      );
    }
  }
  return lines;
}

// ---- scenario tables ---------------------------------------------------------------------------

function scenarioTable(scenario: Scenario, results: readonly RunResult[]): string {
  const header = ['system', 'requests', 'success', 'p50 ms', 'p99 ms', 'p99.9 ms', 'amplification', 'answered by the system', 'client timeouts'];
  if (scenario.outage !== undefined) header.push('amplification in the outage', 'fails fast after', 'refusals p99 ms', 'recovered after');
  const watched = scenario.neighbour?.service ?? 'catalog';
  if (scenario.neighbour !== undefined) header.push(`${watched} p99 before ms`, `${watched} p99 during ms`, `${watched} p99 change`, `${watched} success during`);
  if (scenario.cutAttempts !== undefined) header.push('healthy attempts cut', 'hung attempts', 'hung attempt held: mean ms', 'p50 ms', 'p99 ms');
  header.push('proxy CPU', "others' CPU");
  const rows = results.map((r) => {
    const f = r.figures;
    const row = [
      systemTitle[r.system],
      f.requests.toLocaleString('en-US'),
      percent(f.success),
      ms(f.latency.p50),
      ms(f.latency.p99),
      ms(f.latency.p999),
      f.amplification.toFixed(2),
      percent(f.answeredBySystem, 1),
      f.clientTimeouts.toLocaleString('en-US'),
    ];
    if (f.outage !== undefined) {
      row.push(f.outage.amplification.toFixed(2), seconds(f.outage.failFastS), ms(f.outage.refusalP99Ms), seconds(f.outage.recoverS));
    }
    if (f.neighbour !== undefined) {
      row.push(ms(f.neighbour.baselineP99Ms), ms(f.neighbour.faultP99Ms), `× ${f.neighbour.ratio.toFixed(2)}`, percent(f.neighbour.faultSuccess));
    }
    if (f.cuts !== undefined) {
      const share = f.cuts.healthy === 0 ? '' : ` (${percent(f.cuts.healthyCut / f.cuts.healthy, 1)})`;
      row.push(`${f.cuts.healthyCut.toLocaleString('en-US')}${share}`, f.cuts.hung.toLocaleString('en-US'), ms(f.cuts.hungHeldMeanMs), ms(f.cuts.hungHeldP50Ms), ms(f.cuts.hungHeldP99Ms));
    }
    row.push(percent(r.proxyCpuShare, 0), percent(r.foreignCpuShare, 0));
    return row;
  });
  return table(header, rows);
}

/** The cut figures phase by phase: how each system's per-try timeout followed the phases. */
function phaseTable(scenario: Scenario, results: readonly RunResult[]): string | undefined {
  const phases = scenario.phases;
  if (phases === undefined || !results.some((r) => r.figures.phaseCuts !== undefined)) return undefined;
  const header = ['system', ...phases.flatMap((phase) => [`${phase.name}: healthy cut`, `${phase.name}: hung held, mean ms`])];
  const rows = results.map((r) => [
    systemTitle[r.system],
    ...phases.flatMap((_, i) => {
      const cuts = r.figures.phaseCuts?.[i];
      return cuts === undefined ? [none, none] : [cuts.healthyCut.toLocaleString('en-US'), ms(cuts.hungHeldMeanMs)];
    }),
  ]);
  return table(header, rows);
}

function measuredSpan(scenario: Scenario): string {
  const { fromMs, toMs } = scenario.measured;
  const watched = scenario.neighbour?.service ?? 'catalog';
  return fromMs === 0 && toMs === scenario.durationMs
    ? `Figures over the whole ${scenario.durationMs / 1000} s run.`
    : `Orders' figures from ${fromMs / 1000} s to ${toMs / 1000} s (the fault); ${watched}${watched.endsWith('s') ? "'" : "'s"} p99 before the fault (from ${(scenario.neighbour?.baseline.fromMs ?? 0) / 1000} s) is compared with its p99 during it.`;
}

/** What the noisy neighbour's flood saw of each system: how its connections were refused or held. */
function floodTable(results: readonly RunResult[]): string | undefined {
  const flooded = results.filter((r) => r.flood !== undefined);
  if (flooded.length === 0) return undefined;
  const rows = flooded.map((r) => {
    const f = r.flood!;
    const answers = Object.entries(f.answers)
      .sort((a, b) => b[1] - a[1])
      .map(([line, count]) => `${count.toLocaleString('en-US')} × \`${line}\``)
      .join(', ');
    return [
      systemTitle[r.system],
      f.opened.toLocaleString('en-US'),
      f.connected.toLocaleString('en-US'),
      f.refusedAtOnce.toLocaleString('en-US'),
      f.heldThenClosed.toLocaleString('en-US'),
      ms(f.heldP50Ms),
      ms(f.heldMaxMs),
      f.stillOpenAtEnd.toLocaleString('en-US'),
      answers === '' ? none : answers,
    ];
  });
  return table(['system', 'flood connections opened', 'accepted', 'closed at once, unread', 'held, then closed', 'held p50 ms', 'held max ms', 'still open at the end', 'answers before closing'], rows);
}

/** Every run of each scenario and system, when there were several: the noise, in plain sight. */
function repeatsSection(input: ReportInput): string[] | undefined {
  const repeats = input.repeats ?? [];
  if (repeats.length === 0) return undefined;
  const rows: string[][] = [];
  let most = 1;
  for (const scenario of input.scenarios) {
    for (const system of systemsOf(scenario)) {
      const used = input.results.find((r) => r.scenario === scenario.name && r.system === system);
      if (used === undefined) continue;
      const runs = [used, ...repeats.filter((r) => r.scenario === scenario.name && r.system === system)];
      most = Math.max(most, runs.length);
      const cell = (show: (r: RunResult) => string): string => runs.map((r, i) => (i === 0 ? `**${show(r)}**` : show(r))).join(' · ');
      rows.push([
        `${scenario.name} · ${systemTitle[system]}`,
        cell((r) => percent(r.figures.success)),
        cell((r) => ms(r.figures.latency.p99)),
        cell((r) => ms(r.figures.latency.p999)),
        cell((r) => r.figures.amplification.toFixed(2)),
        cell((r) => percent(r.foreignCpuShare, 0)),
      ]);
    }
  }
  return [
    '## Every run',
    `Each scenario ran through each system ${most} times, the systems one after the other. ` +
      "The tables above use each pair's run that other processes disturbed least (bold here, first), chosen by the " +
      "\"others' CPU\" figure alone, before looking at what it measured. The others are its repeats, in the order they ran.",
    table(['scenario · system', 'success', 'p99 ms', 'p99.9 ms', 'amplification', "others' CPU"], rows),
  ];
}

function disturbance(input: ReportInput): string {
  const shares = input.results.map((r) => r.foreignCpuShare).sort((a, b) => a - b);
  if (shares.length === 0) return '';
  const max = shares[shares.length - 1] as number;
  const median = shares[Math.floor(shares.length / 2)] as number;
  const disturbed = shares.filter((share) => share * 100 > input.cleanThreshold).length;
  const lag = Math.max(...input.results.map((r) => r.clientLagP99Ms));
  const summary =
    `processes the benchmark did not start used a median of ${percent(median, 0)} and at most ${percent(max, 0)} of a core ` +
    `per run, and the client sent 99% of its requests within ${ms(lag)} ms of their time in every run`;
  return disturbed > 0
    ? `**These figures come from a shared machine**: ${summary}. ${disturbed} of the ${shares.length} runs had others above ` +
        `the ${input.cleanThreshold}% of a core this benchmark calls clean (the "others' CPU" column of each table); their ` +
        'latencies in particular are noisier than on a quiet machine.'
    : `The machine was quiet: ${summary}.`;
}

export function renderReport(input: ReportInput): string {
  const { policy } = input;
  const parts: string[] = [];
  parts.push(
    '# Resilience under injected faults: Breakwater beside nginx and HAProxy',
    'Breakwater exists to keep calls succeeding when the services behind them fail. This page shows how well it does that, ' +
      'measured the way a platform team evaluating it would: the same faulty upstream and the same client load, with no proxy, ' +
      'through nginx, through HAProxy and through Breakwater, in one run. Every figure below was written by ' +
      '`npm run bench:resilience`; run it yourself to check them on your machine.',
    `Run from ${input.startedAt.toISOString()} to ${input.finishedAt.toISOString()}${input.quick ? ' (**--quick**: every time at 40%, a smoke run, not for comparison)' : ''}.`,
    `Machine: ${input.machine}`,
    disturbance(input),
  );

  parts.push('## Targets', targetTable(input), targetSummary(input));

  parts.push(
    '## How it is measured',
    [
      '- **The upstream** (`bench/resilience/upstream.ts`) is HTTP endpoints on loopback: two replicas of `orders`, the ' +
        'service that fails (three in the scenarios about one slow replica and the tail at scale), and one of `catalog`, a ' +
        'healthy neighbour, each service in a Node process of its own. Each answers with a log-normal service time ' +
        '(5 ms median, about 16 ms at p99) unless the scenario says otherwise, and follows a seeded plan of faults over time: ' +
        '503s, stalls, limited workers with a queue, windows in which it answers nothing, and a slow recovery.',
      `- **The client** (\`bench/resilience/client.ts\`) sends at a fixed rate whatever happens (open loop), with a pool of ${caller.connectionsPerOrigin} ` +
        `connections per host:port, as a calling service's HTTP client has, and gives up on a request after ${caller.timeoutMs / 1000} s. Latency runs ` +
        'from the moment a request was due to the end of its response, so a request that waited for a free connection counts ' +
        'its wait. Through a proxy, both services share one host:port and so one pool, as they do behind a sidecar; with no ' +
        'proxy the client spreads orders requests over the replicas itself, in turn.',
      '- **The systems**: the client straight to the upstream; [nginx](../bench/resilience/configs/nginx.conf.tmpl), ' +
        '[HAProxy](../bench/resilience/configs/haproxy.cfg.tmpl) and [Breakwater](../bench/resilience/configs/breakwater.yaml.tmpl), ' +
        'each configured once for every scenario as its users tune it for flaky backends, with a comment on each setting. ' +
        'Limits match where the proxies have the same setting: 250 ms to connect, 2 s (nginx, Breakwater) for a whole request, ' +
        'a cap of 32 requests in flight to orders (16 per replica for nginx and HAProxy). For an answer nginx and HAProxy wait ' +
        `500 ms; Breakwater's limit follows the replicas' latency (${policy.perTryTimeout}). Each proxy is started afresh for ` +
        'each scenario and warmed up with a few requests.',
      '- **Variants**: where a scenario is about one of Breakwater\'s settings, the same file runs beside it with that setting ' +
        `changed: without the hedge block ("no hedging"), or with a fixed per-try timeout of ${fixedPerTry.tightMs} ms or ` +
        `${fixedPerTry.looseMs / 1000} s instead of the adaptive one (and no hedge block either, so that the per-try timeout ` +
        'alone decides when an attempt is given up).',
      '- **Pinning**: the client and the upstream processes share one core, the proxy has the other (Breakwater and nginx with one ' +
        'worker, HAProxy with one thread).',
    ].join('\n'),
    [
      'The figures:',
      '- **success**: the share of orders requests answered 2xx (no fallback answers 2xx in any configuration).',
      '- **p50 / p99 / p99.9**: latency of every orders request, whatever its outcome.',
      '- **amplification**: requests the orders replicas received / requests the client sent to orders (health checks, ' +
        'which only HAProxy sends, excluded). Above 1: retries; below 1: requests the system answered itself.',
      '- **answered by the system**: the share of orders requests the proxy answered itself (no upstream answer reached the client).',
      `- **fails fast after**: time from the outage's start until, in every later ${windowMs / 1000} s window of the outage, ` +
        `90% of the requests were over within ${fastMs} ms. **refusals p99**: p99 latency of the proxy's own failure answers ` +
        `from then on. **recovered after**: time from the outage's end until every later ${windowMs / 1000} s window had at ` +
        `least ${Math.round(recoveredShare * 100)}% success. Windows start every ${stepMs} ms and hold the requests due in ` +
        'them; a window, not a single instant, so that one stall of a busy machine does not decide the figure.',
      "- **catalog p99 change**: catalog's p99 during the fault / its p99 before it, in the same run; in the noisy neighbour " +
        "scenario, the same for orders, the client of record, during the flood.",
      '- **healthy attempts cut**: attempts the system gave up on before their answer although they were not hung (a per-try ' +
        "timeout that fired on a slow but healthy answer, or a hedge's loser), from what the upstream saw. **hung attempt " +
        'held**: how long the system waited on an attempt that hung before it gave up on it: mean, median and p99.',
      "- **proxy CPU**: the proxy's share of a core during the run. **others' CPU**: processes the benchmark did not start.",
    ].join('\n'),
  );

  parts.push(
    "## The peers' settings, and what they cost",
    [
      '- **nginx** counts every outcome listed in `proxy_next_upstream` (here `http_503` and timeouts too) against ' +
        '`max_fails`, and takes a replica out for `fail_timeout` once it reaches the count; when every replica is out it ' +
        "answers 502 itself (\"no live upstreams\"). That passive health check is what makes it fail fast in an outage and " +
        "avoid a stalling replica, and also what takes both replicas out under 30% transient errors: at this traffic any " +
        '`max_fails` is reached within `fail_timeout`. With `max_fails=0` it would keep both replicas under transient errors, ' +
        'but then at most two attempts per request, one per replica (by arithmetic, 1 − 0.3² = 91% success), and it would ' +
        'lose the fast failing and the stalling-replica avoidance. One setting cannot serve all three.',
      '- **HAProxy** takes a replica out after 10 errors in a row in live traffic (`observe layer7`) or 3 failed health ' +
        'checks a second apart, whichever comes first (its log, kept with `--keep`, names the reason); until then, requests ' +
        'wait for a slot (`timeout queue`) and for their retries. Its checks bring replicas back after 2 good checks, ' +
        'whether or not traffic flows. It retries at once, with no budget.',
      '- **Breakwater** judges each replica on its own (outlier detection: ten failures in a row, most calls failing, or a ' +
        'median three times the others\' takes a replica out for 10 s and more; a failure is a connection refused or reset, ' +
        'or a timeout, while a 503 is an answer, retried and not counted) and sends each call to the replica with the ' +
        'lower latency × calls in flight (peak-EWMA). A call that has not answered by the p95 of recent answers gets a second ' +
        'attempt on another replica, within a budget of 5% more calls. A failed call is retried at once, on a replica it has ' +
        'not tried while there is one; its retry budget caps retries at half the calls. Its breaker guards orders as a ' +
        'whole, and its bulkhead refuses the excess at once.',
    ].join('\n'),
  );

  for (const scenario of input.scenarios) {
    const results = systemsOf(scenario).flatMap((name) => input.results.filter((r) => r.scenario === scenario.name && r.system === name));
    parts.push(`## ${scenario.title[0]?.toUpperCase()}${scenario.title.slice(1)}`, `${scenario.fault} ${measuredSpan(scenario)}`);
    if (results.length === 0) {
      parts.push('Not measured in this run.');
      continue;
    }
    parts.push(scenarioTable(scenario, results));
    if (scenario.outage !== undefined && input.chart !== undefined) {
      parts.push(
        `![p50 and p99 latency and success rate over time for each system during the outage](${input.chart})`,
        `The shaded band is the outage. Each point is a ${chartBinMs / 1000} s bin of requests by the time they were due; ` +
          'latency is on a log scale. With no proxy, requests due in the second half of the outage waited in the caller for a ' +
          'connection and succeeded once the upstream came back, within the caller’s 5 s. The short spikes during the outage are ' +
          'probes: requests that Breakwater (half-open) or nginx (after `fail_timeout`) let through to see whether the upstream ' +
          'was back, each waiting out its 500 ms.',
      );
    }
    const phases = phaseTable(scenario, results);
    if (phases !== undefined) {
      const spans = (scenario.phases ?? []).map((phase) => `${phase.name} from ${phase.span.fromMs / 1000} s to ${phase.span.toMs / 1000} s`);
      parts.push(`The same figures phase by phase (${spans.join('; ')}):`, phases);
    }
    const chart = input.charts?.get(scenario.name);
    if (chart !== undefined && scenario.chart !== undefined) {
      parts.push(
        `![p50 and p99 latency and success rate over time for each system in the scenario](${chart})`,
        `The shaded band is the ${scenario.chart.bandLabel}. Each point is a ${chartBinMs / 1000} s bin of requests by the time they ` +
          'were due; latency is on a log scale.',
      );
    }
    const floods = floodTable(results);
    if (floods !== undefined) {
      parts.push(
        "What the flood saw of each system. A connection closed at once without a byte was refused on arrival (a limit per client, or the system's limit in all); a held one was closed when its request head timed out, with a `408` or without a word, or was still open when the flood stopped.",
        floods,
      );
    }
    if (scenario.notes !== undefined) parts.push(scenario.notes);
    const checks = results.find((r) => r.system === 'haproxy')?.healthChecks;
    if (checks !== undefined && checks > 0) {
      parts.push(`HAProxy's health checks sent the orders replicas ${checks.toLocaleString('en-US')} more requests over the run, not counted in its amplification.`);
    }
    const direct = results.find((r) => r.system === 'direct')?.figures.neighbour;
    if (direct !== undefined && scenario.neighbour?.service === undefined) {
      parts.push(
        `With no proxy in the way, catalog's p99 changed by × ${direct.ratio.toFixed(2)}: that is what the machine alone does ` +
          "to it, as the client and both upstream processes share one core and orders' extra work is theirs too.",
      );
    }
    const better = peersDoingBetter(scenario, results);
    if (better.length > 0) parts.push('Where a peer does better:', better.join('\n'));
  }

  const repeats = repeatsSection(input);
  if (repeats !== undefined) parts.push(...repeats);
  if (input.notMeasured.size > 0) {
    parts.push('## Not measured', [...input.notMeasured].map(([what, why]) => `- ${what}: ${why}`).join('\n'));
  }
  parts.push(
    '## Running it',
    [
      '```console',
      '$ npm run bench:resilience                    # installs nginx, haproxy and taskset if missing; every scenario and system; rewrites this page and its chart',
      '$ npm run bench:resilience -- --quick         # a smoke run at 40% of the times, reported elsewhere',
      '$ npm run bench:resilience -- --scenarios outage --systems nginx,breakwater',
      '$ npm run bench:resilience -- --render bench/resilience/last-full-run.json   # this page again from its figures',
      '```',
      '',
      'Breakwater is measured at the last commit, copied once at the start (`--working-tree` measures uncommitted changes ' +
        'too); `--keep` keeps every run\'s plans, records and logs; `--help` lists the rest.',
      '',
      `This run took ${((input.finishedAt.getTime() - input.startedAt.getTime()) / 60_000).toFixed(1)} minutes on ` +
        `${input.machine.match(/(\d+) cores/)?.[1] ?? 'its'} cores. Breakwater's settings behind the targets are read from its ` +
        `policy file: perTryTimeout ${policy.perTryTimeout}, ${policy.firstBackoffMs === 0 ? 'no backoff' : `first backoff up to ${policy.firstBackoffMs} ms`}, openFor ${policy.openForMs / 1000} s.`,
    ].join('\n'),
  );
  return `${parts.filter((p) => p !== '').join('\n\n')}\n`;
}
