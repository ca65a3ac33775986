// Markdown tables of the summaries, with each target compared to the reference rows.
import type { PairedComparison, Summary } from './stats.ts';

/**
 * Rows that other rows are compared to, when they were measured. Plain Breakwater is the base
 * of the Breakwater rows that add policies or tracing to it.
 */
export const throughputBases = ['direct', 'nginx', 'undici-passthrough', 'undici-passthrough-capped', 'http-proxy', 'breakwater'] as const;
export const cpuBase = 'undici-passthrough';

/** The same for the gRPC rows: node:http2 in and out is their ceiling of one Node process. */
export const grpcThroughputBases = ['grpc-direct', 'grpc-nginx', 'grpc-node-http2', 'grpc-breakwater'] as const;
export const grpcCpuBase = 'grpc-node-http2';

const none = '–';

export function formatInteger(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

export function formatFixed(value: number | undefined, digits: number): string {
  return value === undefined || !Number.isFinite(value) ? none : value.toFixed(digits);
}

/** a / b to two decimals, or a dash when either side is missing. */
export function formatRatio(a: number | undefined, b: number | undefined): string {
  return a === undefined || b === undefined || b === 0 ? none : (a / b).toFixed(2);
}

function percent(share: number | undefined): string {
  return share === undefined ? none : (share * 100).toFixed(share < 0.1 ? 1 : 0);
}

function mebibytes(bytes: number | undefined): string {
  return bytes === undefined ? none : (bytes / 1024 / 1024).toFixed(1);
}

function rounds(s: Summary): string {
  return `${s.roundsUsed}/${s.roundsClean}/${s.roundsRun}`;
}

function table(header: readonly string[], rightAligned: number, rows: readonly (readonly string[])[]): string {
  const align = header.map((_, i) => (i < header.length - rightAligned ? '---' : '---:'));
  return [header, align, ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

export function saturationTable(summaries: readonly Summary[], bases: readonly string[] = throughputBases, cpuBaseRow: string = cpuBase): string {
  const byName = new Map(summaries.map((s) => [s.target, s]));
  const header = [
    'target',
    'req/s median [min–max]',
    ...bases.map((base) => `× ${base}`),
    'p50 ms',
    'p99 ms',
    'proxy CPU µs/req',
    `CPU/req × ${cpuBaseRow}`,
    'proxy core %',
    'peak RSS MiB',
    'errors',
    'rounds used/clean/run',
    'max foreign CPU %',
  ];
  const rows = summaries.map((s) => [
    s.target,
    `${formatInteger(s.rps.median)} [${formatInteger(s.rps.min)}–${formatInteger(s.rps.max)}]`,
    ...bases.map((base) => formatRatio(s.rps.median, byName.get(base)?.rps.median)),
    formatFixed(s.latencyUs.p50 / 1000, 2),
    formatFixed(s.latencyUs.p99 / 1000, 2),
    formatFixed(s.proxyCpuUsPerRequest, 1),
    formatRatio(s.proxyCpuUsPerRequest, byName.get(cpuBaseRow)?.proxyCpuUsPerRequest),
    percent(s.proxyCpuShare),
    mebibytes(s.peakRssBytes),
    formatInteger(s.errors),
    rounds(s),
    percent(s.maxForeignCpuShare),
  ]);
  return table(header, header.length - 1, rows);
}

export function fixedRateTable(summaries: readonly Summary[]): string {
  const direct = summaries.find((s) => s.target === 'direct');
  const cpuReference = summaries.find((s) => s.target === cpuBase);
  const header = [
    'target',
    'req/s',
    'p50 µs',
    'p90 µs',
    'p99 µs',
    'p99.9 µs',
    'p50 added vs direct µs',
    'proxy CPU µs/req',
    `CPU/req × ${cpuBase}`,
    'proxy core %',
    'peak RSS MiB',
    'errors',
    'rounds used/clean/run',
    'max foreign CPU %',
  ];
  const rows = summaries.map((s) => [
    s.target,
    formatInteger(s.rps.median),
    formatInteger(s.latencyUs.p50),
    formatInteger(s.latencyUs.p90),
    formatInteger(s.latencyUs.p99),
    formatInteger(s.latencyUs.p999),
    direct === undefined ? none : formatInteger(s.latencyUs.p50 - direct.latencyUs.p50),
    formatFixed(s.proxyCpuUsPerRequest, 1),
    formatRatio(s.proxyCpuUsPerRequest, cpuReference?.proxyCpuUsPerRequest),
    percent(s.proxyCpuShare),
    mebibytes(s.peakRssBytes),
    formatInteger(s.errors),
    rounds(s),
    percent(s.maxForeignCpuShare),
  ]);
  return table(header, header.length - 1, rows);
}

/**
 * Each target's memory: idle once started, and its peak through each phase. Idle is the median
 * over all its starts for both phases; each peak the largest over that phase's rounds.
 */
export function memoryTable(saturation: readonly Summary[], fixedRate: readonly Summary[], rate: number): string {
  const names = [...new Set([...saturation, ...fixedRate].map((s) => s.target))];
  const header = ['target', 'idle RSS MiB', 'peak RSS at saturation MiB', `peak RSS at ${formatInteger(rate)} req/s MiB`];
  const rows = names.flatMap((name) => {
    const atSaturation = saturation.find((s) => s.target === name);
    const atRate = fixedRate.find((s) => s.target === name);
    const idle = [atSaturation?.idleRssBytes, atRate?.idleRssBytes].filter((v): v is number => v !== undefined);
    if (idle.length === 0 && atSaturation?.peakRssBytes === undefined && atRate?.peakRssBytes === undefined) return [];
    return [[name, mebibytes(idle.length === 0 ? undefined : idle.reduce((a, b) => a + b) / idle.length), mebibytes(atSaturation?.peakRssBytes), mebibytes(atRate?.peakRssBytes)]];
  });
  return table(header, header.length - 1, rows);
}

/** The interleaved phase: each row's runs, and its runs paired with the base row's. */
export function interleavedTable(summaries: readonly Summary[], comparisons: readonly PairedComparison[]): string {
  const header = [
    'target',
    'req/s median',
    'compared with',
    '× base, median of pairs',
    '95% interval of that median',
    'median of each start',
    'proxy CPU µs/req',
    'CPU efficiency × base, median of pairs',
    'pairs',
    'errors',
    'runs used/clean/run',
  ];
  const rows = summaries.map((s) => {
    const paired = comparisons.find((c) => c.target === s.target);
    const interval = paired?.rpsRatio.interval;
    const base = paired?.base ?? s.target;
    return [
      s.target,
      formatInteger(s.rps.median),
      s.target === base ? none : base,
      s.target === base ? '1.00' : formatFixed(paired?.rpsRatio.median, 2),
      s.target === base || interval === undefined ? none : `${interval.low.toFixed(2)}–${interval.high.toFixed(2)}`,
      s.target === base || paired === undefined || paired.byStart.length < 2 ? none : paired.byStart.map((r) => r.toFixed(2)).join(' '),
      formatFixed(s.proxyCpuUsPerRequest, 1),
      s.target === base ? '1.00' : formatFixed(paired?.cpuRatio, 2),
      s.target === base ? none : String(paired?.pairs ?? 0),
      formatInteger(s.errors),
      rounds(s),
    ];
  });
  return table(header, header.length - 1, rows);
}

/** Each store operation's p99 for the rows with a state store, by phase. */
export function storeTable(summaries: readonly Summary[]): string {
  const operations = [...new Set(summaries.flatMap((s) => Object.keys(s.storeP99Ms ?? {})))].sort();
  const header = ['target', 'phase', ...operations.map((operation) => `${operation} p99 ms`)];
  const rows = summaries.map((s) => [s.target, s.phase, ...operations.map((operation) => formatFixed(s.storeP99Ms?.[operation], 2))]);
  return table(header, header.length - 1, rows);
}

export interface ReportInput {
  machine: string;
  /** Summaries of the rows with a state store. */
  stores: readonly Summary[];
  method: string;
  saturationTitle: string;
  fixedRateTitle: string;
  memoryTitle: string;
  /** Requests per second of the fixed-rate phase. */
  rate: number;
  interleavedTitle: string;
  interleavedMethod: string;
  saturation: readonly Summary[];
  fixedRate: readonly Summary[];
  grpcTitle: string;
  grpcMethod: string;
  /** The gRPC rows' saturation summaries. */
  grpc: readonly Summary[];
  interleaved: readonly Summary[];
  comparisons: readonly PairedComparison[];
  /** target name → why it was not measured */
  notMeasured: ReadonlyMap<string, string>;
}

export function renderReport(input: ReportInput): string {
  const parts = [`# Breakwater benchmark`, input.machine, input.method];
  if (input.saturation.length > 0) parts.push(`## ${input.saturationTitle}`, saturationTable(input.saturation));
  if (input.fixedRate.length > 0) parts.push(`## ${input.fixedRateTitle}`, fixedRateTable(input.fixedRate));
  if (input.saturation.length + input.fixedRate.length > 0) parts.push(`## ${input.memoryTitle}`, memoryTable(input.saturation, input.fixedRate, input.rate));
  if (input.interleaved.length > 0) parts.push(`## ${input.interleavedTitle}`, input.interleavedMethod, interleavedTable(input.interleaved, input.comparisons));
  if (input.grpc.length > 0) parts.push(`## ${input.grpcTitle}`, input.grpcMethod, saturationTable(input.grpc, grpcThroughputBases, grpcCpuBase));
  if (input.stores.length > 0) {
    parts.push(
      '## State store operations',
      "The 99th percentile of each idempotency store operation during the measured runs, from Breakwater's own `breakwater_store_operation_duration_seconds` (the upper bound of the bucket that holds 99%).",
      storeTable(input.stores),
    );
  }
  if (input.notMeasured.size > 0) {
    parts.push('## Not measured', [...input.notMeasured].map(([name, why]) => `- ${name}: ${why}`).join('\n'));
  }
  return `${parts.join('\n\n')}\n`;
}
