// Where V8 marks the old generation, fitted to the CPUs Breakwater may use. V8 marks on helper
// threads while JavaScript runs ("concurrent marking"). With one CPU to run on (pinned to one
// core, or under a CPU limit of one core or less) a helper thread takes turns with the main
// thread on that CPU, and a request that arrives during its turn waits for the kernel's
// scheduler: at a steady rate those waits made most of Breakwater's p99. Marked by the main
// thread, in small steps between requests, each wait is short.
// docs/decisions/0014-memory-budget.md has the figures.

import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';

/** The CPUs a cgroup v2 `cpu.max` ("QUOTA PERIOD", or "max PERIOD") allows; undefined when unlimited or unreadable. */
export function cpuMaxLimit(cpuMax: string): number | undefined {
  const [quota, period] = cpuMax.trim().split(/\s+/);
  return quotaLimit(quota, period);
}

/** The CPUs a cgroup v1 quota (`cpu.cfs_quota_us`, -1 when unlimited) over its period allows. */
export function cfsQuotaLimit(quotaUs: string, periodUs: string): number | undefined {
  return quotaLimit(quotaUs.trim(), periodUs.trim());
}

function quotaLimit(quota: string | undefined, period: string | undefined): number | undefined {
  const q = Number(quota);
  const p = Number(period);
  if (!Number.isFinite(q) || !Number.isFinite(p) || q <= 0 || p <= 0) return undefined;
  return q / p;
}

/** Reads a file as text; undefined when it is not there. */
export type ReadText = (path: string) => string | undefined;

const readText: ReadText = (path) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

/** The CPUs the process can use at once: the cores it may run on, less if its cgroup's quota is smaller. */
export function usableCpus(cores: number = availableParallelism(), read: ReadText = readText): number {
  const cpuMax = read('/sys/fs/cgroup/cpu.max');
  const quota = read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us');
  const period = read('/sys/fs/cgroup/cpu/cpu.cfs_period_us');
  const limit = cpuMax !== undefined ? cpuMaxLimit(cpuMax) : quota !== undefined && period !== undefined ? cfsQuotaLimit(quota, period) : undefined;
  return limit === undefined ? cores : Math.min(cores, limit);
}

/** Whether Breakwater turns V8's concurrent marking off: at most one usable CPU, and no choice made in Node's own options. */
export function turnsConcurrentMarkingOff(cpus: number, nodeOptions: readonly string[]): boolean {
  if (nodeOptions.some((option) => /^--(no-)?concurrent[-_]marking$/.test(option))) return false;
  return cpus <= 1;
}

/** Turns V8's concurrent marking off when Breakwater has a single CPU; called once, at start. */
export function fitMarkingToCpus(): boolean {
  const nodeOptions = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  if (!turnsConcurrentMarkingOff(usableCpus(), nodeOptions)) return false;
  setFlagsFromString('--no-concurrent-marking');
  return true;
}
