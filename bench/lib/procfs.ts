// What the kernel says about CPU time and memory, read from /proc (Linux only).
// CPU figures come from snapshots taken before and after a measured run, so the harness does
// no sampling while wrk runs.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcessTimes {
  pid: number;
  ppid: number;
  /** Start time in clock ticks since boot: tells a process from a later one with the same pid. */
  startTicks: number;
  /** utime + stime of the process (all its threads). */
  ownTicks: number;
  /** cutime + cstime: CPU of children it has reaped. */
  reapedTicks: number;
}

export interface CoreTimes {
  busyTicks: number;
  totalTicks: number;
}

export interface Snapshot {
  processes: Map<number, ProcessTimes>;
  cores: CoreTimes[];
}

export const clockTicksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** Parses a /proc/PID/stat line; the command name may hold spaces and parentheses. */
export function parseProcStat(line: string): ProcessTimes {
  const open = line.indexOf('(');
  const close = line.lastIndexOf(')');
  if (open < 0 || close < open) throw new Error(`unexpected /proc stat line: ${line}`);
  const pid = Number(line.slice(0, open).trim());
  // fields after the command: [0] state (field 3 in proc(5)), [1] ppid (4), [11] utime (14),
  // [12] stime (15), [13] cutime (16), [14] cstime (17), [19] starttime (22)
  const fields = line.slice(close + 2).split(' ').map(Number);
  const field = (index: number): number => {
    const value = fields[index];
    if (value === undefined || Number.isNaN(value)) throw new Error(`unexpected /proc stat line: ${line}`);
    return value;
  };
  return {
    pid,
    ppid: field(1),
    startTicks: field(19),
    ownTicks: field(11) + field(12),
    reapedTicks: field(13) + field(14),
  };
}

/** Parses the per-core lines (cpu0, cpu1, ...) of /proc/stat. */
export function parseCoreTimes(procStat: string): CoreTimes[] {
  const cores: CoreTimes[] = [];
  for (const line of procStat.split('\n')) {
    if (!/^cpu\d+ /.test(line)) continue;
    // user nice system idle iowait irq softirq steal (guest time is already inside user)
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = line
      .split(/\s+/)
      .slice(1)
      .map(Number);
    const busyTicks = user + nice + system + irq + softirq + steal;
    cores.push({ busyTicks, totalTicks: busyTicks + idle + iowait });
  }
  return cores;
}

export function readProcesses(): Map<number, ProcessTimes> {
  const processes = new Map<number, ProcessTimes>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const times = parseProcStat(readFileSync(`/proc/${entry}/stat`, 'utf8'));
      processes.set(times.pid, times);
    } catch {
      // the process exited between listing and reading
    }
  }
  return processes;
}

export function takeSnapshot(): Snapshot {
  return { processes: readProcesses(), cores: parseCoreTimes(readFileSync('/proc/stat', 'utf8')) };
}

/** The pid and all its descendants in one snapshot. */
export function processTree(processes: Map<number, ProcessTimes>, rootPid: number): Set<number> {
  const children = new Map<number, number[]>();
  for (const p of processes.values()) {
    const siblings = children.get(p.ppid);
    if (siblings === undefined) children.set(p.ppid, [p.pid]);
    else siblings.push(p.pid);
  }
  const tree = new Set<number>();
  const pending = processes.has(rootPid) ? [rootPid] : [];
  for (let pid = pending.pop(); pid !== undefined; pid = pending.pop()) {
    tree.add(pid);
    pending.push(...(children.get(pid) ?? []));
  }
  return tree;
}

function sameProcess(a: ProcessTimes | undefined, b: ProcessTimes): a is ProcessTimes {
  return a !== undefined && a.startTicks === b.startTicks;
}

/** CPU seconds used between the snapshots by the tree under rootPid (as seen at the end). */
export function treeCpuSeconds(before: Snapshot, after: Snapshot, rootPid: number): number {
  let ticks = 0;
  for (const pid of processTree(after.processes, rootPid)) {
    const now = after.processes.get(pid) as ProcessTimes;
    const then = before.processes.get(pid);
    ticks += now.ownTicks - (sameProcess(then, now) ? then.ownTicks : 0);
  }
  return ticks / clockTicksPerSecond;
}

/**
 * CPU seconds used between the snapshots by every process outside the tree under ownPid
 * (kernel threads included). A process that exited in between is counted through its parent's
 * reaped-children time, so short-lived commands run by others are seen too.
 */
export function foreignCpuSeconds(before: Snapshot, after: Snapshot, ownPid: number): number {
  const own = new Set([...processTree(before.processes, ownPid), ...processTree(after.processes, ownPid)]);
  let ticks = 0;
  for (const now of after.processes.values()) {
    if (own.has(now.pid)) continue;
    const then = before.processes.get(now.pid);
    ticks += now.ownTicks + now.reapedTicks;
    if (sameProcess(then, now)) ticks -= then.ownTicks + then.reapedTicks;
  }
  for (const then of before.processes.values()) {
    const now = after.processes.get(then.pid);
    // gone: its parent's reaped time now holds its whole life, of which this part came before
    if (!own.has(then.pid) && !sameProcess(now, then)) ticks -= then.ownTicks + then.reapedTicks;
  }
  return Math.max(0, ticks) / clockTicksPerSecond;
}

/** Busy share of each core between the snapshots, 0..1. */
export function coreBusy(before: Snapshot, after: Snapshot): number[] {
  return after.cores.map((core, i) => {
    const start = before.cores[i];
    if (start === undefined) return 0;
    const total = core.totalTicks - start.totalTicks;
    return total > 0 ? (core.busyTicks - start.busyTicks) / total : 0;
  });
}

/** The largest value of a /proc/PID/status field (in kB) over the tree under rootPid, in bytes. */
function largestInTree(rootPid: number, field: 'VmHWM' | 'VmRSS'): number {
  const pattern = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm');
  let largest = 0;
  for (const pid of processTree(readProcesses(), rootPid)) {
    try {
      const match = pattern.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (match?.[1] !== undefined) largest = Math.max(largest, Number(match[1]) * 1024);
    } catch {
      // exited meanwhile
    }
  }
  return largest;
}

/** Largest peak resident set (VmHWM) of any process in the tree under rootPid, in bytes. */
export function peakRssBytes(rootPid: number): number {
  return largestInTree(rootPid, 'VmHWM');
}

/** Largest resident set now (VmRSS) of any process in the tree under rootPid, in bytes. */
export function rssBytes(rootPid: number): number {
  return largestInTree(rootPid, 'VmRSS');
}
